"""The layer atlas: one picture of what every layer of a network dreams on your own image, to
choose an objective at a glance instead of by trial renders.

Each cell is the image dreamed at one layer (or at one of a layer's most excited channels),
labelled with the layer, its channels and its stride. The first cell is the image itself."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..base.progress import Progress
from ..base.settings import DreamSettings
from .catalog import LOGITS
from .dream import Dreamer
from .images import grid, labelled, resize_long_side, to_tensor, to_uint8
from .models import Network

# A cell's dream: a still's scales in fewer, larger steps, so that the whole mobilenet_v2 atlas
# of a photo takes well under a minute on two CPU cores (bench: `make bench`, atlas row).
CELL_DREAM = DreamSettings(octaves=3, steps=8, step_size=0.02, jitter=16)


@dataclass(frozen=True)
class Cell:
    objective: str  # what the cell dreams ("" for the input itself)
    label: str


def cells(network: Network, image: torch.Tensor, layers: list[str] | None,
          channels: tuple[str, int] | None) -> list[Cell]:
    """The input, then one cell per layer (None: every layer with positions), then the `n` most
    excited channels of `channels`' layer, strongest first."""
    names = layers if layers is not None else [i.name for i in network.layers if i.name != LOGITS]
    out = [Cell("", f"input · {network.backbone.name}")]
    for name in names:
        info = network.layer(name)
        out.append(Cell(name, f"{name} · {info.channels} ch · /{info.stride}"))
    if channels is not None:
        layer, n = channels
        info = network.layer(layer)
        with torch.no_grad():
            acts = network.truncated([layer])(image)[layer].float()
        strongest = acts.mean(dim=(0, 2, 3)).argsort(descending=True)[:n].tolist()
        out += [Cell(f"{layer}:{c}", f"{layer}:{c} · /{info.stride}") for c in strongest]
    return out


def atlas(network: Network, photo: np.ndarray, size: int, layers: list[str] | None = None,
          channels: tuple[str, int] | None = None, seed: int = 0, progress: bool = False,
          precondition: str | None = None) -> np.ndarray:
    """The atlas of `photo` (H×W×3 float) as H×W×3 uint8; cells are `size` px on the long side;
    `precondition` shapes every cell's steps (None: each objective's default)."""
    settings = replace(CELL_DREAM, precondition=precondition)
    img = to_tensor(resize_long_side(photo, size), network.device)
    todo = cells(network, img, layers, channels)
    dreamer = Dreamer(network)
    bar = Progress(len(todo), 0, lambda msg: print(msg, file=sys.stderr), unit="cell") if progress else None
    tiles = []
    try:
        for i, cell in enumerate(todo):
            g = torch.Generator().manual_seed(seed)
            out = dreamer(img, cell.objective, settings, g) if cell.objective else img
            tiles.append(labelled(to_uint8(out), cell.label))
            if bar is not None:
                bar.update(i + 1)
    finally:
        if bar is not None:
            bar.stop()
    return grid(tiles)
