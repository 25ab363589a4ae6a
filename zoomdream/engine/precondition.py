"""How a step is shaped from the gradient: small pure functions of it, before the step is
normalised to its mean magnitude (dream.py).

    none          the gradient as it is: the classic step
    laplacian     each band of a Laplacian pyramid of the gradient normalised on its own, so
                  the coarse bands move as much as the fine ones (TensorFlow's DeepDream
                  tutorial, lap_normalize)
    decorrelated  the step taken in ImageNet's decorrelated colour basis with every frequency
                  scaled by 1/f (Distill, "Feature Visualization", Preconditioning): the
                  gradient through that parametrisation's Jacobian and back, J·Jᵀ·g

Each acts on the whole frame's gradient after it is assembled, so tiles and the per-tile
gradient stay exactly what they are."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The square root of ImageNet's RGB covariance (by SVD), as Lucid publishes it; its columns are
# the decorrelated basis, scaled so that the largest has norm 1.
_COLOUR = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64)
COLOUR = _COLOUR / _COLOUR.norm(dim=0).max()


def laplacian_split(x: torch.Tensor, bands: int, scale: float) -> list[torch.Tensor]:
    """`bands` images that add up to x (laplacian_merge): the finest detail first, each next
    one `scale`× coarser, and the coarsest whole image last."""
    out = []
    for _ in range(bands - 1):
        h, w = x.shape[-2:]
        small = F.interpolate(x, size=(max(1, round(h / scale)), max(1, round(w / scale))), mode="area")
        out.append(x - F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False))
        x = small
    return [*out, x]


def laplacian_merge(levels: list[torch.Tensor]) -> torch.Tensor:
    x = levels[-1]
    for band in reversed(levels[:-1]):
        x = band + F.interpolate(x, size=band.shape[-2:], mode="bilinear", align_corners=False)
    return x


def laplacian(g: torch.Tensor, bands: int = 4, scale: float = 2.0) -> torch.Tensor:
    """The gradient with each band divided by its RMS. One band: g / RMS(g), the plain
    gradient up to a factor (the step's normalisation then removes it)."""
    levels = laplacian_split(g, bands, scale)
    return laplacian_merge([b / (b.pow(2).mean().sqrt() + 1e-12) for b in levels])


def _spectrum_scale(height: int, width: int, device: torch.device) -> torch.Tensor:
    """1/f over rfft2's frequencies (cycles per pixel), with f at least one cycle per frame."""
    fy = torch.fft.fftfreq(height, device=device).view(-1, 1)
    fx = torch.fft.rfftfreq(width, device=device).view(1, -1)
    f = (fx * fx + fy * fy).sqrt()
    return 1 / f.clamp_min(1 / max(height, width))


def _colours(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", m.to(x), x)


def from_decorrelated(z: torch.Tensor) -> torch.Tensor:
    """An image from its decorrelated, frequency-scaled form (the parametrisation's map J)."""
    h, w = z.shape[-2:]
    spatial = torch.fft.irfft2(torch.fft.rfft2(z) * _spectrum_scale(h, w, z.device), s=(h, w))
    return _colours(spatial, COLOUR)


def to_decorrelated(x: torch.Tensor) -> torch.Tensor:
    """J⁻¹: the decorrelated, frequency-scaled form of an image."""
    h, w = x.shape[-2:]
    z = _colours(x, torch.linalg.inv(COLOUR))
    return torch.fft.irfft2(torch.fft.rfft2(z) / _spectrum_scale(h, w, x.device), s=(h, w))


def decorrelated(g: torch.Tensor) -> torch.Tensor:
    """J·Jᵀ·g: the change in the image that a gradient step in the decorrelated, 1/f-scaled
    parametrisation makes (Jᵀ: the colour basis transposed, the same real frequency scale)."""
    h, w = g.shape[-2:]
    scaled = torch.fft.irfft2(torch.fft.rfft2(_colours(g, COLOUR.T)) * _spectrum_scale(h, w, g.device), s=(h, w))
    return from_decorrelated(scaled)


def shaped(g: torch.Tensor, mode: str, bands: int = 4, scale: float = 2.0) -> torch.Tensor:
    """The step's direction for the gradient g (1×3×H×W) under `mode` (PRECONDITIONS)."""
    if mode == "laplacian":
        return laplacian(g, bands, scale)
    if mode == "decorrelated":
        return decorrelated(g)
    return g
