import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from zoomdream.base.errors import UserError
from zoomdream.engine.images import save_image
from zoomdream.engine.models import load_network
from zoomdream.run.state import CHECKPOINT, load_checkpoint, state_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mobilenet():
    """The real ImageNet MobileNetV2 (offline package): dream-quality tests use it."""
    return load_network("mobilenet_v2", device="cpu")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    from skimage import data

    return data.chelsea().astype(np.float32) / 255.0


@pytest.fixture
def photo_file(tmp_path, photo) -> Path:
    p = tmp_path / "cat.png"
    save_image(p, photo)
    return p


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "zoomdream", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def run_main(*args: str) -> subprocess.CompletedProcess:
    """The CLI's main() in this process: the same code path, exit status and output as a
    subprocess, without paying the 3 s torch import each time. End-to-end tests keep using
    run_cli; this is for the many cases that only check what the CLI says."""
    import contextlib
    import io

    from zoomdream.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def wait_for_checkpoint(output: Path, proc: subprocess.Popen, index: int, timeout: float = 180) -> None:
    """Wait until a render of `output` running in `proc` has checkpointed frame `index`."""
    ck = state_dir(output) / CHECKPOINT
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ck.exists():
            try:
                if load_checkpoint(ck)["index"] >= index:
                    return
            except UserError:
                pass  # replaced while reading
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of frame {index} within {timeout} s")


def interrupted(cmd: list[str], output: Path, index: int, sig: int = signal.SIGINT) -> subprocess.CompletedProcess:
    """Run a render command line, send it `sig` once it has checkpointed frame `index`, and
    wait for it to finish what it does on that signal."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    wait_for_checkpoint(output, proc, index, timeout=120)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def decoded_hashes(video: Path) -> list[str]:
    """A hash of each frame as ffmpeg decodes the video: equal lists mean identical videos."""
    import hashlib

    from zoomdream.media.clip import read_frames

    return [hashlib.sha256(f.tobytes()).hexdigest()[:16] for f in read_frames(video)]


def assert_user_error(r: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert lines[0].startswith("zoomdream: error:"), lines[0]
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


torch.set_num_threads(max(1, torch.get_num_threads()))
