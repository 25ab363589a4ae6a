"""The Python API: the same jobs as the command line, for notebooks and scripts. The command
line is a thin adapter over these functions; both check every value with the same
declarations (base/settings.py), so a bad value gets the same one-line UserError from either.

    import zoomdream
    out = zoomdream.dream("cat.jpg", objective="features.13")        # H×W×3 uint8
    zoomdream.render("zoom.mp4", preset="deep-zoom", seconds=5)
    zoomdream.dream_video("clip.mp4", "dreamed.mp4", end=4)         # your footage, dreamed
    zoomdream.sweep("tries", seeds="0-3", vary=["zoom=1.1,1.3"])     # many renders, and sheet.png
    for frame in zoomdream.frames(preset="default", frames=10): ...   # H×W×3 uint8
    grid = zoomdream.atlas("cat.jpg", "atlas.png")                    # every layer's look

Each function names every keyword it takes; the render options (device, weights, frames_dir,
gif, resume, overwrite, checkpoint_every, progress) are RenderOptions fields, None meaning
"the declared default"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base.errors import UserError
from .base.settings import AtlasOptions, DreamSettings, RenderOptions, StillOptions, build, check, declared
from .engine.atlas import atlas as make_atlas
from .engine.catalog import DEFAULT_MODEL, LOGITS, net_info
from .engine.dream import Dreamer, DreamStats, finite
from .engine.images import load_picture, resize_long_side, save_image, to_numpy, to_tensor, to_uint8
from .engine.models import Network, load_network, resolve_device
from .engine.objectives import DEFAULT_OBJECTIVE, parse_objective
from .loops.zoom import LoopState, VideoState, video_frames
from .media.audio import features
from .run.batch import Outcome, read_jobs, sweep_jobs
from .run.jobs import FootageJob, RenderJob, RenderResult, lasts_as_audio
from .run.provenance import like_job, read_record
from .run.render import loop_settings, prepare, render_footage
from .run.render import render as render_job
from .run.runners import run_batch
from .run.sheet import contact_sheet
from .timeline.presets import Preset, check_objective_files, load_preset


def _render_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The render options among a function's arguments: RenderOptions' fields, None meaning
    "not given" (the declared default)."""
    return {k: arguments[k] for k in declared(RenderOptions)}


def _progress(progress: bool | None, source: str) -> bool:
    """The progress option of a batch, sweep or atlas: None is RenderOptions' default, as for a render."""
    return build(RenderOptions, {"progress": progress}, source).progress


def network(model: str | Network | None, weights: str | Path | None = None, device: str | torch.device = "auto",
            source: str = "zoomdream.network()") -> Network:
    """The network `model` names (a Network is returned as it is), its device checked like a flag."""
    if isinstance(model, Network):
        return model
    if isinstance(device, str):
        device = resolve_device(check(RenderOptions, "device", device, source))
    return load_network(model or DEFAULT_MODEL, weights, device)


def dream(
    image: str | Path | np.ndarray | torch.Tensor,
    objective: str | None = None,
    model: str | Network | None = None,
    *,
    output: str | Path | None = None,
    size: int | None = None,
    seed: int | None = None,
    precision: str | None = None,
    device: str = "auto",
    weights: str | Path | None = None,
    stats: DreamStats | None = None,
    source: str = "zoomdream.dream()",
    **settings: Any,
) -> np.ndarray | torch.Tensor:
    """Dream one image. `settings` are DreamSettings fields (octaves, octave_scale, steps,
    step_size, settle, jitter, tile, tile_overlap, the priors blur, tv, decay, scale_jitter,
    rotate_jitter, and the step's shape precondition, bands, band_scale); None or left out
    means the default. A photo
    file is scaled to `size` on its long side (default 512; 0: as it is); an H×W×3 array only
    when `size` is given. Both come back as H×W×3 uint8. A 1×3×H×W float tensor is dreamed at
    its own size and comes back as a tensor; `output`: also written there (.png, .jpg…).
    `stats` collects steps, seconds and the objective before and after. `source` names where
    the values came from in error messages."""
    dream_settings = build(DreamSettings, settings, source)
    opts = build(StillOptions, {"size": size, "seed": seed, "precision": precision}, source)
    obj = parse_objective(objective or DEFAULT_OBJECTIVE)
    check_objective_files(obj, has_input=True)
    as_tensor = isinstance(image, torch.Tensor)
    scale = opts.size if size is not None or isinstance(image, (str, Path)) else 0
    if isinstance(image, (str, Path)):
        image = load_picture(image)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"image array has shape {image.shape}", "pass H×W×3 RGB")
        image = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image
        image = to_tensor(resize_long_side(image, scale) if scale else image)
    net = network(model, weights, device, source)
    dreamer = Dreamer(net, opts.precision, to_numpy(image))  # the image is INPUT to its own terms
    dreamer.bound(obj)  # names checked, guide images loaded, before the first step
    x = image.to(net.device)
    if stats is not None:
        stats.before = dreamer.evaluate(x, obj)
    out = finite(dreamer(x, obj, dream_settings, torch.Generator().manual_seed(opts.seed), stats), "the dream")
    if stats is not None:
        stats.after = dreamer.evaluate(out, obj)
    if output is not None:
        save_image(output, out)
    return out if as_tensor else to_uint8(out)


def frames(
    preset: str | Path | Preset = "default",
    input: str | Path | None = None,
    *,
    audio: str | Path | None = None,
    device: str = "auto",
    weights: str | Path | None = None,
    source: str = "zoomdream.frames()",
    **overrides: Any,
) -> Iterator[np.ndarray]:
    """The frames of a video as H×W×3 uint8, in the order the video shows them (a loop's
    closing cross-fade included), one at a time; nothing is written. `overrides` are preset
    keys: seconds, frames, fps, size (or width and height), seed, loop, …; `audio`: a
    soundtrack for the preset's expressions to follow (its length is the video's unless
    seconds or frames are given)."""
    p = load_preset(preset).with_overrides(source=source, **overrides)
    input = p.photo_path if input is None else input
    whole = lasts_as_audio(audio, overrides)  # then the analysis says how long: the track is decoded once
    feats = None if audio is None else features(audio, p.fps, None if whole else p.frames)
    if feats is not None and whole:
        p = p.with_overrides(source=source, frames=feats.frames)
    schedule = p.check_expressions(None if feats is None else feats.per_frame)
    p.check_files(input is not None)
    dreamer, start = prepare(p, input, check(RenderOptions, "device", device, source), weights)
    state = VideoState(LoopState(0, start))  # type: ignore[arg-type]
    for _, pos, frame in video_frames(dreamer, schedule, state, loop_settings(p), p.tail):
        if pos is not None:
            yield frame


def render(
    output: str | Path,
    preset: str | Path | Preset = "default",
    input: str | Path | None = None,
    *,
    audio: str | Path | None = None,
    # the render options (RenderOptions; tests check every one is here)
    device: str | None = None, weights: str | Path | None = None, frames_dir: str | Path | None = None,
    gif: str | Path | None = None, resume: bool | None = None, overwrite: bool | None = None,
    checkpoint_every: int | None = None, progress: bool | None = None,
    draft: bool = False,
    log: Callable[[str], None] | None = None,
    source: str = "zoomdream.render()",
    **overrides: Any,
) -> RenderResult:
    """Render a video to `output` (.mp4). `overrides` are preset keys: seconds, frames, fps,
    size (or width and height), seed, model, loop, crf, precision, cadence, momentum, objective…
    `audio`: a soundtrack, which the MP4 carries and the preset's expressions follow (beat,
    bass, …); the video lasts as long as it unless seconds or frames are given.
    `draft`: half the size, cadence 6, one octave (Preset.drafted), to judge a preset fast.
    The render options are RenderOptions' (None: its default; progress shows on a terminal).
    `log` receives the render's messages (default: stderr)."""
    options = _render_options(locals())
    job = RenderJob.from_request(output, preset, input, audio=audio, draft=draft, source=source, options=options,
                                 **overrides)
    return render_job(job, log)


def render_like(
    video: str | Path,
    output: str | Path,
    *,
    # the render options (RenderOptions; tests check every one is here)
    device: str | None = None, weights: str | Path | None = None, frames_dir: str | Path | None = None,
    gif: str | Path | None = None, resume: bool | None = None, overwrite: bool | None = None,
    checkpoint_every: int | None = None, progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    source: str = "zoomdream.render_like()",
) -> RenderResult:
    """Make `video` (a zoom or a dreamed video zoomdream wrote) again into `output`, from the
    settings it carries: its preset with every override, seed, model and input files, refused
    in one line if one of those files is gone or has changed. On the same machine the frames
    are the same."""
    job = like_job(video, output, _render_options(locals()), source)
    return render_footage(job, log) if isinstance(job, FootageJob) else render_job(job, log)


def info(video: str | Path) -> dict[str, Any]:
    """The settings a video zoomdream wrote carries (run/provenance.py: preset TOML, seed,
    model, the weights' and inputs' SHA-256, codec, versions), or a one-line UserError."""
    return read_record(video)


def dream_video(
    input: str | Path,
    output: str | Path,
    preset: str | Path | Preset = "footage",
    *,
    objective: str | None = None,
    size: str | None = None,
    flow: str | None = None,
    blend: float | None = None,
    start: float | None = None,
    end: float | None = None,
    # the render options (RenderOptions; tests check every one is here)
    device: str | None = None, weights: str | Path | None = None, frames_dir: str | Path | None = None,
    gif: str | Path | None = None, resume: bool | None = None, overwrite: bool | None = None,
    checkpoint_every: int | None = None, progress: bool | None = None,
    source: str = "zoomdream.dream_video()",
    **overrides: Any,
) -> RenderResult:
    """Dream a video file (anything ffmpeg decodes) into `output` (.mp4), frame by frame, with
    the dream carried along the footage's motion (optical flow) and its audio copied. The clip
    sets the length and frame rate; `size` ("WxH") crops to an exact size, otherwise the clip
    keeps its shape inside the preset's size. `flow`: dis, farneback or off; `blend`: share of
    the last frame's dream carried on; `start`/`end`: seconds of the input. `objective`
    replaces every segment's; `overrides` are other preset keys (seed, model, crf, precision…).
    The result's `coherence` is the warping error of the output and of the source."""
    options = _render_options(locals())
    job = FootageJob.from_request(input, output, preset, objective=objective, size=size, source=source,
                                  footage=dict(flow=flow, blend=blend, start=start, end=end), options=options,
                                  **overrides)
    return render_footage(job)


def sweep(
    folder: str | Path,
    preset: str | Path = "default",
    *,
    seeds: str | None = None,
    vary: list[str] | None = None,
    input: str | Path | None = None,
    audio: str | Path | None = None,
    jobs: int = 1,
    ray: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool | None = None,
    **overrides: Any,
) -> list[Outcome]:
    """Render the grid `seeds` ("0-7") × each of `vary` ("KEY=V1,V2") into `folder`, named after
    what varies, and write folder/sheet.png. Finished videos are skipped and unfinished ones
    resumed, so calling it again finishes an interrupted sweep. `jobs`: renders at once here;
    `ray`: "auto", "local" or HOST:PORT to run each as a Ray task. `overrides`: preset keys for
    every job (seconds, size, objective, zoom, …). Returns each job's outcome."""
    specs = sweep_jobs(folder, str(preset), seeds, vary, None if input is None else str(input),
                       None if audio is None else str(audio), device, **overrides)
    outcomes = run_batch(specs, jobs=jobs, ray=ray, overwrite=overwrite,
                         progress=_progress(progress, "zoomdream.sweep()"))
    contact_sheet(specs, Path(folder) / "sheet.png")
    return outcomes


def batch(
    jobs_file: str | Path,
    *,
    jobs: int = 1,
    ray: str | None = None,
    sheet: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool | None = None,
) -> list[Outcome]:
    """Run the renders a jobs file lists (see the docs, Batches); `sheet`: also a contact sheet."""
    specs = read_jobs(jobs_file, device)
    outcomes = run_batch(specs, jobs=jobs, ray=ray, overwrite=overwrite,
                         progress=_progress(progress, "zoomdream.batch()"))
    if sheet is not None:
        contact_sheet(specs, sheet)
    return outcomes


def atlas(
    image: str | Path | np.ndarray,
    output: str | Path | None = None,
    model: str | Network | None = None,
    *,
    device: str = "auto",
    weights: str | Path | None = None,
    progress: bool | None = None,
    precondition: str | None = None,
    source: str = "zoomdream.atlas()",
    **options: Any,
) -> np.ndarray:
    """One labelled grid of `image` dreamed at every layer (H×W×3 uint8), written to `output`
    if given. `options` are AtlasOptions: size (of a cell), layers ("all" or "L1,L2"),
    channels ("LAYER:N": also the N most excited channels of LAYER), seed; `precondition` shapes
    every cell's steps (DreamSettings; None: each objective's default)."""
    opts = build(AtlasOptions, options, source)
    if precondition is not None:
        check(DreamSettings, "precondition", precondition, source)
    info = net_info(model.backbone.name if isinstance(model, Network) else model or DEFAULT_MODEL)
    layers = None if opts.layers == "all" else opts.layers.split(",")
    channels = None
    if opts.channels is not None:
        layer, n = opts.channels.split(":")
        channels = (layer, int(n))
    for name in [*(layers or []), *([channels[0]] if channels else [])]:
        if info.layer(name).name == LOGITS:
            raise UserError(f"{LOGITS} has no positions to dream", "name convolutional layers")
    if isinstance(image, (str, Path)):
        image = load_picture(image)
    grid = make_atlas(network(model, weights, device, source), image, opts.size, layers, channels, opts.seed,
                      _progress(progress, source), precondition)
    if output is not None:
        save_image(output, grid)
    return grid
