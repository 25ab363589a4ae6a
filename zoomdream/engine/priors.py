"""Priors: what keeps a dreamed image natural beside the objective's own pull. Each is a small
function of the image (or of the dream's view of it), applied by the dream step:

    blur    a Gaussian blur after each step (fine noise cannot build up)
    tv      a share of each step spent reducing total variation (speckle goes, edges stay)
    decay   a pull toward grey each step
    view    a random rescale and rotation of what the network sees (shapes, not patterns)"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..base.settings import DreamSettings
from .motion import theta


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(img.shape[1], 1, 1, 1)
    img = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="reflect"), k, groups=img.shape[1])
    return F.conv2d(F.pad(img, (0, 0, radius, radius), mode="reflect"), k.transpose(-1, -2), groups=img.shape[1])


def tv_gradient(img: torch.Tensor) -> torch.Tensor:
    """The gradient of the image's total variation (isotropic, smoothed at 0 so that flat areas
    have a gradient): the direction that removes speckle and keeps edges."""
    x = img.detach().requires_grad_(True)
    dx, dy = x[..., :-1, 1:] - x[..., :-1, :-1], x[..., 1:, :-1] - x[..., :-1, :-1]
    (g,) = torch.autograd.grad((dx.pow(2) + dy.pow(2) + 1e-4).sqrt().sum(), x)
    return g


def ascend(img: torch.Tensor, g: torch.Tensor, scale: torch.Tensor, s: DreamSettings) -> torch.Tensor:
    """One step along the gradient `g` (already scaled to `scale` per unit), with the priors
    of `s`: a share of it spent on total variation, then the blur and the pull toward grey."""
    if s.tv > 0:  # a share of the step goes to smoothing, normalised like the gradient
        t = tv_gradient(img)
        img = img + g * ((1 - s.tv) * scale) - t * (s.tv * s.step_size / (t.abs().mean() + 1e-8))
    else:
        img = img + g * scale
    if s.blur > 0:
        img = gaussian_blur(img, s.blur)
    if s.decay > 0:
        img = 0.5 + (1 - s.decay) * (img - 0.5)
    return img.clamp_(0, 1)


def random_view(s: DreamSettings, height: int, width: int, generator: torch.Generator) -> torch.Tensor | None:
    """A random rescale and rotation of the network's view (3×3, see motion.theta), or None: an
    objective that must hold under them grows shapes rather than a pattern tied to one scale
    and angle."""
    if s.scale_jitter <= 0 and s.rotate_jitter <= 0:
        return None  # no draw: the random stream stays what it was without the prior
    u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    zoom = 1 + s.scale_jitter * (2 * u[0] - 1)
    return theta(zoom, math.radians(s.rotate_jitter * (2 * u[1] - 1)), 0.0, 0.0, height, width)
