"""The Python API: the same jobs as the command line, for notebooks and scripts. The command
line is a thin adapter over these functions; both check every value with the same
declarations (settings.py), so a bad value gets the same one-line UserError from either.

    import zoomdream
    out = zoomdream.dream("cat.jpg", objective="features.13")        # H×W×3 uint8
    zoomdream.render("zoom.mp4", preset="deep-zoom", seconds=5)
    zoomdream.dream_video("clip.mp4", "dreamed.mp4", end=4)         # your footage, dreamed
    zoomdream.sweep("tries", seeds="0-3", vary=["zoom=1.1,1.3"])     # many renders, and sheet.png
    for frame in zoomdream.frames(preset="default", frames=10): ...   # H×W×3 uint8
    grid = zoomdream.atlas("cat.jpg", "atlas.png")                    # every layer's look
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dream import Dreamer, DreamStats
from .errors import UserError
from .frames import VideoState, LoopState, video_frames
from .images import check_min_size, load_image, resize_long_side, save_image, to_numpy, to_tensor, to_uint8
from .models import Network, load_network, resolve_device
from .objectives import DEFAULT_OBJECTIVE, LOGITS, parse_objective
from .presets import Preset, check_objective_files, load_preset
from .render import FootageJob, RenderJob, RenderResult, footage_preset, loop_settings, prepare, render_footage
from .render import render as render_job
from .settings import DEFAULT_MODEL, AtlasOptions, DreamSettings, FootageOptions, StillOptions, build


def _network(model: str | Network | None, weights: str | Path | None, device: str | torch.device) -> Network:
    if isinstance(model, Network):
        return model
    return load_network(model or DEFAULT_MODEL, weights, resolve_device(device) if isinstance(device, str)
                        else device)


def dream(
    image: str | Path | np.ndarray | torch.Tensor,
    objective: str | None = None,
    model: str | Network | None = None,
    *,
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
    step_size, jitter, tile, tile_overlap, blur); None or left out means the default. A photo
    file is scaled to `size` on its long side (default 512; 0: as it is); an H×W×3 array only
    when `size` is given. Both come back as H×W×3 uint8. A 1×3×H×W float tensor is dreamed at
    its own size and comes back as a tensor.
    `stats` collects steps, seconds and the objective before and after. `source` names where
    the values came from in error messages."""
    dream_settings = build(DreamSettings, settings, source)
    opts = build(StillOptions, {"size": size, "seed": seed, "precision": precision}, source)
    obj = parse_objective(objective or DEFAULT_OBJECTIVE)
    check_objective_files(obj, has_input=True)
    as_tensor = isinstance(image, torch.Tensor)
    scale = opts.size if size is not None or isinstance(image, (str, Path)) else 0
    if isinstance(image, (str, Path)):
        image = load_image(image)
        check_min_size(image, "input image")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"image array has shape {image.shape}", "pass H×W×3 RGB")
        image = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image
        image = to_tensor(resize_long_side(image, scale) if scale else image)
    net = _network(model, weights, device)
    dreamer = Dreamer(net, opts.precision, to_numpy(image))  # the image is INPUT to its own terms
    dreamer.bound(obj)  # names checked, guide images loaded, before the first step
    x = image.to(net.device)
    if stats is not None:
        stats.before = dreamer.evaluate(x, obj)
    out = dreamer(x, obj, dream_settings, torch.Generator().manual_seed(opts.seed), stats)
    if stats is not None:
        stats.after = dreamer.evaluate(out, obj)
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
    feats = None
    if audio is not None:
        from .audio import features

        given = overrides.get("seconds") is not None or overrides.get("frames") is not None
        feats = features(audio, p.fps, p.frames if given else None)
        p = p if given else p.with_overrides(source=source, frames=feats.frames)
    schedule = p.check_expressions(None if feats is None else feats.per_frame)
    dreamer, start = prepare(p, input, device, weights)
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
    device: str = "auto",
    weights: str | Path | None = None,
    frames_dir: str | Path | None = None,
    gif: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int | None = None,
    progress: bool = False,
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
    `log` receives the render's messages (default: stderr)."""
    p = load_preset(preset).with_overrides(source=source, **overrides)
    if audio is not None and overrides.get("seconds") is None and overrides.get("frames") is None:
        from .audio import seconds

        p = p.with_overrides(source=source, seconds=seconds(audio))
    job = RenderJob(preset=p.drafted() if draft else p, draft=draft, output=Path(output),
                    input=input, audio=audio, device=device, weights=weights,
                    frames_dir=Path(frames_dir) if frames_dir else None,
                    gif=Path(gif) if gif else None, resume=resume, overwrite=overwrite, progress=progress,
                    source=source, **({"checkpoint_every": checkpoint_every} if checkpoint_every is not None else {}))
    return render_job(job, log)


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
    device: str = "auto",
    weights: str | Path | None = None,
    frames_dir: str | Path | None = None,
    gif: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int | None = None,
    progress: bool = False,
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
    from .clip import probe

    opts = build(FootageOptions, {"flow": flow, "blend": blend, "start": start, "end": end}, source)
    clip = probe(input, opts.start, opts.end)
    p = load_preset(preset).with_overrides(source=source, objective=objective, **overrides)
    job = FootageJob(preset=footage_preset(p, clip, size, source), clip=clip, flow=opts.flow, blend=opts.blend,
                     output=Path(output), input=clip.path, device=device, weights=weights,
                     frames_dir=Path(frames_dir) if frames_dir else None, gif=Path(gif) if gif else None,
                     resume=resume, overwrite=overwrite, progress=progress, source=source,
                     **({"checkpoint_every": checkpoint_every} if checkpoint_every is not None else {}))
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
    progress: bool = False,
    **overrides: Any,
) -> list:
    """Render the grid `seeds` ("0-7") × each of `vary` ("KEY=V1,V2") into `folder`, named after
    what varies, and write folder/sheet.png. Finished videos are skipped and unfinished ones
    resumed, so calling it again finishes an interrupted sweep. `jobs`: renders at once here;
    `ray`: "auto", "local" or HOST:PORT to run each as a Ray task. `overrides`: preset keys for
    every job (seconds, size, objective, zoom, …). Returns each job's outcome."""
    from .batch import contact_sheet, run_batch, sweep_jobs

    specs = sweep_jobs(folder, str(preset), seeds, vary, None if input is None else str(input),
                       None if audio is None else str(audio), device, **overrides)
    outcomes = run_batch(specs, jobs=jobs, ray=ray, overwrite=overwrite, progress=progress)
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
    progress: bool = False,
) -> list:
    """Run the renders a jobs file lists (see README, Batches); `sheet`: also a contact sheet."""
    from .batch import contact_sheet, read_jobs, run_batch

    specs = read_jobs(jobs_file, device)
    outcomes = run_batch(specs, jobs=jobs, ray=ray, overwrite=overwrite, progress=progress)
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
    progress: bool = False,
    source: str = "zoomdream.atlas()",
    **options: Any,
) -> np.ndarray:
    """One labelled grid of `image` dreamed at every layer (H×W×3 uint8), written to `output`
    if given. `options` are AtlasOptions: size (of a cell), layers ("all" or "L1,L2"),
    channels ("LAYER:N": also the N most excited channels of LAYER), seed."""
    from .atlas import atlas as make_atlas
    from .models import net_info

    opts = build(AtlasOptions, options, source)
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
        image = load_image(image)
        check_min_size(image, "input image")
    grid = make_atlas(_network(model, weights, device), image, opts.size, layers, channels, opts.seed, progress)
    if output is not None:
        save_image(output, grid)
    return grid
