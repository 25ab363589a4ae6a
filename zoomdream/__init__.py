"""zoomdream: DeepDream infinite-zoom videos.

Data flow, one module per stage: models → objectives → dream → frames (+ motion) → video,
with presets, render (checkpoints, resume) and the cli on top."""

from .api import dream, frames, render
from .dream import DreamSettings, Dreamer, DreamStats
from .errors import UserError
from .models import Network, load_network
from .motion import Motion
from .objectives import Objective, parse_objective
from .presets import Preset, load_preset

__version__ = "0.1.0"
__all__ = [
    "dream", "frames", "render", "DreamSettings", "Dreamer", "DreamStats", "UserError", "Network",
    "load_network", "Motion", "Objective", "parse_objective", "Preset", "load_preset", "__version__",
]  # fmt: skip
