"""The dream step: gradient ascent on the image itself.

For each octave, from coarse to fine: roll the image by a random offset, push it through the
truncated network, take the gradient of the objective with respect to the pixels, roll back,
and step along that gradient normalised by its mean magnitude. Only the detail the dream
added is carried up to the next octave, so the photo's own structure stays sharp."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

import torch
import torch.nn.functional as F

from .errors import UserError
from .images import check_min_size, fit, load_image, resize_long_side, to_tensor
from .models import DreamNet, LayerInfo, Network
from .motion import resample, theta, warp
from .objectives import INPUT, Activations, Objective, TermFn, aligned_key, parse_objective
from .settings import FRAME_DREAM, PRECISIONS, DreamSettings

__all__ = ["DreamSettings", "FRAME_DREAM", "PRECISIONS", "Dreamer", "DreamStats"]

@dataclass
class DreamStats:
    steps: int = 0
    seconds: float = 0.0
    values: list[float] = field(default_factory=list)  # the objective at each step (jittered input)
    before: float | None = None  # per pixel, on the image as given (zoomdream.dream fills these)
    after: float | None = None

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.steps, 1)


def octave_shapes(height: int, width: int, s: DreamSettings) -> list[tuple[int, int]]:
    """Octave sizes from the full size down, stopping before the short side drops below
    min_octave (a tiny octave only adds noise)."""
    shapes = [(height, width)]
    for i in range(1, s.octaves):
        h, w = round(height / s.octave_scale**i), round(width / s.octave_scale**i)
        if min(h, w) < s.min_octave:
            break
        shapes.append((h, w))
    return shapes[::-1]


def resize(img: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == tuple(shape):
        return img
    return F.interpolate(img, size=shape, mode="bilinear", align_corners=False, antialias=True)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(img.shape[1], 1, 1, 1)
    img = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="reflect"), k, groups=img.shape[1])
    return F.conv2d(F.pad(img, (0, 0, radius, radius), mode="reflect"), k.transpose(-1, -2), groups=img.shape[1])


def tile_spans(length: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """Cut [0, length) into the fewest near-equal spans of at most `tile`, each starting on
    the stride grid. Equal spans mean at most a handful of distinct tile shapes per frame
    size: the CPU backend builds its kernels per input shape, and a tile grid that moved
    every step (so that every crop had a new shape) ran twice as slow (bench/)."""
    n = -(-length // tile)
    size = -(-(-(-length // n)) // stride) * stride
    return [(a, min(a + size, length)) for a in range(0, length, size)]


def tv_gradient(img: torch.Tensor) -> torch.Tensor:
    """The gradient of the image's total variation (isotropic, smoothed at 0 so that flat areas
    have a gradient): the direction that removes speckle and keeps edges."""
    x = img.detach().requires_grad_(True)
    dx, dy = x[..., :-1, 1:] - x[..., :-1, :-1], x[..., 1:, :-1] - x[..., :-1, :-1]
    (g,) = torch.autograd.grad((dx.pow(2) + dy.pow(2) + 1e-4).sqrt().sum(), x)
    return g


class Bound(NamedTuple):
    """An objective made ready for one network: what the dream step runs per gradient."""

    net: DreamNet  # truncated at the deepest layer the objective reads
    fn: TermFn  # activations → the value to maximise
    aligned: tuple[tuple[str, str], ...]  # (picture, layer) seen through the frame's window
    aligned_net: DreamNet | None  # truncated at the deepest of those layers


Targets = dict[str, torch.Tensor]  # pictures an objective compares the frame with, by path


class Dreamer:
    """Holds a loaded network and the objectives bound to it; dreams images on its device.
    `input` is the photo that objectives name as INPUT (an H×W×3 float image).

    On CUDA the gradient of an objective on a whole (untiled) image of one size is captured as
    a CUDA graph when it is first asked for, then replayed: the small network's few hundred
    kernels would otherwise each cost a launch from Python, and at 512² the GPU waits on those
    more than it computes (4.9× faster on an H200, bench/gpu.py tuning). A replay can differ
    from the eager call in the last bits, so every call of one (objective, size) goes the same
    way from the first. Tiles stay eager: a tile is large enough to hide its launches, and a
    graph per tile shape would hold memory for each. `graphs=False` (or ZOOMDREAM_CUDA_GRAPHS=0)
    keeps every call eager."""

    # Captured (objective, size) pairs kept, the least recently used going first: two octaves
    # of two objectives (a cross-fade). Each holds its own memory, 9 GB at 4K.
    GRAPHS_KEPT = 4

    def __init__(self, network: Network, precision: str = "fp32", input: np.ndarray | None = None,
                 graphs: bool | None = None):
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision '{precision}'", f"use one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and network.device.type == "cpu":
            raise UserError("fp16 is not supported on the CPU", "use --precision bf16 or fp32")
        self.network = network
        self.device = network.device
        self.precision = precision
        self._nets: dict[frozenset[str], DreamNet] = {}
        self._bound: dict[Objective, Bound] = {}
        # Images that objectives name, by path, decoded once; their features by (path, layer,
        # size); and pictures fitted to a frame size by (path, height, width).
        self.images: dict[str, np.ndarray] = {} if input is None else {INPUT: input}
        self.features: dict[tuple[str, str, int], torch.Tensor] = {}
        self._pictures: dict[tuple[str, int, int], torch.Tensor] = {}
        if graphs is None:
            graphs = os.environ.get("ZOOMDREAM_CUDA_GRAPHS", "1") != "0"
        self.graphs = graphs and self.device.type == "cuda"
        self._graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self._tiles: dict[tuple, int] = {}
        self._bpp: dict[Bound, float] = {}

    def _net(self, layers: Iterable[str]) -> DreamNet:
        key = frozenset(layers)
        if key not in self._nets:
            self._nets[key] = self.network.truncated(key)
        return self._nets[key]

    def bound(self, objective: Objective | str) -> Bound:
        """The objective made ready, once per objective: its images are loaded and their
        features computed here, before any frame."""
        objective = parse_objective(objective)
        if objective not in self._bound:
            net = self._net(objective.layers)
            fn = objective.bind(_Binding(self, net, objective))
            aligned = tuple(objective.aligned)
            aligned_net = self._net(layer for _, layer in aligned) if aligned else None
            self._bound[objective] = Bound(net, fn, aligned, aligned_net)
        return self._bound[objective]

    def picture(self, path: str, height: int, width: int) -> torch.Tensor:
        """A loaded image fitted to a frame (scaled to cover, centre-cropped), on the device."""
        key = (path, height, width)
        if key not in self._pictures:
            self._pictures[key] = to_tensor(fit(self.images[path], width, height), self.device)
        return self._pictures[key]

    def targets(self, objective: Objective, height: int, width: int, camera: torch.Tensor | None = None) -> Targets:
        """The pictures the objective compares with a frame of this size, seen by `camera` (3×3,
        see motion.theta; None: as they are)."""
        out = {}
        for path in sorted({p for p, _ in self.bound(objective).aligned}):
            pic = self.picture(path, height, width)
            out[path] = pic if camera is None else resample(pic, camera)
        return out

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        # No cache of cast weights: a CUDA graph cannot capture one, and the net is small.
        return torch.autocast(self.device.type, dtype=dtype, cache_enabled=False)

    def _activations(self, b: Bound, x: torch.Tensor, targets: Targets, view: torch.Tensor | None) -> Activations:
        """The objective's activations for image x and, beside them, those of its pictures
        sent through the same view (not differentiated)."""
        if self.network.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        acts = b.net(x if view is None else warp(x, view, "bilinear"))
        if b.aligned_net is not None:
            with torch.no_grad():
                for path, pic in targets.items():
                    seen = b.aligned_net(pic if view is None else warp(pic, view, "bilinear"))
                    acts.update({aligned_key(path, layer): seen[layer] for p, layer in b.aligned if p == path})
        return acts

    def _grad(self, b: Bound, img: torch.Tensor, targets: Targets, view: torch.Tensor | None,
              ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.graphs and not targets and view is None:
            key = (b, tuple(img.shape), img.stride())
            graph = self._graphs.get(key)
            if graph is None:
                graph = self._graphs[key] = _Graph(lambda x: self._eager_grad(b, x, {}, None), img)
                while len(self._graphs) > self.GRAPHS_KEPT:
                    self._graphs.popitem(last=False)
            self._graphs.move_to_end(key)
            return graph(img)
        return self._eager_grad(b, img, targets, view)

    def _eager_grad(self, b: Bound, img: torch.Tensor, targets: Targets, view: torch.Tensor | None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = img.detach().requires_grad_(True)
        with self._autocast():
            value = b.fn(self._activations(b, x, targets, view))
        (g,) = torch.autograd.grad(value, x)
        return g.float().contiguous(), value.detach()

    def gradient(
        self,
        img: torch.Tensor,
        objective: Objective | str,
        tile: int = 0,
        overlap: int = 0,
        targets: Targets | None = None,
        view: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(d objective / d pixels, objective value). Frames larger than `tile` are cut into
        tiles that each borrow `overlap` pixels of context from their neighbours; `targets`
        (the objective's pictures at the image's size; default: as they are) are cut alike, and `view` (3×3, see
        motion.theta) is how the network looks at each. The value stays a device tensor:
        reading it every step would stall a GPU once per step."""
        objective = parse_objective(objective)
        b, (h, w) = self.bound(objective), img.shape[-2:]
        targets = self.targets(objective, h, w) if targets is None else targets
        if tile <= 0 or (h <= tile and w <= tile):
            return self._grad(b, img, targets, view)  # a frame whole: the one case worth a CUDA graph
        if not objective.tileable:
            raise UserError(f"a {w}×{h} frame is too large to dream a class objective whole",
                            "use a smaller size or a larger --tile")
        # Tile corners on the network's stride grid keep every tile's activations aligned with
        # those of the whole frame, so with enough overlap the tiled gradient is exact.
        stride = max(self.network.layer(layer).stride for layer in objective.layers)
        tile = max(stride, tile // stride * stride)
        overlap = -(-overlap // stride) * stride
        grad = torch.empty_like(img)
        total = torch.zeros((), device=img.device)
        for ya, yb in tile_spans(h, tile, stride):
            for xa, xb in tile_spans(w, tile, stride):
                cy, cx = max(0, ya - overlap), max(0, xa - overlap)
                window = (..., slice(cy, min(h, yb + overlap)), slice(cx, min(w, xb + overlap)))
                g, v = self._eager_grad(b, img[window], {p: t[window] for p, t in targets.items()}, view)
                grad[..., ya:yb, xa:xb] = g[..., ya - cy : yb - cy, xa - cx : xb - cx]
                total = total + v.float()
        return grad, total

    def auto_tile(self, objective: Objective, height: int, width: int) -> int:
        """The tile setting's automatic value (0: the whole frame): 1024 on the CPU, where tiles
        of that size run faster than whole frames; on a GPU the whole frame while its backward
        pass fits in the free memory 2.5 times over (a CUDA graph holds its own copy), else the
        largest tile that does."""
        if self.device.type != "cuda":
            return 1024
        key = (objective, height, width)
        if key not in self._tiles:
            need = self._bytes_per_pixel(self.bound(objective)) * 2.5
            free, _ = torch.cuda.mem_get_info(self.device)
            free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)  # reusable
            fits = int(math.sqrt(free / need)) // 256 * 256
            self._tiles[key] = 0 if height * width * need < free else max(256, fits)
        return self._tiles[key]

    def _bytes_per_pixel(self, b: Bound) -> float:
        """Device memory one gradient holds per input pixel, measured once on a 256² probe."""
        if b not in self._bpp:
            probe = torch.rand(1, 3, 256, 256, device=self.device)
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._eager_grad(b, probe, {path: torch.rand_like(probe) for path, _ in b.aligned}, None)
            self._bpp[b] = max(torch.cuda.max_memory_allocated(self.device) - before, 1) / probe[0, 0].numel()
        return self._bpp[b]

    def evaluate(self, img: torch.Tensor, objective: Objective | str, camera: torch.Tensor | None = None) -> float:
        """The objective's value per input pixel (tile-independent, comparable across sizes)."""
        objective = parse_objective(objective)
        b, targets = self.bound(objective), self.targets(objective, *img.shape[-2:], camera)
        with torch.no_grad(), self._autocast():
            value = b.fn(self._activations(b, img, targets, None))
        return float(value) / (img.shape[-1] * img.shape[-2])

    def step(
        self,
        img: torch.Tensor,
        objective: Objective,
        s: DreamSettings,
        generator: torch.Generator,
        targets: Targets | None = None,
        weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step with the priors (settings left at None: the objective's defaults).
        `weight` (1×1×H×W) scales the step per pixel."""
        s = s.resolved(objective.defaults)
        # The random roll also moves the image under the (fixed) tile grid, so tile borders fall
        # on different content every step and no seam can build up.
        j = s.jitter
        targets = self.targets(objective, *img.shape[-2:]) if targets is None else targets
        dy, dx = (int(v) for v in torch.randint(-j, j + 1 if j else 1, (2,), generator=generator).tolist())
        if j:
            img_r = torch.roll(img, shifts=(dy, dx), dims=(2, 3))
            targets = {p: torch.roll(t, shifts=(dy, dx), dims=(2, 3)) for p, t in targets.items()}
        else:
            img_r = img
        tile = s.tile or self.auto_tile(objective, *img.shape[-2:])
        g, value = self.gradient(img_r, objective, tile, s.tile_overlap, targets, self._view(s, img, generator))
        if j:
            g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))
        # Normalising by the mean |gradient| makes step_size mean "pixels changed per step"
        # whatever the layer's activation scale, so one setting works for every objective.
        scale = s.step_size / (g.abs().mean() + 1e-8)
        if weight is not None:
            scale = scale * weight
        if s.tv > 0:  # a share of the step goes to smoothing, normalised the same way
            t = tv_gradient(img)
            img = img + g * ((1 - s.tv) * scale) - t * (s.tv * s.step_size / (t.abs().mean() + 1e-8))
        else:
            img = img + g * scale
        if s.blur > 0:
            img = gaussian_blur(img, s.blur)
        if s.decay > 0:
            img = 0.5 + (1 - s.decay) * (img - 0.5)
        return img.clamp_(0, 1), value

    @staticmethod
    def _view(s: DreamSettings, img: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """A random rescale and rotation of the network's view, or None: an objective that must
        hold under them grows shapes rather than a pattern tied to one scale and angle."""
        if s.scale_jitter <= 0 and s.rotate_jitter <= 0:
            return None  # no draw: the random stream stays what it was without the prior
        u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        zoom = 1 + s.scale_jitter * (2 * u[0] - 1)
        return theta(zoom, math.radians(s.rotate_jitter * (2 * u[1] - 1)), 0.0, 0.0, *img.shape[-2:])

    def __call__(
        self,
        img: torch.Tensor,
        objective: Objective | str,
        settings: DreamSettings = DreamSettings(),
        generator: torch.Generator | None = None,
        stats: DreamStats | None = None,
        camera: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Dream one image (1×3×H×W in [0, 1] on this dreamer's device). `camera` (3×3) is how
        the frame sees the objective's pictures (a video's camera move so far); `weight`
        (1×1×H×W) scales the steps per pixel (a video's new areas dream harder)."""
        objective = parse_objective(objective)
        settings = settings.resolved(objective.defaults)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        img = img.to(self.device, torch.float32)
        if settings.steps <= 0:
            return img
        t0 = time.perf_counter()
        shapes = octave_shapes(img.shape[-2], img.shape[-1], settings)
        targets = self.targets(objective, *img.shape[-2:], camera)
        detail = torch.zeros(1, 3, *shapes[0], device=self.device)
        x = img
        for shape in shapes:
            base = resize(img, shape)
            detail = resize(detail, shape)
            seen = {p: resize(t, shape) for p, t in targets.items()}
            w = None if weight is None else resize(weight.to(self.device), shape)
            x = (base + detail).clamp(0, 1)
            for k in range(settings.steps):
                s = settings
                if settings.settle > 0:
                    fall = settings.settle * (1 - 2 * (k + 0.5) / settings.steps)
                    s = replace(settings, step_size=settings.step_size * (1 + fall))
                x, value = self.step(x, objective, s, generator, seen, w)
                if stats is not None:
                    stats.values.append(float(value))
            detail = x - base
        if stats is not None:
            if self.device.type == "cuda":  # the steps were only queued: time them done
                torch.cuda.synchronize(self.device)
            stats.steps += settings.steps * len(shapes)
            stats.seconds += time.perf_counter() - t0
        return x


class _Graph:
    """fn(x) → (gradient, value) captured as a CUDA graph for inputs shaped like `example`:
    calling it copies x into the captured input, replays, and returns copies of the outputs
    (the next replay overwrites the captured ones)."""

    def __init__(self, fn, example: torch.Tensor):
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


class _Binding:
    """What an objective binds against: the network, and the images its terms named. Images and
    their features are kept by the Dreamer, so that the new objective of every frame of a
    cross-fade binds without reading or computing them again."""

    # Decoded images are kept at most this large (long side): more than any term reads.
    MAX_SIDE = 2048

    def __init__(self, dreamer: Dreamer, dreamnet: DreamNet, objective: Objective):
        self.network, self.dreamnet, self._features = dreamer.network, dreamnet, dreamer.features
        self.images = dreamer.images
        for path, what in objective.files:
            if path == INPUT and INPUT not in self.images:
                raise UserError(f"the objective names {INPUT}, but there is no input photo",
                                f"give an input image, or a file in place of {INPUT}")
            if path not in self.images:
                img = load_image(path, what)
                check_min_size(img, f"{what} {path}")
                self.images[path] = resize_long_side(img, self.MAX_SIDE) if max(img.shape[:2]) > self.MAX_SIDE else img

    def layer(self, name: str) -> LayerInfo:
        return self.network.layer(name)

    def class_names(self) -> list[str]:
        return self.network.categories

    def features(self, path: str, layer: str, size: int) -> torch.Tensor:
        if (path, layer, size) not in self._features:
            with torch.no_grad():
                x = to_tensor(resize_long_side(self.images[path], size), self.network.device)
                self._features[path, layer, size] = self.dreamnet(x)[layer].float().flatten(2)[0]
        return self._features[path, layer, size]
