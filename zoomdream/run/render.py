"""Rendering a video: the frame loop feeding the encoder, with checkpoints, resume, clean
interruption and progress.

The video is written in MP4 parts of `checkpoint_every` frames on fixed boundaries, into the
state folder (state.py); the output file is the parts joined by a stream copy. At each
boundary the part is closed and a checkpoint written before the next frame is dreamed, so a
SIGKILL loses at most the frames since the last boundary. Ctrl-C, SIGTERM or a crash close the
part in progress and join what exists, so the output always plays and holds every finished
frame; `--resume` re-encodes that part whole from its lossless frames and carries on, and the
video comes out identical, decoded frame for frame, to one that never stopped."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..base.errors import UserError, write_error
from ..base.progress import Progress
from ..engine.dream import Dreamer
from ..engine.images import fit, load_picture, save_image
from ..engine.models import load_network, resolve_device
from ..loops.footage import FootageSettings, FootageState, footage_frames
from ..loops.zoom import LoopSettings, LoopState, VideoState, colour_hold, start_frame, video_frames
from ..media.audio import CACHE as AUDIO_CACHE
from ..media.audio import save as save_features
from ..media.clip import read
from ..media.codecs import CODECS, container, resolved_crf
from ..media.ffmpeg import check_ffmpeg
from ..media.writer import (Encoder, PartWriter, concat, gif_preview, load_pending, pending_files, pending_intact,
                            sync_files)
from ..timeline.presets import Preset
from .jobs import FootageJob, RenderJob, RenderResult, settings_hash
from .provenance import check_weights, record, version_note, video_tags
from .signals import Stop, with_salvage
from .state import (CHECKPOINT, PENDING, RenderState, StateLock, Video, clear, load_checkpoint, remove,
                    save_checkpoint, state_dir)


def render_footage(job: FootageJob, log: Callable[[str], None] | None = None) -> RenderResult:
    """Dream a video file, frame by frame, into job.output, with its audio."""
    log = log or _stderr
    job.check()
    check_ffmpeg()
    preset = job.preset
    feats, schedule = job.analysed(log)
    dreamer = Dreamer(load_network(preset.model, job.weights, resolve_device(job.device)), preset.precision)
    for seg in preset.segments:
        dreamer.bound(seg.objective)
    settings = FootageSettings(preset.fps, preset.seed, job.flow, job.blend)

    def frames(video: FootageState) -> Iterator[tuple[int, int | None, np.ndarray]]:
        source = read(job.clip, preset.width, preset.height)
        return footage_frames(dreamer, schedule, source, video, settings)

    return run(job, dreamer, lambda: FootageState(0), FootageState, frames, log,  # type: ignore[arg-type]
               keep=None if feats is None else lambda sdir: save_features(feats, sdir))


def render(job: RenderJob, log: Callable[[str], None] | None = None) -> RenderResult:
    """Render a zoom: set up, then frame by frame (encode, checkpoint, progress), then finish."""
    log = log or _stderr
    job.check()
    check_ffmpeg()  # before any dreaming: a render that cannot be written is not started
    preset = job.preset
    feats, schedule = job.analysed(log)
    dreamer, start = prepare(preset, job.input, job.device, job.weights, start=not job.resume)
    return run(job, dreamer, lambda: VideoState(LoopState(0, start)), VideoState,  # type: ignore[arg-type]
               lambda video: video_frames(dreamer, schedule, video, loop_settings(preset), preset.tail), log,
               keep=None if feats is None else lambda sdir: save_features(feats, sdir))


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def run(job: RenderJob, dreamer: Dreamer, fresh: Callable[[], Video], kind: type[Video],
        frames: Callable[[Video], Iterator[tuple[int, int | None, np.ndarray]]],
        log: Callable[[str], None] | None = None, keep: Callable[[Path], None] | None = None) -> RenderResult:
    """The part every render shares: the state folder (fresh, or resumed from its checkpoint as
    a `kind`), then `frames(video)` (n, position in the video, frame) into the encoder.
    `keep(folder)` saves what a resume should find in a fresh state folder."""
    log = log or _stderr
    out, preset = Path(job.output), job.preset
    digest = settings_hash(job, dreamer.network)
    if job.like is not None:
        check_weights(job.like, dreamer.network, job.like_path)
        note = version_note(job.like, job.like_path)
        if note:
            log(note)
    tags = video_tags(record(job, dreamer.network, digest))
    if job.frames_dir is not None:
        try:
            Path(job.frames_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(Path(job.frames_dir), e) from None
    sdir = state_dir(out)
    sdir.mkdir(exist_ok=True)
    lock = StateLock(sdir, out)
    try:
        if job.resume:
            state = _resumed(sdir, digest, dreamer.device, log, out, preset, kind)
            if state.every != job.checkpoint_every:
                log(f"keeping the interrupted render's {state.every} frames per checkpoint (the parts' boundaries)")
        else:
            clear(sdir)
            if keep is not None:
                keep(sdir)
            state = RenderState(fresh(), job.checkpoint_every)
        return _run(job, state, digest, frames(state.video), tags, log)
    finally:
        lock.release()


def prepare(preset: Preset, input: str | Path | None, device: str, weights: str | Path | None,
            start: bool = True) -> tuple[Dreamer, torch.Tensor | None]:
    """Everything a video needs before its first frame, in the order that fails fastest: frame
    0's input (a bad photo fails before the network loads), the network, and every segment's
    objective bound (a bad guide image fails before any frame). `start=False`: a resume, which
    starts from its checkpoint instead."""
    dev = resolve_device(device)
    if start and input is None and preset.start == "photo":
        raise UserError(f"preset '{preset.name}' starts from a photo", "give an INPUT image")
    picture = read_photo(input)
    frame0 = first_input(preset, picture, dev) if start else None
    dreamer = Dreamer(load_network(preset.model, weights, dev), preset.precision, picture)
    for seg in preset.segments:
        dreamer.bound(seg.objective)
    return dreamer, frame0


def read_photo(path: str | Path | None) -> np.ndarray | None:
    """The input photo, decoded once: frame 0 starts from it and objectives name it as INPUT."""
    if path is None:
        return None
    return load_picture(path)


def first_input(preset: Preset, photo: np.ndarray | None, device: torch.device) -> torch.Tensor:
    """Frame 0's input: the photo fitted to the frame, or the preset's noise or colour."""
    img = None if photo is None else fit(photo, preset.width, preset.height)
    return start_frame(preset.width, preset.height, preset.start, preset.seed, device, img)


def _resumed(sdir: Path, digest: str, device: torch.device, log: Callable[[str], None], out: Path,
             preset: Preset, kind: type[Video]) -> RenderState:
    ck = load_checkpoint(sdir / CHECKPOINT)
    if ck["hash"] != digest:
        raise UserError(f"settings changed since {out} was started, so resuming would not give the same video",
                        "resume with the original settings, or use --overwrite to start again")
    state = RenderState.from_checkpoint(ck, device, kind)
    for name, _ in state.parts:  # checked before anything is removed: a refusal leaves all as it was
        if not _nonempty_file(sdir / name):
            raise UserError(f"part {sdir / name} of the interrupted render is missing or empty, so resuming "
                            f"would not give the whole video", "run with --overwrite to start the render again")
    known = {name for name, _ in state.parts} | {CHECKPOINT, StateLock.NAME, PENDING, AUDIO_CACHE}
    for f in sdir.iterdir():  # a part cut short, or written after the checkpoint (a kill), is redone
        if f.name not in known:
            f.unlink()
    kept = {f.name for f in pending_files(sdir / PENDING, state.complete, state.pending)}
    for f in (sdir / PENDING).glob("*"):  # lossless frames past the checkpoint are redone too
        if f.name not in kept:
            f.unlink()
    if not pending_intact(sdir / PENDING, state.complete, state.pending):
        raise UserError(f"the lossless frames of the part {out} was cut short in are missing or damaged",
                        "run with --overwrite to start the render again")
    log(f"resuming {out} at frame {state.video.index}/{preset.frames + preset.tail}")
    return state


def _nonempty_file(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _run(job: RenderJob, state: RenderState, digest: str, frames: Iterator[tuple[int, int | None, np.ndarray]],
         tags: dict[str, str], log: Callable[[str], None]) -> RenderResult:
    preset, sdir, every = job.preset, state_dir(Path(job.output)), state.every
    total = preset.frames + preset.tail
    first = state.video.index
    error: BaseException | None = None
    interrupted: str | None = None
    progress = Progress(total, first, log) if job.progress else None
    # x264's medium preset only where every frame is dreamed on the CPU: there its 16 ms a 512²
    # frame (2 cores) is 4% of the frame. It encodes 1080p at 22 frames/s on 16 cores, slower
    # than an H200 dreams them (27/s), and would be 10% of a cadence-3 frame on the CPU;
    # veryfast takes a third of the time for 0.5 dB less (PSNR, crf 18; bench/gpu.py, tuning).
    cpu = resolve_device(job.device).type == "cpu"
    speed = "medium" if cpu and preset.cadence == 1 else "veryfast"
    codec = CODECS[preset.codec]
    options = codec.args(codec.pix_fmt(preset.pix_fmt), resolved_crf(preset.codec, preset.crf), speed,
                         container(job.output))
    # Up to 256 MB of frames wait for the encoder (8 to 64 frames): closing a part, syncing its
    # lossless frames and saving the checkpoint stall the encoder thread for a moment, and
    # cheap frames (cadence, a GPU) would otherwise queue up against it and stall the dream.
    depth = max(8, min(64, (256 << 20) // (preset.width * preset.height * 3)))
    writer = PartWriter(lambda pos: Encoder(sdir / part_name(pos, every, job.output), preset.width, preset.height,
                                            preset.fps, options), sdir / PENDING, depth)
    t0 = time.perf_counter()
    with Stop() as stop:
        try:
            with stop.soft():
                for pos, frame in enumerate(load_pending(sdir / PENDING, state.complete, state.pending),
                                            start=state.complete):
                    writer.write(pos, frame)  # the part an interruption cut short, re-encoded whole
            # A second Ctrl-C may cut the dreaming of a frame short, never the bookkeeping after it.
            for n, pos, frame in frames:
                with stop.soft():
                    _keep(job, state, writer, digest, n, pos, frame)
                    if progress:
                        progress.update(n + 1)
                    if job.on_frame is not None:
                        job.on_frame(n)
                if job.stop_after is not None and n + 1 - first >= job.stop_after and n + 1 < total:
                    stop.requested = "stop_after"
                if stop.requested:
                    interrupted = stop.requested
                    break
        except KeyboardInterrupt:
            interrupted = stop.requested or "SIGINT"
        except BaseException as e:  # keep every finished frame, then report the failure
            error = e
        finally:
            stop.hard = False  # for good: finishing is quick, and cutting it short would lose the video
            frames.close()  # type: ignore[attr-defined]  # stops a footage reader's ffmpeg now
            if progress:
                progress.stop()
        return _finish(job, state, writer, digest, interrupted, error, first, time.perf_counter() - t0, tags, log)


def _keep(job: RenderJob, state: RenderState, writer: PartWriter, digest: str, n: int, pos: int | None,
          frame: np.ndarray) -> None:
    """Frame n, at position `pos` of the video (None: held back to close a loop): into the
    video and --frames-dir, and at a boundary, a checkpoint."""
    if pos is not None:
        writer.write(pos, frame)
        state.pending += 1
        if job.frames_dir is not None:
            save_image(Path(job.frames_dir) / f"frame_{pos:06d}.png", frame)
    every = state.every
    at_boundary = (pos + 1) % every == 0 if pos is not None else (n + 1) % every == 0
    if at_boundary and n + 1 < job.preset.frames + job.preset.tail:
        part = None if pos is None else part_name(pos, every, job.output)
        _checkpoint(state, writer, state_dir(Path(job.output)), digest, part)


def part_name(pos: int, every: int, output: str | Path = "out.mp4") -> str:
    """The part that frame `pos` of the video belongs to: parts start every `every` frames, in
    the output's own container (a stream copy joins them without a change of timestamps)."""
    return f"part-{pos // every:05d}{container(output)}"


def loop_settings(preset: Preset) -> LoopSettings:
    strength, held_from = colour_hold(preset.color, preset.color_strength)
    return LoopSettings(preset.fps, preset.seed, preset.warmup, strength, preset.momentum, preset.cadence, held_from)


def _checkpoint(state: RenderState, writer: PartWriter, sdir: Path, digest: str, part: str | None) -> None:
    """At a part boundary (or every so many held-back frames of a loop): close the part, then
    write the checkpoint, and wait for both, so that the checkpoint is never behind."""
    after = dataclasses.replace(state, parts=[*state.parts, (part, state.pending)], pending=0) if part else state
    payload = after.to_checkpoint(digest)
    writer.cut(lambda: save_checkpoint(payload, sdir / CHECKPOINT))
    writer.sync()
    state.parts, state.pending = after.parts, after.pending


def _finish(job: RenderJob, state: RenderState, writer: PartWriter, digest: str, interrupted: str | None,
            error: BaseException | None, first: int, seconds: float, tags: dict[str, str],
            log: Callable[[str], None]) -> RenderResult:
    """Close the last part, checkpoint if unfinished, join the parts into the output."""
    preset, out, sdir = job.preset, Path(job.output), state_dir(Path(job.output))
    finished = state.video.index >= preset.frames + preset.tail and interrupted is None and error is None
    payload = state.to_checkpoint(digest)
    try:
        writer.close(finished, None if finished else lambda: save_checkpoint(payload, sdir / CHECKPOINT))
    except BaseException as e:
        error = error or e
        if not finished:
            _checkpoint_after_writer_failure(state, payload, sdir)
    complete = {name for name, _ in state.parts}
    last = [p for p in writer.finished if p[0] not in complete]  # closed just now: the end, or cut short
    if finished:
        state.parts, state.pending = state.parts + last, 0
    in_file = state.parts + ([] if finished else last)
    files, shown = [sdir / name for name, _ in in_file], sum(n for _, n in in_file)
    joined = False
    if files:
        try:
            concat(files, out, job.soundtrack(shown), tags)
            joined = True
        except Exception as e:  # the parts and the checkpoint stay in the state folder for --resume
            error = error or e
    result = RenderResult(output=out, frames=shown if joined else 0, total=preset.frames, seconds=seconds,
                          interrupted=interrupted is not None or error is not None,
                          frames_rendered=state.video.index - first, signal=interrupted, fps=preset.fps,
                          width=preset.width, height=preset.height, draft=job.draft, **state.video.figures())
    if error is not None:
        where = (f"the {shown} finished frames are in {out}" if joined
                 else f"the finished frames are kept in {sdir}" if files or state.shown else "no frame was finished")
        raise with_salvage(error, where, log)
    if finished:
        remove([sdir])
        if job.gif is not None:
            gif_preview(out, Path(job.gif))
    return result


def _checkpoint_after_writer_failure(state: RenderState, payload: dict, sdir: Path) -> None:
    """The writer stopped (a full disk, a dead ffmpeg) before it could checkpoint. If every
    frame since the last complete part is kept losslessly, checkpoint here, so that --resume
    goes on from the last finished frame; otherwise the last checkpoint stands."""
    if not pending_intact(sdir / PENDING, state.complete, state.pending):
        return
    try:
        sync_files(pending_files(sdir / PENDING, state.complete, state.pending))
        save_checkpoint(payload, sdir / CHECKPOINT)
    except (OSError, UserError):
        pass
