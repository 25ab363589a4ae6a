"""zoomdream: DeepDream infinite-zoom videos.

Data flow, one module per stage: models → objectives → dream → frames (with motion and
schedule) → video → render (with state); settings, presets, api and cli on top. Footage
goes clip (reading) → footage (with flow) → video → render.

The public names load on first use (PEP 562), so the command line can check its arguments
and refuse a bad one before torch is imported (about 3 s)."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "dream": "api", "frames": "api", "render": "api", "atlas": "api", "dream_video": "api", "sweep": "api",
    "batch": "api", "DreamSettings": "dream", "Dreamer": "dream", "DreamStats": "dream", "UserError": "errors",
    "Network": "models", "load_network": "models", "Motion": "motion",
    "Objective": "objectives", "parse_objective": "objectives", "Preset": "presets", "load_preset": "presets",
}  # fmt: skip
__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:
    from .api import atlas, batch, dream, dream_video, frames, render, sweep
    from .dream import DreamSettings, Dreamer, DreamStats
    from .errors import UserError
    from .models import Network, load_network
    from .motion import Motion
    from .objectives import Objective, parse_objective
    from .presets import Preset, load_preset


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zoomdream' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    # `dream`, `frames`, `render`, `atlas` and `batch` name both an API function and a module. Importing the
    # module sets it as an attribute of the package; the function must keep the name.
    def __setattr__(self, name: str, value: Any) -> None:
        if not (name in _EXPORTS and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
