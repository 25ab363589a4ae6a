"""The dream step: gradient ascent on the image itself.

For each octave, from coarse to fine: roll the image by a random offset, push it through the
truncated network, take the gradient of the objective with respect to the pixels, roll back,
and step along that gradient normalised by its mean magnitude. Only the detail the dream
added is carried up to the next octave, so the photo's own structure stays sharp."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np

import torch
import torch.nn.functional as F

from .errors import UserError
from .images import check_min_size, load_image, resize_long_side, to_tensor
from .models import DreamNet, LayerInfo, Network
from .objectives import Objective, TermFn, parse_objective
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


class Dreamer:
    """Holds a loaded network and the objectives bound to it; dreams images on its device."""

    def __init__(self, network: Network, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision '{precision}'", f"use one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and network.device.type == "cpu":
            raise UserError("fp16 is not supported on the CPU", "use --precision bf16 or fp32")
        self.network = network
        self.device = network.device
        self.precision = precision
        self._nets: dict[frozenset[str], DreamNet] = {}
        self._fns: dict[Objective, tuple[DreamNet, TermFn]] = {}
        self.images: dict[str, np.ndarray] = {}  # guide images by path, loaded once
        self.features: dict[tuple[str, str], torch.Tensor] = {}  # their features by (path, layer)

    def bound(self, objective: Objective | str) -> tuple[DreamNet, TermFn]:
        """The truncated network and the objective's function of its activations, made once per
        objective (a guide image is loaded and its features computed here, before any frame)."""
        objective = parse_objective(objective)
        if objective not in self._fns:
            key = frozenset(objective.layers)
            if key not in self._nets:
                self._nets[key] = self.network.truncated(key)
            net = self._nets[key]
            self._fns[objective] = (net, objective.bind(_Binding(self, net, objective)))
        return self._fns[objective]

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _grad(self, net: DreamNet, fn: TermFn, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = img.detach()
        if self.network.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        with self._autocast():
            value = fn(net(x))
        (g,) = torch.autograd.grad(value, x)
        return g.float().contiguous(), value.detach()

    def gradient(
        self,
        img: torch.Tensor,
        objective: Objective | str,
        tile: int = 0,
        overlap: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(d objective / d pixels, objective value). Frames larger than `tile` are cut into
        tiles that each borrow `overlap` pixels of context from their neighbours. The value
        stays a device tensor: reading it every step would stall a GPU once per step."""
        objective = parse_objective(objective)
        net, fn = self.bound(objective)
        h, w = img.shape[-2:]
        if tile <= 0 or (h <= tile and w <= tile):
            return self._grad(net, fn, img)
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
                crop = img[..., cy : min(h, yb + overlap), cx : min(w, xb + overlap)]
                g, v = self._grad(net, fn, crop)
                grad[..., ya:yb, xa:xb] = g[..., ya - cy : yb - cy, xa - cx : xb - cx]
                total = total + v.float()
        return grad, total

    def evaluate(self, img: torch.Tensor, objective: Objective | str) -> float:
        """The objective's value per input pixel (tile-independent, comparable across sizes)."""
        net, fn = self.bound(objective)
        with torch.no_grad(), self._autocast():
            x = img.contiguous(memory_format=torch.channels_last) if self.network.channels_last else img
            return float(fn(net(x))) / (img.shape[-1] * img.shape[-2])

    def step(
        self,
        img: torch.Tensor,
        objective: Objective,
        s: DreamSettings,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The random roll also moves the image under the (fixed) tile grid, so tile borders fall
        # on different content every step and no seam can build up.
        j = s.jitter
        dy, dx = (int(v) for v in torch.randint(-j, j + 1 if j else 1, (2,), generator=generator).tolist())
        rolled = torch.roll(img, shifts=(dy, dx), dims=(2, 3)) if j else img
        g, value = self.gradient(rolled, objective, s.tile, s.tile_overlap)
        if j:
            g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))
        # Normalising by the mean |gradient| makes step_size mean "pixels changed per step"
        # whatever the layer's activation scale, so one setting works for every objective.
        img = img + g * (s.step_size / (g.abs().mean() + 1e-8))
        blur = s.blur if s.blur is not None else (0.5 if objective.wants_prior else 0.0)
        if blur > 0:
            img = gaussian_blur(img, blur)
        return img.clamp_(0, 1), value

    def __call__(
        self,
        img: torch.Tensor,
        objective: Objective | str,
        settings: DreamSettings = DreamSettings(),
        generator: torch.Generator | None = None,
        stats: DreamStats | None = None,
    ) -> torch.Tensor:
        """Dream one image (1×3×H×W in [0, 1] on this dreamer's device)."""
        objective = parse_objective(objective)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        img = img.to(self.device, torch.float32)
        if settings.steps <= 0:
            return img
        t0 = time.perf_counter()
        shapes = octave_shapes(img.shape[-2], img.shape[-1], settings)
        detail = torch.zeros(1, 3, *shapes[0], device=self.device)
        x = img
        for shape in shapes:
            base = resize(img, shape)
            detail = resize(detail, shape)
            x = (base + detail).clamp(0, 1)
            for _ in range(settings.steps):
                x, value = self.step(x, objective, settings, generator)
                if stats is not None:
                    stats.values.append(float(value))
            detail = x - base
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if stats is not None:
            stats.steps += settings.steps * len(shapes)
            stats.seconds += time.perf_counter() - t0
        return x


class _Binding:
    """What an objective binds against: the network, and the images its terms named. Images and
    their features are kept by the Dreamer, so that the new objective of every frame of a
    cross-fade binds without reading or computing them again."""

    GUIDE_SIZE = 320  # long side of a guide image: enough texture, cheap features

    def __init__(self, dreamer: Dreamer, dreamnet: DreamNet, objective: Objective):
        self.network, self.dreamnet, self._features = dreamer.network, dreamnet, dreamer.features
        self.images = dreamer.images
        for path, what in objective.files:
            if path not in self.images:
                img = load_image(path, what)
                check_min_size(img, f"{what} {path}")
                self.images[path] = resize_long_side(img, self.GUIDE_SIZE)

    def layer(self, name: str) -> LayerInfo:
        return self.network.layer(name)

    def class_names(self) -> list[str]:
        return self.network.categories

    def features(self, path: str, layer: str) -> torch.Tensor:
        if (path, layer) not in self._features:
            with torch.no_grad():
                x = to_tensor(self.images[path], self.network.device)
                self._features[path, layer] = self.dreamnet(x)[layer].float().flatten(2)[0]
        return self._features[path, layer]
