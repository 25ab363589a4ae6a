"""Figures that say whether a dream did what it was asked: is a class image a shape the network
recognises however it is held, how close is a texture's Gram matrix, how well does an inverted
image correlate with its photo. Tests, `make bench` and the example scripts measure with these,
so a figure in the README and the one a test asserts are computed the same way."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .dream import gaussian_blur
from .images import to_tensor
from .models import Network
from .motion import affine_theta, resample
from .objectives import LOGITS
from .schedule import Schedule


def gram(features: torch.Tensor) -> torch.Tensor:
    """1×C×H×W activations → C×C channel correlations, averaged over positions (so that the
    matrix of a texture does not depend on how much of it there is)."""
    x = features.float().flatten(2)[0]
    return x @ x.T / x.shape[1]


def gram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared Frobenius distance between two Gram matrices."""
    return float((a - b).pow(2).sum())


def grey(img: torch.Tensor) -> torch.Tensor:
    """1×3×H×W → H×W luma (Rec. 601)."""
    r, g, b = img[0]
    return 0.299 * r + 0.587 * g + 0.114 * b


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two images' grey levels."""
    x, y = grey(a).flatten().double(), grey(b).flatten().double()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm() + 1e-12))


def random_view(img: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.8, 1.2),
                degrees: float = 10.0, blur: float = 1.0) -> torch.Tensor:
    """The image rescaled, rotated about its centre and blurred at random: how a person or a
    camera might see it. Border pixels are extended (a black frame would be a cue of its own)."""
    s = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=generator))
    a = math.radians(degrees * (2 * float(torch.rand((), generator=generator)) - 1))
    h, w = img.shape[-2:]
    cos, sin, ax = math.cos(a) / s, math.sin(a) / s, w / h
    theta = torch.tensor([[[cos, sin / ax, 0.0], [-sin * ax, cos, 0.0]]], dtype=img.dtype, device=img.device)
    grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return gaussian_blur(out, blur) if blur > 0 else out


@dataclass(frozen=True)
class ClassScore:
    top1: float  # share of the views in which the class is the network's first choice
    probability: float  # its mean probability over the views


def class_score(network: Network, img: torch.Tensor, index: int, views: int = 16, seed: int = 0) -> ClassScore:
    """How firmly the network sees class `index` in `img` over `views` random views
    (scale 0.8–1.2, rotation ±10°, a 1 px blur). A pattern that only fools the network at one
    exact scale and position loses the class in most views; a shape that looks like it keeps it."""
    net = network.truncated([LOGITS])
    g = torch.Generator().manual_seed(seed)
    top1, prob = 0, 0.0
    with torch.no_grad():
        for _ in range(views):
            p = net(random_view(img.to(network.device), g))[LOGITS].float().softmax(1)[0]
            top1 += int(p.argmax()) == index
            prob += float(p[index])
    return ClassScore(top1 / views, prob / views)


def _inner(h: int, w: int) -> tuple[int, int, int, int]:
    y, x = round(h * 0.1), round(w * 0.1)
    return y, h - y, x, w - x


def motion_error(later: torch.Tensor, earlier: torch.Tensor, m: torch.Tensor) -> float:
    """Mean |later − earlier moved by m| over the inner 80% of the frame, in 0–255 units: how
    much of `later` the camera move alone does not explain (m: 3×3, see motion.theta)."""
    y0, y1, x0, x1 = box = _inner(*later.shape[-2:])
    moved = resample(earlier, m, window=box)  # only the inner part is compared: only it is moved
    return float(F.l1_loss(later[..., y0:y1, x0:x1], moved)) * 255


def moved_error(later: torch.Tensor, moved: torch.Tensor) -> float:
    """motion_error with the earlier frame already moved (motion.resample, its defaults)."""
    y0, y1, x0, x1 = _inner(*later.shape[-2:])
    return float(F.l1_loss(later[..., y0:y1, x0:x1], moved[..., y0:y1, x0:x1])) * 255


@dataclass
class Smoothness:
    """How a video moves, from its frames in order and the camera move after each: Ek is the
    motion error between frame n and frame n+k (frame n moved by the k camera moves between),
    and persistence P = E8 / (8·E1). P = 1: every change persists, the dream grows; P = 1/8:
    what one frame adds the next ones undo, the dream boils."""

    span: int = 8
    e1: float = 0.0  # sums and counts
    n1: int = 0
    ek: float = 0.0
    nk: int = 0
    window: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (frame, move after it)

    def add(self, frame: torch.Tensor, step: torch.Tensor, moved: torch.Tensor | None = None) -> None:
        """The next frame, and the camera move after it; `moved`: the frame before moved by its
        move, where the caller has it already (a frame grown from the one before)."""
        if self.window:
            prev, m = self.window[-1]
            self.e1 += motion_error(frame, prev, m) if moved is None else moved_error(frame, moved)
            self.n1 += 1
        if len(self.window) == self.span:
            m = torch.eye(3, dtype=torch.float64)
            for _, a in self.window:
                m = m @ a
            self.ek += motion_error(frame, self.window[0][0], m)
            self.nk += 1
            self.window.pop(0)
        self.window.append((frame, step))

    @property
    def E1(self) -> float:
        return self.e1 / max(self.n1, 1)

    @property
    def E8(self) -> float:
        return self.ek / max(self.nk, 1)

    @property
    def persistence(self) -> float:
        return self.E8 / (self.span * self.E1) if self.nk and self.E1 > 0 else float("nan")


def frames_smoothness(frames: Iterable[np.ndarray], schedule: Schedule, fps: float) -> Smoothness:
    """The Smoothness of H×W×3 uint8 frames in video order, each moved by its schedule's camera."""
    sm = Smoothness()
    for n, f in enumerate(frames):
        img = to_tensor(f)
        sm.add(img, affine_theta(schedule.motion(n), fps, *img.shape[-2:]))
    return sm
