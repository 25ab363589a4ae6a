"""zoomdream: DeepDream infinite-zoom videos.

The folders follow the data flow, each layer importing only those below it (a contract in
pyproject.toml checks this):

    base/      errors, settings (every setting declared once), paths, progress   no torch
    engine/    the network, objectives, the dream step, images, camera motion, the atlas
    media/     ffmpeg: writing videos, reading clips, a soundtrack's features     no torch
    timeline/  presets, the per-frame schedule, expressions                       no torch
    loops/     the frame loops: a zoom, footage along its optical flow, smoothness
    run/       a render as a job: checkpoints, resume, signals; batches and sweeps
    api.py     the Python API          cli.py   the command line over it
    live/      `zoomdream live`: the dream in a web page, steered by sliders and OSC

engine/ and media/ stand side by side on base/ and do not import each other.

The public names load on first use (PEP 562), so the command line can check its arguments
and refuse a bad one before torch is imported (about 3 s)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base.version import VERSION as __version__

_EXPORTS = {
    "dream": "api", "frames": "api", "render": "api", "atlas": "api", "dream_video": "api", "sweep": "api",
    "render_like": "api", "info": "api",
    "batch": "api", "DreamSettings": "base.settings", "Dreamer": "engine.dream", "DreamStats": "engine.dream",
    "UserError": "base.errors", "Network": "engine.models", "load_network": "engine.models",
    "Motion": "base.settings", "Objective": "engine.objectives", "parse_objective": "engine.objectives",
    "Preset": "timeline.presets", "load_preset": "timeline.presets", "serve_live": "live",
}  # fmt: skip
__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:
    from .api import atlas, batch, dream, dream_video, frames, info, render, render_like, sweep
    from .base.errors import UserError
    from .base.settings import DreamSettings, Motion
    from .engine.dream import Dreamer, DreamStats
    from .engine.models import Network, load_network
    from .engine.objectives import Objective, parse_objective
    from .live import serve_live
    from .timeline.presets import Preset, load_preset


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zoomdream' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
