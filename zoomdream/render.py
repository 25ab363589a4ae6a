"""Rendering a video: the frame loop feeding the encoder, with checkpoints, resume, clean
interruption and a progress bar.

A render writes into a state folder beside the output (`OUT.mp4.zoomdream/`): MP4 parts, each
closed at a checkpoint, and the checkpoint itself. The output file is the parts joined by a
stream copy. Ctrl-C, SIGTERM or a crash close the current part and join what exists, so the
output always plays and holds every finished frame; `--resume` carries on from the checkpoint
and the frames come out identical to an uninterrupted run."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dream import Dreamer
from .errors import UserError, write_error
from .frames import LoopState, dream_frames, loop_blend, start_frame
from .images import save_image, to_uint8
from .models import load_network
from .paths import check_render_paths
from .presets import Preset
from .video import Encoder, PartWriter, check_ffmpeg, concat, gif_preview

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_VERSION = 2


@dataclass(frozen=True)
class RenderJob:
    preset: Preset
    output: Path
    input: str | None = None
    device: str = "auto"
    weights: str | None = None
    frames_dir: Path | None = None
    gif: Path | None = None
    resume: bool = False
    overwrite: bool = False
    checkpoint_every: int = 24  # frames between checkpoints (and MP4 parts)
    progress: bool = True
    stop_after: int | None = None  # stop (as if interrupted) after this many frames; for tests


@dataclass
class RenderResult:
    output: Path
    frames: int  # frames in the output file
    total: int  # frames the finished video will have
    seconds: float
    stability: float  # mean |d[n+1] - move(d[n])| in 0–255 units
    interrupted: bool = False
    frames_rendered: int = 0  # by this run (a resumed render counts from where it resumed)
    signal: str | None = None  # what stopped it early: SIGINT, SIGTERM, …

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(self.frames_rendered, 1)


def state_dir(output: Path) -> Path:
    return output.with_name(output.name + ".zoomdream")


class StateLock:
    """One render per output: an exclusive flock on a file in the state folder. The kernel
    drops a flock when its process dies, so a killed render never leaves a stale lock."""

    NAME = "lock"

    def __init__(self, sdir: Path, output: Path):
        self.fd = os.open(sdir / self.NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(self.fd, 32).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise UserError(f"{output} is being rendered right now by another zoomdream (pid {pid})",
                            "wait for it to finish or stop it, or choose another -o path") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def check_output(job: RenderJob) -> None:
    out = job.output
    check_render_paths(out, job.input, None, job.weights, job.frames_dir, job.gif, job.overwrite or job.resume)
    if state_dir(out).is_dir():
        StateLock(state_dir(out), out).release()  # in use: refused before "unfinished render"
    if job.resume:
        if not (state_dir(out) / CHECKPOINT).is_file():
            raise UserError(f"nothing to resume for {out} (no {state_dir(out).name}/{CHECKPOINT})",
                            "run without --resume to start a new render")
    elif not job.overwrite:
        if state_dir(out).exists():
            raise UserError(f"an unfinished render of {out} is there", "add --resume to continue it or --overwrite to restart")
        if out.exists():
            raise UserError(f"output {out} already exists", "add --overwrite or choose another -o path")


def settings_hash(job: RenderJob, weights_id: str, device: torch.device) -> str:
    """What decides the frames; resume refuses when any of it changed."""
    preset = dataclasses.asdict(job.preset)
    preset.pop("source", None)
    preset.pop("name", None)
    preset.pop("description", None)
    h = hashlib.sha256(json.dumps(preset, sort_keys=True, default=str).encode())
    if job.input:
        h.update(hashlib.sha256(Path(job.input).read_bytes()).digest())
    h.update(f"{weights_id}|{device.type}|{torch.__version__}".encode())
    return h.hexdigest()[:16]


# A checkpoint file: MAGIC, the SHA-256 of the body, then the body (torch.save of plain
# tensors, numbers and strings). The checksum turns a truncated or bit-flipped file into a
# clear refusal instead of a resume from wrong data, which would give a wrong video.
MAGIC = b"zoomdream-checkpoint\n"


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # Serialised in memory first: torch.save writing straight to a full disk fails with an
    # opaque RuntimeError from its zip writer, a plain write with ENOSPC.
    buf = io.BytesIO()
    torch.save(obj, buf)
    body = buf.getvalue()
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + hashlib.sha256(body).digest() + body)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)  # a kill mid-write leaves the old checkpoint whole
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: after a power loss the folder holds the new checkpoint, not the
    old one or neither (the rename lives in the folder's own data)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (Windows): the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path) -> dict:
    fix = "run with --overwrite to start the render again"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read checkpoint {path} ({e.strerror})", fix) from None
    if not data.startswith(MAGIC):
        raise UserError(f"checkpoint {path} is from another zoomdream version or not a checkpoint", fix)
    digest, body = data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
    if hashlib.sha256(body).digest() != digest:
        raise UserError(f"checkpoint {path} is damaged (checksum mismatch: truncated or corrupted on disk)", fix)
    try:
        ck = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"checkpoint {path} is unreadable ({type(e).__name__})", fix) from None
    if not isinstance(ck, dict) or ck.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"checkpoint {path} is from another zoomdream version", fix)
    return ck


class _Stop:
    """SIGINT/SIGTERM ask the loop to stop after the frame in progress; a second Ctrl-C stops
    at once (the unfinished frame is dropped, the finished ones are still saved)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: the caller handles signals
                pass
        # Past a file-size limit the kernel kills the writer with SIGXFSZ. Ignored (which the
        # ffmpeg children inherit), the write fails with EFBIG instead and is reported like a
        # full disk, with the finished frames kept.
        if hasattr(signal, "SIGXFSZ"):
            try:
                self._old[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            except ValueError:
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


class Progress:
    """Progress with an ETA: a live bar on a terminal; in a log (stderr redirected, nohup, CI)
    a plain line after the first frame and then every `every` seconds, so a long render
    visibly lives. ZOOMDREAM_LOG_SECONDS sets `every`."""

    def __init__(self, total: int, done: int, log: Callable[[str], None], tty: bool | None = None):
        self.total, self.first, self.log = total, done, log
        self.every = float(os.environ.get("ZOOMDREAM_LOG_SECONDS", "10"))
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty() if tty is None else tty:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("[bold]dreaming"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self.bar.add_task("frames", total=total, completed=done, rate="")
            self.bar.start()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        per_frame = (now - self.t0) / max(done - self.first, 1)
        rate = f"{1 / per_frame:.2f} fps" if per_frame <= 1 else f"{per_frame:.1f} s/frame"
        if self.bar is not None:
            self.bar.update(self.bar.task_ids[0], completed=done, rate=rate)
        elif done == self.first + 1 or now - self.last >= self.every or done == self.total:
            self.last = now
            eta = _duration(per_frame * (self.total - done))
            self.log(f"frame {done}/{self.total} ({100 * done // self.total}%), {per_frame:.2f} s/frame, ETA {eta}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render(job: RenderJob, log: Callable[[str], None] | None = None) -> RenderResult:
    log = log or (lambda msg: print(msg, file=sys.stderr))
    check_output(job)
    check_ffmpeg()  # before any dreaming: a render that cannot be written is not started
    preset, out = job.preset, Path(job.output)
    sdir = state_dir(out)
    network = load_network(preset.model, job.weights, job.device)
    dreamer = Dreamer(network, preset.precision)
    for seg in preset.segments:
        dreamer.bound(seg.objective)  # fails on a bad guide image before any frame
    weights_id = str(network.source.path.name if network.source.path else network.source.kind)
    digest = settings_hash(job, weights_id, network.device)

    # A bad photo fails here, before the state folder is made: a refused run leaves nothing.
    start = None if job.resume else start_frame(preset, job.input, network.device)
    sdir.mkdir(exist_ok=True)
    lock = StateLock(sdir, out)
    try:
        return _render_locked(job, log, network, dreamer, digest, start)
    finally:
        lock.release()


def _render_locked(job: RenderJob, log: Callable[[str], None], network, dreamer: Dreamer, digest: str,
                   start: torch.Tensor | None) -> RenderResult:
    preset, out, sdir = job.preset, Path(job.output), state_dir(job.output)
    total = preset.frames
    tail = min(round(preset.loop_seconds * preset.fps), total // 2) if preset.loop else 0
    parts: list[tuple[str, int]] = []
    head: list[np.ndarray] = []
    stab_sum, stab_n = 0.0, 0
    prev_moved: torch.Tensor | None = None
    if job.resume:
        ck = load_checkpoint(sdir / CHECKPOINT)
        if ck["hash"] != digest:
            raise UserError(f"settings changed since {out} was started, so resuming would not give the same video",
                            "resume with the original settings, or use --overwrite to start again")
        state = LoopState(ck["index"], ck["frame"].to(network.device),
                          None if ck["color_ref"] is None else ck["color_ref"].to(network.device))
        parts, head = [tuple(p) for p in ck["parts"]], [h.numpy() for h in ck["head"]]
        stab_sum, stab_n = ck["stab_sum"], ck["stab_n"]
        prev_moved = None if ck["prev_moved"] is None else ck["prev_moved"].to(network.device)
        known = {name for name, _ in parts} | {CHECKPOINT, StateLock.NAME}
        for f in sdir.iterdir():  # parts written after the last checkpoint (a kill) are dropped
            if f.name not in known:
                f.unlink()
        log(f"resuming {out} at frame {state.index}/{total + tail}")
    else:
        for f in sdir.iterdir():  # --overwrite: what an earlier render left
            if f.name != StateLock.NAME:
                shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
        assert start is not None
        state = LoopState(0, start)
    if job.frames_dir is not None:
        try:
            Path(job.frames_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(Path(job.frames_dir), e) from None

    counter = [len(parts)]

    def new_part() -> Encoder:
        counter[0] += 1
        return Encoder(sdir / f"part-{counter[0]:05d}.mp4", preset.width, preset.height, preset.fps, preset.crf)

    def checkpoint_payload(st: LoopState) -> dict:
        return {
            "version": CHECKPOINT_VERSION, "hash": digest, "index": st.index, "frame": st.frame.cpu(),
            "color_ref": None if st.color_ref is None else st.color_ref.cpu(),
            "head": [torch.from_numpy(h) for h in head], "stab_sum": stab_sum, "stab_n": stab_n,
            "prev_moved": None if prev_moved is None else prev_moved.cpu(),
        }  # fmt: skip

    def saver(payload: dict) -> Callable[[list[tuple[str, int]]], None]:
        def save(finished: list[tuple[str, int]]) -> None:
            _atomic_save({**payload, "parts": list(parts) + finished}, sdir / CHECKPOINT)

        return save

    writer = PartWriter(new_part)
    first = state.index
    last_state = state
    t0 = time.perf_counter()
    interrupted: str | None = None
    bar = Progress(total + tail, first, log) if job.progress else None
    error: BaseException | None = None
    try:
        with _Stop() as stop:
            for fr in dream_frames(dreamer, preset, state, stop=total + tail):
                n = fr.index
                if prev_moved is not None:
                    stab_sum += float((fr.image - prev_moved).abs().mean()) * 255
                    stab_n += 1
                prev_moved = fr.moved
                frame = to_uint8(fr.image)
                if n < tail:
                    head.append(frame)  # shown last, blended with the tail, to close the loop
                else:
                    if n >= total:
                        frame = loop_blend(frame, head[n - total], n - total, tail)
                    writer.write(frame)
                    if job.frames_dir is not None:
                        save_image(Path(job.frames_dir) / f"frame_{n - tail:06d}.png", frame)
                last_state = fr.state
                done = n + 1
                if bar:
                    bar.update(done)
                if done < total + tail and (done - first) % job.checkpoint_every == 0:
                    writer.cut(saver(checkpoint_payload(last_state)))
                if job.stop_after is not None and done - first >= job.stop_after and done < total + tail:
                    stop.requested = "stop_after"
                if stop.requested:
                    interrupted = stop.requested
                    break
    except KeyboardInterrupt:
        interrupted = "SIGINT"
    except BaseException as e:  # keep every finished frame, then report the failure
        error = e
    finally:
        if bar:
            bar.stop()
    finished = last_state.index >= total + tail and interrupted is None and error is None
    try:
        writer.close(None if finished else saver(checkpoint_payload(last_state)))
    except BaseException as e:
        error = error or e
    seconds = time.perf_counter() - t0
    all_parts = list(parts) + writer.finished
    frames_out = sum(c for _, c in all_parts)
    joined = False
    if all_parts:
        try:
            concat([sdir / name for name, _ in all_parts], out)
            joined = True
        except Exception as e:  # the parts and the checkpoint stay in sdir for --resume
            error = error or e
    result = RenderResult(out, frames_out if joined else 0, total, seconds, stab_sum / max(stab_n, 1),
                          interrupted is not None or error is not None, last_state.index - first, interrupted)
    if error is not None:
        where = (f"the {frames_out} finished frames are in {out}" if joined
                 else f"the finished frames are kept in {sdir}" if all_parts else "no frame was finished")
        raise _with_salvage(error, where, log)
    if finished:
        shutil.rmtree(sdir, ignore_errors=True)
        if job.gif is not None:
            gif_preview(out, Path(job.gif))
    return result


def _with_salvage(error: BaseException, where: str, log: Callable[[str], None]) -> BaseException:
    """The error, telling also where the finished frames are, still on one line."""
    if isinstance(error, UserError):
        return UserError(f"{error.problem}; {where}", error.fix)
    if isinstance(error, FloatingPointError):
        return FloatingPointError(f"{error}; {where}")
    log(f"zoomdream: stopped by an error; {where}")
    return error
