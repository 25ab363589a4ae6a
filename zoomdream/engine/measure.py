"""Figures that say whether a dream did what it was asked: is a class image a shape the network
recognises however it is held, how close is a texture's Gram matrix, how well does an inverted
image correlate with its photo. Tests, `make bench` and the example scripts measure with these,
so a figure in the docs and the one a test asserts are computed the same way. (How a video
moves is loops/smoothness.py: the frame loop reports it.)"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .catalog import LOGITS
from .images import grey
from .models import Network
from .priors import gaussian_blur


def gram(features: torch.Tensor) -> torch.Tensor:
    """1×C×H×W activations → C×C channel correlations, averaged over positions (so that the
    matrix of a texture does not depend on how much of it there is)."""
    x = features.float().flatten(2)[0]
    return x @ x.T / x.shape[1]


def gram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared Frobenius distance between two Gram matrices."""
    return float((a - b).pow(2).sum())


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


def high_frequency_share(added: torch.Tensor) -> float:
    """The share of a change's energy (1×3×H×W: what a dream added) above half the Nyquist
    frequency, 0.25 cycles per pixel: the fine grain that a zoom turns into a shimmering crust."""
    h, w = added.shape[-2:]
    x = added.double() - added.double().mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.rfft2(x).abs().pow(2).sum(dim=(0, 1))
    fy = torch.fft.fftfreq(h, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.rfftfreq(w, dtype=torch.float64).view(1, -1)
    weight = torch.full_like(fx, 2.0).expand(h, -1).clone()
    weight[:, 0] = 1  # rfft2 holds each frequency but the first column once for two
    if w % 2 == 0:
        weight[:, -1] = 1
    high = ((fx * fx + fy * fy).sqrt() > 0.25).double()
    return float((power * weight * high).sum() / ((power * weight).sum() + 1e-30))


def colourfulness(img: torch.Tensor) -> float:
    """Hasler and Süsstrunk's colourfulness (2003) of a 1×3×H×W image in [0, 1], on 0–255
    values: about 0 for grey, 30 'moderately', 60 'quite', over 100 'extremely' colourful."""
    r, g, b = (img[0].double() * 255).unbind(0)
    rg, yb = r - g, 0.5 * (r + g) - b
    return float((rg.std() ** 2 + yb.std() ** 2).sqrt() + 0.3 * (rg.mean() ** 2 + yb.mean() ** 2).sqrt())


def clipped_share(img: torch.Tensor) -> float:
    """The share of pixels with a channel at 0 or 255 once rounded to bytes."""
    q = (img.clamp(0, 1) * 255).round()
    return float(((q == 0) | (q == 255)).any(dim=1).double().mean())
