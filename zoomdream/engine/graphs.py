"""CUDA graphs of whole-frame gradients.

On CUDA the gradient of an objective on a whole (untiled) image of one size is captured as a
CUDA graph when it is first asked for, then replayed: the small network's few hundred kernels
would otherwise each cost a launch from Python, and at 512² the GPU waits on those more than
it computes (4.9× faster on an H200, bench/gpu.py tuning). A replay can differ from the eager
call in the last bits, so every call of one (objective, size) goes the same way from the
first. Tiles stay eager: a tile is large enough to hide its launches, and a graph per tile
shape would hold memory for each."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch

Gradient = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Graphs:
    """Captured gradients by key, the least recently used dropped past KEPT."""

    # Two octaves of two objectives (a cross-fade). Each holds its own memory, 9 GB at 4K.
    KEPT = 4

    def __init__(self) -> None:
        self._graphs: OrderedDict[Hashable, _Graph] = OrderedDict()

    def __call__(self, key: Hashable, fn: Gradient, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fn(x), from the graph captured for `key` (captured now, from fn, if there is none)."""
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = _Graph(fn, x)
            while len(self._graphs) > self.KEPT:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        return graph(x)


class _Graph:
    """fn(x) → (gradient, value) captured as a CUDA graph for inputs shaped like `example`:
    calling it copies x into the captured input, replays, and returns copies of the outputs
    (the next replay overwrites the captured ones)."""

    def __init__(self, fn: Gradient, example: torch.Tensor):
        self.x = example.detach().clone()
        # Warm-up on a side stream, as torch.cuda.graph asks: cuDNN picks its kernels and the
        # allocator settles before capture. Real data, not zeros, so that is what they see.
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):
            fn(self.x)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.g, self.value = fn(self.x)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.x.copy_(x)
        self.graph.replay()
        return self.g.clone(), self.value.clone()
