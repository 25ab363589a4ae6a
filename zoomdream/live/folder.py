"""The output folder of a live session: the only place it writes, under names it chooses;
what it wrote is all a page may download. Uploads are decoded as images and nothing else."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..base.errors import UserError
from ..engine.images import check_min_size, decode_image
from ..media.codecs import CODECS

# An upload is a picture: 25 MB holds a 6000×4000 JPEG; past it the request is refused unread.
MAX_UPLOAD = 25 << 20
_PROGRESS = re.compile(r"frame (\d+)/(\d+)")


class Folder:
    def __init__(self, out: Path):
        self.out = out
        self.files: dict[str, Path] = {}  # what the page may download: only what was written here
        self.uploads: dict[str, tuple[np.ndarray, Path]] = {}  # name → (decoded image, its file)
        self._lock = threading.Lock()

    def write(self, name: str, data: bytes) -> Path:
        """A file under a name chosen here, written whole (a crash leaves no half file)."""
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        path, tmp = self.out / name, self.out / f".{name}.part"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as e:
            raise UserError(f"cannot write {path} ({e.strerror})", "check the --out folder") from None
        self.files[name] = path
        return path

    def free_name(self, stem: str, suffix: str, first: str = "") -> str:
        """stem + suffix (or stem-2, -3… + suffix) that no file in the folder has yet."""
        name, k = f"{stem}{first}{suffix}", 2
        while (self.out / name).exists() or name in self.files:
            name, k = f"{stem}-{k}{suffix}", k + 1
        return name

    def upload(self, data: bytes, what: str = "the uploaded file") -> tuple[str, np.ndarray]:
        """An uploaded image kept as it came, under the name objectives may use; `what` names
        it in messages."""
        if len(data) > MAX_UPLOAD:
            raise UserError(f"the upload is {len(data) >> 20} MB", f"send an image under {MAX_UPLOAD >> 20} MB")
        image = decode_image(data, what)
        check_min_size(image, what)
        fmt = (Image.open(io.BytesIO(data)).format or "png").lower()
        suffix = {"jpeg": ".jpg", "mpo": ".jpg"}.get(fmt, f".{fmt}")
        with self._lock:
            name = self.free_name("upload", suffix, "-1")
            self.uploads[name] = (image, self.write(name, data))
        return name, image

    def save(self, text: str) -> Path:
        """A recorded preset, named after the time it was saved."""
        with self._lock:
            return self.write(self.free_name(f"live-{time.strftime('%Y%m%d-%H%M%S')}", ".toml"), text.encode("utf-8"))


class ChildRender:
    """`zoomdream render` of a saved preset in a child process, with the usual checkpoints; its
    progress lines become messages for every page, and its MP4 a file of the folder."""

    def __init__(self, folder: Folder, broadcast: Callable[[dict], None]):
        self.folder, self.broadcast = folder, broadcast
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, preset: Path, size: tuple[int, int], device: str, codec: str = "h264") -> str:
        video = preset.with_suffix(CODECS[codec].containers[0]).name
        cmd = [sys.executable, "-m", "zoomdream", "render", "--preset", str(preset), "-o", str(self.folder.out / video),
               "--size", f"{size[0]}x{size[1]}", "--device", device, "--codec", codec]
        env = {**os.environ, "ZOOMDREAM_LOG_SECONDS": "1"}  # a progress line a second
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._follow, args=(self.proc, video), daemon=True).start()
        return video

    def _follow(self, proc: subprocess.Popen, video: str) -> None:
        last = ""
        assert proc.stderr is not None
        for line in proc.stderr:
            last = line.strip() or last
            m = _PROGRESS.search(line)
            if m:
                self.broadcast({"type": "render", "state": "running", "done": int(m[1]), "total": int(m[2]),
                                "line": line.strip(), "file": video})
        proc.wait()
        path = self.folder.out / video
        if proc.returncode == 0 and path.is_file():
            self.folder.files[video] = path
            self.broadcast({"type": "render", "state": "done", "file": video})
        else:
            self.broadcast({"type": "render", "state": "failed", "file": video,
                            "line": last or f"exit status {proc.returncode}"})

    def wait(self, seconds: float) -> None:
        """On the way out: it got Ctrl-C too (one process group), so it checkpoints and closes
        its video; past `seconds` it is asked again."""
        if self.running:
            assert self.proc is not None
            try:
                self.proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
