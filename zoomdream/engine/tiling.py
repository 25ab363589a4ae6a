"""Tiles: a frame too large to send through the network at once is cut into tiles that each
borrow some context from their neighbours, and the automatic tile size.

Tile corners sit on the network's stride grid, which keeps every tile's activations aligned
with those of the whole frame, so with enough overlap the tiled gradient is exact. Tiles bound
memory (a 1024² pass of mobilenet_v2 to features.13 holds about 1.1 GB for the backward pass)
and each costs its overlap in extra pixels, so they are as large as memory comfortably allows."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import torch

Targets = dict[str, torch.Tensor]  # pictures an objective compares the frame with, by path
Gradient = Callable[[torch.Tensor, Targets], tuple[torch.Tensor, torch.Tensor]]


def tile_spans(length: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """Cut [0, length) into the fewest near-equal spans of at most `tile`, each starting on
    the stride grid. Equal spans mean at most a handful of distinct tile shapes per frame
    size: the CPU backend builds its kernels per input shape, and a tile grid that moved
    every step (so that every crop had a new shape) ran twice as slow (bench/)."""
    n = -(-length // tile)
    size = -(-(-(-length // n)) // stride) * stride
    return [(a, min(a + size, length)) for a in range(0, length, size)]


def tiled(grad: Gradient, img: torch.Tensor, targets: Targets, tile: int, overlap: int,
          stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """grad(window, its targets) → (gradient, value) over tiles of at most `tile` px that each
    see `overlap` px more on every side; the gradients are put together and the values summed."""
    tile = max(stride, tile // stride * stride)
    overlap = -(-overlap // stride) * stride
    h, w = img.shape[-2:]
    out = torch.empty_like(img)
    total = torch.zeros((), device=img.device)
    for ya, yb in tile_spans(h, tile, stride):
        for xa, xb in tile_spans(w, tile, stride):
            cy, cx = max(0, ya - overlap), max(0, xa - overlap)
            window = (..., slice(cy, min(h, yb + overlap)), slice(cx, min(w, xb + overlap)))
            g, v = grad(img[window], {p: t[window] for p, t in targets.items()})
            out[..., ya:yb, xa:xb] = g[..., ya - cy : yb - cy, xa - cx : xb - cx]
            total = total + v.float()
    return out, total


class AutoTile:
    """The tile setting's automatic value (0: the whole frame): 1024 on the CPU, where tiles of
    that size run faster than whole frames; on a GPU the whole frame while its backward pass
    fits in the free memory 2.5 times over (a CUDA graph holds its own copy), else the largest
    tile that does (tiles made a 1080p frame 2.3× slower on an H200)."""

    def __init__(self, device: torch.device):
        self.device = device
        self._tiles: dict[tuple, int] = {}
        self._bpp: dict[Hashable, float] = {}

    def __call__(self, key: Hashable, height: int, width: int, probe: Callable[[torch.Tensor], object]) -> int:
        """The tile for frames of height×width of the objective `key`; `probe(x)` takes one
        gradient of it on x (run once, to measure its memory)."""
        if self.device.type != "cuda":
            return 1024
        if (key, height, width) not in self._tiles:
            need = self._bytes_per_pixel(key, probe) * 2.5
            free, _ = torch.cuda.mem_get_info(self.device)
            free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)  # reusable
            fits = int(math.sqrt(free / need)) // 256 * 256
            self._tiles[key, height, width] = 0 if height * width * need < free else max(256, fits)
        return self._tiles[key, height, width]

    def _bytes_per_pixel(self, key: Hashable, probe: Callable[[torch.Tensor], object]) -> float:
        """Device memory one gradient holds per input pixel, measured once on a 256² probe."""
        if key not in self._bpp:
            x = torch.rand(1, 3, 256, 256, device=self.device)
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            probe(x)
            self._bpp[key] = max(torch.cuda.max_memory_allocated(self.device) - before, 1) / x[0, 0].numel()
        return self._bpp[key]
