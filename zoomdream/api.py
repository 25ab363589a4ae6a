"""The Python API: the same jobs as the command line, for notebooks and scripts.

    import zoomdream
    out = zoomdream.dream("cat.jpg", objective="features.13")        # H×W×3 uint8
    zoomdream.render("zoom.mp4", preset="deep-zoom", seconds=5)
    for frame in zoomdream.frames(preset="default", frames=10): ...   # H×W×3 uint8
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dream import DreamSettings, Dreamer, DreamStats
from .errors import UserError
from .frames import LoopState, dream_frames, start_frame
from .images import load_image, resize_long_side, to_numpy, to_tensor, to_uint8
from .models import DEFAULT_MODEL, Network, load_network
from .objectives import DEFAULT_OBJECTIVE, parse_objective
from .presets import SEED, Preset, check_number, dream_settings, load_preset
from .render import RenderJob, RenderResult, render as _render

def _network(model: str | Network, weights: str | None, device: str) -> Network:
    return model if isinstance(model, Network) else load_network(model, weights, device)


def dream(
    image: str | Path | np.ndarray | torch.Tensor,
    objective: str = DEFAULT_OBJECTIVE,
    model: str | Network = DEFAULT_MODEL,
    *,
    size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    weights: str | None = None,
    precision: str = "fp32",
    stats: DreamStats | None = None,
    **settings: Any,
) -> np.ndarray | torch.Tensor:
    """Dream one image. `settings` are DreamSettings fields (octaves, octave_scale, steps,
    step_size, jitter, tile, tile_overlap, blur). A path or array gives H×W×3 uint8 back; a
    1×3×H×W tensor gives a tensor."""
    checked = dream_settings(settings, "zoomdream.dream()")
    check_number(seed, "seed", SEED, "zoomdream.dream()")
    net = _network(model, weights, device)
    as_tensor = isinstance(image, torch.Tensor)
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"image array has shape {image.shape}", "pass H×W×3 RGB")
        if size:
            image = resize_long_side(image.astype(np.float32) / 255 if image.dtype == np.uint8 else image, size)
        image = to_tensor(image)
    out = Dreamer(net, precision)(image, parse_objective(objective), checked,
                                  torch.Generator().manual_seed(seed), stats)
    return out if as_tensor else to_uint8(to_numpy(out))


def _preset(preset: str | Path | Preset, overrides: dict[str, Any]) -> Preset:
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    return p.with_overrides(**overrides)


def frames(
    preset: str | Path | Preset = "default",
    input: str | None = None,
    *,
    device: str = "auto",
    weights: str | None = None,
    **overrides: Any,
) -> Iterator[np.ndarray]:
    """Dreamed frames as H×W×3 uint8, one at a time (nothing is written)."""
    p = _preset(preset, overrides)
    net = load_network(p.model, weights, device)
    state = LoopState(0, start_frame(p, input, net.device))
    for fr in dream_frames(Dreamer(net, p.precision), p, state):
        yield to_uint8(fr.image)


def render(
    output: str | Path,
    preset: str | Path | Preset = "default",
    input: str | None = None,
    *,
    device: str = "auto",
    weights: str | None = None,
    frames_dir: str | Path | None = None,
    gif: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> RenderResult:
    """Render a video to `output` (.mp4). `overrides` are preset keys: seconds, frames, fps,
    width, height, seed, loop, crf, …"""
    job = RenderJob(_preset(preset, overrides), Path(output), input, device, weights,
                    Path(frames_dir) if frames_dir else None, Path(gif) if gif else None,
                    resume, overwrite, progress=progress)
    return _render(job)
