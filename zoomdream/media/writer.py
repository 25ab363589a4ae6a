"""Writing the video: frames streamed into ffmpeg on a background thread so encoding overlaps
dreaming, in MP4 parts that a checkpoint can name, then the parts joined (with the
soundtrack) and a GIF preview.

We build the ffmpeg command ourselves rather than use imageio_ffmpeg.write_frames: its
defaults add `-crf 25` (quality=5) and rescale to multiples of 16 (1080 → 1088), it does
not report ffmpeg's exit status, and here ffmpeg must sit in its own process group so a
terminal's Ctrl-C reaches only us and we can close the file cleanly."""

from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..base.errors import UserError, write_error
from .codecs import CODECS, audio_codec, index_first
from .ffmpeg import failure, run_or_fail, start


class Encoder:
    """One ffmpeg process writing one video file from raw RGB frames on its stdin, with the
    codec's output options (`codec`: codecs.Codec.args; H.264 at crf 18 if not given)."""

    def __init__(self, path: Path, width: int, height: int, fps: float, codec: list[str] | None = None):
        self.path = Path(path)
        self.frames = 0
        # No faststart here: the joined file gets it, and each part would be rewritten for nothing.
        args = [
            "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-r", _fps_arg(fps), "-i", "-", "-an",
            *(codec or CODECS["h264"].args("yuv420p", 18, "medium", self.path.suffix)), str(self.path),
        ]  # fmt: skip
        self._size = width * height * 3
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = start(args, stdin=subprocess.PIPE, stderr=self._log)
        except UserError:
            self._log.close()
            raise

    def write(self, frame: np.ndarray) -> None:
        assert frame.dtype == np.uint8 and frame.size == self._size, "frame must be H×W×3 uint8 of the video's size"
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            self._proc.wait()
            raise failure("writing", self.path, self._stderr()) from None
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
            raise failure("writing", self.path, err)

    def abort(self) -> None:
        self._proc.kill()
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        self._proc.wait()
        self._log.close()


def _fps_arg(fps: float) -> str:
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
    copied as it is (`copy`, for codecs an MP4 holds and an untrimmed track) or encoded as the
    container takes it (AAC; Opus in WebM)."""

    path: Path
    start: float = 0.0
    seconds: float | None = None
    copy: bool = False

    def args(self) -> list[str]:
        """ffmpeg input options and the input itself."""
        return ((["-ss", f"{self.start:.6f}"] if self.start > 0 else [])
                + (["-t", f"{self.seconds:.6f}"] if self.seconds is not None else []) + ["-i", str(self.path)])

    def codec(self, output: Path) -> list[str]:
        return ["-c:a", "copy"] if self.copy and output.suffix.lower() != ".webm" else audio_codec(output)


def concat(parts: list[Path], output: Path, audio: Soundtrack | None = None,
           tags: dict[str, str] | None = None) -> None:
    """Join parts without re-encoding (same codec settings, so a stream copy is exact), with
    the soundtrack if there is one and `tags` as the container's metadata, the index before
    the data. The output is replaced only once the joined file is complete."""
    for p in parts:  # ffmpeg's concat demuxer ends the video quietly at a missing part
        if not p.is_file():
            raise UserError(f"part {p} of {output} is missing, so the parts cannot be joined",
                            "run with --overwrite to start the render again")
    tmp = output.with_name(output.name + ".tmp" + output.suffix)
    listing = None
    if len(parts) == 1:
        source = ["-i", str(parts[0])]
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            for p in parts:
                f.write(f"file '{str(p.resolve()).replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'\n")
            listing = f.name
        source = ["-f", "concat", "-safe", "0", "-i", listing]
    sound = [] if audio is None else [*audio.args(), "-map", "0:v:0", "-map", "1:a:0", *audio.codec(output)]
    meta = [arg for k, v in (tags or {}).items() for arg in ("-metadata", f"{k}={v}")]
    try:
        run_or_fail(["-y", "-nostdin", "-loglevel", "error", *source, *sound, "-c:v", "copy", *meta,
                     *index_first(output), str(tmp)], "joining parts into", output, written=tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
        if listing:
            os.unlink(listing)


def gif_preview(video: Path, gif: Path, seconds: float = 6.0, width: int = 320, fps: int = 12) -> None:
    """A short looping GIF with its own palette (the default web palette bands badly)."""
    vf = (f"fps={fps},scale={width}:-2:flags=lanczos,split[a][b];"
          "[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a")
    run_or_fail(["-y", "-loglevel", "error", "-t", str(seconds), "-i", str(video), "-vf", vf, "-loop", "0", str(gif)],
                "writing", gif)
