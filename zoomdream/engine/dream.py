"""The dream step: gradient ascent on the image itself.

For each octave, from coarse to fine: roll the image by a random offset, push it through the
truncated network, take the gradient of the objective with respect to the pixels, roll back,
and step along that gradient normalised by its mean magnitude. Only the detail the dream
added is carried up to the next octave, so the photo's own structure stays sharp.

The parts: binding.py makes an objective ready for the network, tiling.py cuts large frames,
graphs.py replays whole-frame gradients on CUDA, priors.py keeps the image natural."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..base.errors import UserError
from ..base.settings import PRECISIONS, DreamSettings
from .binding import Bindings, Bound
from .graphs import Graphs
from .models import Network
from .motion import warp
from .objectives import Activations, Objective, aligned_key, parse_objective
from .precondition import shaped
from .priors import ascend, random_view
from .tiling import AutoTile, Targets, tiled


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


def settled(s: DreamSettings, k: int) -> DreamSettings:
    """Step k of an octave: with `settle`, step sizes fall from (1+settle)× to (1-settle)× over
    the octave (same mean), so that a step crosses the distance to a target first and then
    settles on it instead of circling it."""
    if s.settle <= 0:
        return s
    return replace(s, step_size=s.step_size * (1 + s.settle * (1 - 2 * (k + 0.5) / s.steps)))


def finite(img: torch.Tensor, what: str) -> torch.Tensor:
    """A dreamed image, or FloatingPointError where the dream diverged (a NaN or inf in it)."""
    # One sum instead of a mask: NaN and inf carry through it (0.05 ms against 1.6 at 512²).
    if not torch.isfinite(img.sum()):
        raise FloatingPointError(f"{what} has NaN or inf values")
    return img


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    # No cache of cast weights: a CUDA graph cannot capture one, and the net is small.
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


class Dreamer:
    """A loaded network and the objectives bound to it; dreams images on its device. `input`
    is the photo that objectives name as INPUT (an H×W×3 float image). On CUDA whole-frame
    gradients replay as CUDA graphs (graphs.py); `graphs=False` (or ZOOMDREAM_CUDA_GRAPHS=0)
    keeps every call eager."""

    def __init__(self, network: Network, precision: str = "fp32", input: np.ndarray | None = None,
                 graphs: bool | None = None):
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision '{precision}'", f"use one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and network.device.type == "cpu":
            raise UserError("fp16 is not supported on the CPU", "use --precision bf16 or fp32")
        self.network, self.device, self.precision = network, network.device, precision
        self.objectives = Bindings(network, input)
        if graphs is None:
            graphs = os.environ.get("ZOOMDREAM_CUDA_GRAPHS", "1") != "0"
        self.graphs = graphs and self.device.type == "cuda"
        self._graphs = Graphs()
        self._tile = AutoTile(self.device)

    def bound(self, objective: Objective | str) -> Bound:
        return self.objectives.bound(objective)

    def targets(self, objective: Objective, height: int, width: int, camera: torch.Tensor | None = None) -> Targets:
        return self.objectives.targets(objective, height, width, camera)

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

    def _eager_grad(self, b: Bound, img: torch.Tensor, targets: Targets, view: torch.Tensor | None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = img.detach().requires_grad_(True)
        with autocast(self.device, self.precision):
            value = b.fn(self._activations(b, x, targets, view))
        (g,) = torch.autograd.grad(value, x)
        return g.float().contiguous(), value.detach()

    def gradient(self, img: torch.Tensor, objective: Objective | str, tile: int = 0, overlap: int = 0,
                 targets: Targets | None = None, view: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(d objective / d pixels, objective value). Frames larger than `tile` are cut into
        tiles that each borrow `overlap` pixels of context (tiling.py); `targets` (the
        objective's pictures at the image's size; default: as they are) are cut alike, and
        `view` (3×3, see motion.theta) is how the network looks at each. The value stays a
        device tensor: reading it every step would stall a GPU once per step."""
        objective = parse_objective(objective)
        b, (h, w) = self.bound(objective), img.shape[-2:]
        targets = self.targets(objective, h, w) if targets is None else targets
        if tile <= 0 or (h <= tile and w <= tile):  # a frame whole: the one case worth a CUDA graph
            if self.graphs and not targets and view is None:
                return self._graphs((b, tuple(img.shape), img.stride()), lambda x: self._eager_grad(b, x, {}, None),
                                    img)
            return self._eager_grad(b, img, targets, view)
        if not objective.tileable:
            raise UserError(f"a {w}×{h} frame is too large to dream a class objective whole",
                            "use a smaller size or a larger --tile")
        stride = max(self.network.layer(layer).stride for layer in objective.layers)
        return tiled(lambda x, t: self._eager_grad(b, x, t, view), img, targets, tile, overlap, stride)

    def auto_tile(self, objective: Objective, height: int, width: int) -> int:
        """The tile setting's automatic value for this objective and frame size (tiling.AutoTile)."""
        b = self.bound(objective)
        return self._tile(objective, height, width,
                          lambda x: self._eager_grad(b, x, {path: torch.rand_like(x) for path, _ in b.aligned}, None))

    def evaluate(self, img: torch.Tensor, objective: Objective | str, camera: torch.Tensor | None = None) -> float:
        """The objective's value per input pixel (tile-independent, comparable across sizes)."""
        objective = parse_objective(objective)
        b, targets = self.bound(objective), self.targets(objective, *img.shape[-2:], camera)
        with torch.no_grad(), autocast(self.device, self.precision):
            value = b.fn(self._activations(b, img, targets, None))
        return float(value) / (img.shape[-1] * img.shape[-2])

    def step(self, img: torch.Tensor, objective: Objective, s: DreamSettings, generator: torch.Generator,
             targets: Targets | None = None, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
        view = random_view(s, *img.shape[-2:], generator)
        g, value = self.gradient(img_r, objective, tile, s.tile_overlap, targets, view)
        if j:
            g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))
        g = shaped(g, s.precondition, s.bands, s.band_scale)  # type: ignore[arg-type]
        # Normalising by the mean |gradient| makes step_size mean "pixels changed per step"
        # whatever the layer's activation scale, so one setting works for every objective.
        scale = s.step_size / (g.abs().mean() + 1e-8)
        if weight is not None:
            scale = scale * weight
        return ascend(img, g, scale, s), value

    def __call__(self, img: torch.Tensor, objective: Objective | str, settings: DreamSettings = DreamSettings(),
                 generator: torch.Generator | None = None, stats: DreamStats | None = None,
                 camera: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
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
                x, value = self.step(x, objective, settled(settings, k), generator, seen, w)
                if stats is not None:
                    stats.values.append(float(value))
            detail = x - base
        if stats is not None:
            if self.device.type == "cuda":  # the steps were only queued: time them done
                torch.cuda.synchronize(self.device)
            stats.steps += settings.steps * len(shapes)
            stats.seconds += time.perf_counter() - t0
        return x
