"""Streaming frames into ffmpeg (the binary imageio-ffmpeg ships), on a background thread so
encoding overlaps dreaming, plus the small ffmpeg jobs around it: joining parts, probing a
file, a GIF preview.

We build the ffmpeg command ourselves rather than use imageio_ffmpeg.write_frames: its
defaults add `-crf 25` (quality=5) and rescale to multiples of 16 (1080 → 1088), it does
not report ffmpeg's exit status, and here ffmpeg must sit in its own process group so a
terminal's Ctrl-C reaches only us and we can close the file cleanly."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

from .errors import UserError, disk_full, write_error


def ffmpeg_exe() -> str:
    exe = os.environ.get("ZOOMDREAM_FFMPEG")
    if exe:
        if not Path(exe).is_file():
            raise UserError(f"ZOOMDREAM_FFMPEG points to a missing file: {exe}", "unset it or fix the path")
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        raise UserError("ffmpeg not found", "pip install imageio-ffmpeg, or set ZOOMDREAM_FFMPEG") from None


def _broken_ffmpeg(exe: str, why: str) -> UserError:
    return UserError(f"ffmpeg at {exe} {why}", "reinstall imageio-ffmpeg, or point ZOOMDREAM_FFMPEG at a working ffmpeg")


def check_ffmpeg() -> str:
    """The ffmpeg binary, after making sure it runs at all."""
    exe = ffmpeg_exe()
    try:
        r = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _broken_ffmpeg(exe, f"cannot run ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    if r.returncode != 0:
        raise _broken_ffmpeg(exe, f"does not work (exit status {r.returncode})")
    return exe


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _out_of_space(path: Path) -> bool:
    """Whether a failed write to `path` ran out of room. ffmpeg often dies silently on a full
    disk, so its message alone cannot tell: look at the free space and the file-size limit."""
    try:
        if shutil.disk_usage(path.parent).free < 16 * 2**20:
            return True
        if resource is None:
            return False
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return limit != resource.RLIM_INFINITY and path.exists() and path.stat().st_size >= limit
    except OSError:
        return False


def _ffmpeg_failure(what: str, path: Path, stderr: str, written: Path | None = None) -> UserError:
    """`path` is what the user asked for; `written` the file ffmpeg was writing, if another."""
    msg = _last_line(stderr)
    if "No space left" in stderr or "File too large" in stderr or _out_of_space(written or path):
        return disk_full(path, msg)
    return UserError(f"ffmpeg failed while {what} {path}: {msg or 'it gave no reason'}",
                     "check the output folder and free disk space")


class Encoder:
    """One ffmpeg process writing one H.264 file from raw RGB frames on its stdin."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 18, preset: str = "medium"):
        self.path = Path(path)
        self.frames = 0
        # -bf 0: parts are later joined by stream copy, and B-frame reordering leaves each part's
        # timestamps offset, which the concat demuxer turns into duplicated or dropped frames.
        # No +faststart here: the joined file gets it, and each part would be rewritten for nothing.
        cmd = [
            ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-r", _fps_arg(fps), "-i", "-", "-an",
            "-c:v", "libx264", "-preset", preset, "-bf", "0", "-crf", str(crf), "-pix_fmt", "yuv420p",
            str(self.path),
        ]  # fmt: skip
        self._size = width * height * 3
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=self._log, start_new_session=True)
        except OSError as e:
            self._log.close()
            raise _broken_ffmpeg(cmd[0], f"cannot run ({e.strerror})") from None

    def write(self, frame: np.ndarray) -> None:
        assert frame.dtype == np.uint8 and frame.size == self._size, "frame must be H×W×3 uint8 of the video's size"
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            self._proc.wait()
            raise _ffmpeg_failure("writing", self.path, self._stderr()) from None
        self.frames += 1

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        """Finish the file: ffmpeg writes the index (moov) only on a clean end of input."""
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            pass
        rc = self._proc.wait()
        err = self._stderr()
        self._log.close()
        if rc != 0:
            raise _ffmpeg_failure("writing", self.path, err)

    def abort(self) -> None:
        self._proc.kill()
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        self._proc.wait()
        self._log.close()


def _fps_arg(fps: float) -> str:
    from fractions import Fraction

    return str(Fraction(fps).limit_denominator(1001))


class PartWriter:
    """Streams frames into a sequence of MP4 parts on a background thread.

    The bounded queue keeps memory flat however long the video: when the encoder falls behind,
    the dreaming thread waits rather than piling up frames. Each frame also goes losslessly
    into `pending` until its part is complete: a part cut short by an interruption is then
    re-encoded whole on resume, so the resumed video is the same, bit for bit, as one that
    never stopped (x264's look-ahead depends on where a part ends).

    `cut(callback)` finishes the current part, drops its pending frames, then runs the callback
    on the writer thread; the renderer writes its checkpoint there, so a checkpoint only ever
    names complete parts. `sync()` waits until all that is done."""

    def __init__(self, make_encoder: Callable[[int], Encoder], pending: Path, depth: int = 8):
        self._make = make_encoder
        self.pending = pending
        self.pending.mkdir(exist_ok=True)
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._enc: Encoder | None = None
        self.finished: list[tuple[str, int]] = []  # (file name, frame count) of complete parts
        self._thread = threading.Thread(target=self._run, name="zoomdream-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            kind, payload = self._q.get()
            try:
                if self._error is None:  # after a failure only drain the queue (and still honour "stop")
                    self._handle(kind, payload)
            except BaseException as e:  # surfaced on the dreaming thread at its next call
                self._error = e
                if self._enc is not None:
                    self._enc.abort()
                    self._enc = None
            finally:
                self._q.task_done()
            if kind == "stop":
                return

    def _handle(self, kind: str, payload) -> None:
        if kind == "frame":
            pos, frame = payload
            if self._enc is None:
                self._enc = self._make(pos)
            _save_lossless(self.pending / f"{pos:08d}.npy", frame)
            self._enc.write(frame)
            return
        complete, callback = payload
        if self._enc is not None:
            enc, self._enc = self._enc, None
            enc.close()
            self.finished.append((enc.path.name, enc.frames))
        if not complete:  # the checkpoint will count these frames: they must survive a power cut
            sync_files(self.pending.iterdir())
        if callback is not None:
            callback()  # first: should the checkpoint fail, the lossless frames are still there
        if complete:
            for f in self.pending.iterdir():
                f.unlink()

    def _put(self, item) -> None:
        self._raise()
        self._q.put(item)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, pos: int, frame: np.ndarray) -> None:
        """Frame `pos` of the video (positions come in order)."""
        self._put(("frame", (pos, frame)))

    def cut(self, callback: Callable[[], None] | None = None) -> None:
        """Finish the current part (it is complete) and run `callback` after it."""
        self._put(("cut", (True, callback)))

    def sync(self) -> None:
        """Wait until every frame and cut so far is done; re-raise an encoder error."""
        self._q.join()
        self._raise()

    def close(self, complete: bool, callback: Callable[[], None] | None = None) -> None:
        """Flush everything, finish the last part, stop the thread; re-raises encoder errors.
        An incomplete last part keeps its pending frames, to be re-encoded on resume."""
        if self._thread.is_alive():
            self._q.put(("stop", (complete, callback)))
            self._thread.join()
        self._raise()


def _save_lossless(path: Path, frame: np.ndarray) -> None:
    try:
        with open(path, "wb") as f:
            np.save(f, frame)
    except OSError as e:
        raise write_error(path, e) from None


def pending_files(folder: Path, first: int, count: int) -> list[Path]:
    return [folder / f"{pos:08d}.npy" for pos in range(first, first + count)]


def load_pending(folder: Path, first: int, count: int) -> Iterator[np.ndarray]:
    """The lossless frames first…first+count-1 kept by PartWriter, one at a time; a missing or
    damaged one is a one-line error (the render cannot be resumed to the same video)."""
    for f in pending_files(folder, first, count):
        try:
            yield np.load(f)
        except (OSError, ValueError, EOFError):
            raise UserError(f"the lossless frame {f} of an interrupted part is missing or damaged",
                            "run with --overwrite to start the render again") from None


def pending_intact(folder: Path, first: int, count: int) -> bool:
    """Whether every lossless frame first…first+count-1 is there, whole."""
    try:
        for f in pending_files(folder, first, count):
            np.load(f, mmap_mode="r")  # reads the header and checks the file holds the data
        return True
    except (OSError, ValueError, EOFError):
        return False


def sync_files(paths: Iterable[Path]) -> None:
    """fsync each file: what a checkpoint names must be on the disk before the checkpoint."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Soundtrack:
    """The audio a video carries: `seconds` of `path` from `start` (None: to its end), stream
    copied as it is (`copy`, for codecs an MP4 holds and an untrimmed track) or as AAC."""

    path: Path
    start: float = 0.0
    seconds: float | None = None
    copy: bool = False

    def args(self) -> list[str]:
        """ffmpeg input options and the input itself."""
        return ((["-ss", f"{self.start:.6f}"] if self.start > 0 else [])
                + (["-t", f"{self.seconds:.6f}"] if self.seconds is not None else []) + ["-i", str(self.path)])

    def codec(self) -> list[str]:
        return ["-c:a", "copy"] if self.copy else ["-c:a", "aac", "-b:a", "192k"]


def concat(parts: list[Path], output: Path, audio: Soundtrack | None = None) -> None:
    """Join parts without re-encoding (same codec settings, so a stream copy is exact), with
    the soundtrack if there is one. The output is replaced only once the joined file is
    complete."""
    tmp = output.with_name(output.name + ".tmp.mp4")
    listing = None
    if len(parts) == 1:
        source = ["-i", str(parts[0])]
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            for p in parts:
                f.write(f"file '{str(p.resolve()).replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'\n")
            listing = f.name
        source = ["-f", "concat", "-safe", "0", "-i", listing]
    sound = [] if audio is None else [*audio.args(), "-map", "0:v:0", "-map", "1:a:0", *audio.codec()]
    try:
        _run([ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", *source, *sound, "-c:v", "copy",
              "-movflags", "+faststart", str(tmp)], "joining parts into", output, written=tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
        if listing:
            os.unlink(listing)


def _run(cmd: list[str], what: str, path: Path, written: Path | None = None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True)
    if r.returncode != 0:
        raise _ffmpeg_failure(what, path, r.stderr, written)


def probe(path: Path) -> tuple[int, float]:
    """(frame count, duration in seconds) as ffmpeg decodes the file."""
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))


def read_frames(path: Path) -> list[np.ndarray]:
    """Decode a video into RGB uint8 frames (tests and previews only: holds them all)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]


def middle_frame(path: Path) -> np.ndarray:
    """The frame in the middle of a video (RGB uint8), or a one-line error."""
    import imageio_ffmpeg

    try:
        gen = imageio_ffmpeg.read_frames(str(path))
        seconds = next(gen)["duration"]  # from the header: no need to decode the whole video
        gen.close()
        gen = imageio_ffmpeg.read_frames(str(path), input_params=["-ss", f"{seconds / 2:.3f}"])
        meta = next(gen)
        w, h = meta["size"]
        frame = np.frombuffer(next(gen), np.uint8).reshape(h, w, 3)
        gen.close()
        return frame
    except (OSError, RuntimeError, StopIteration) as e:
        raise UserError(f"cannot read a frame of {path} ({type(e).__name__})", "check the video plays") from None


def gif_preview(video: Path, gif: Path, seconds: float = 6.0, width: int = 320, fps: int = 12) -> None:
    """A short looping GIF with its own palette (the default web palette bands badly)."""
    vf = (f"fps={fps},scale={width}:-2:flags=lanczos,split[a][b];"
          "[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a")
    _run([ffmpeg_exe(), "-y", "-loglevel", "error", "-t", str(seconds), "-i", str(video), "-vf", vf,
          "-loop", "0", str(gif)], "writing", gif)
