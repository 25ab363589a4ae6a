"""The camera move between frames: zoom, rotate and pan, expressed per second so that the
same preset moves identically at 24 or 60 fps."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .settings import Motion

__all__ = ["Motion", "affine_theta", "move"]


def affine_theta(motion: Motion, fps: float, height: int, width: int) -> torch.Tensor:
    """The 2×3 matrix affine_grid wants: for each output pixel, where to sample the input.

    Rotation is done in pixel units (not the normalised [-1, 1] square) so that a non-square
    frame rotates without shearing."""
    z, a, dx, dy = motion.per_frame(fps)
    cos, sin = math.cos(a), math.sin(a)
    ax = width / height  # normalised x units are this many times larger than y units
    # input = R(-a) · output / z + pan, written in normalised coordinates.
    theta = [[cos / z, sin / (z * ax), 2 * dx], [-sin * ax / z, cos / z, 2 * dy]]
    return torch.tensor(theta, dtype=torch.float64)


def move(img: torch.Tensor, motion: Motion, fps: float) -> torch.Tensor:
    """Warp a 1×3×H×W frame by one frame's worth of motion, on the frame's own device.

    Reflection padding hides the border: content that enters at the edge while rotating or
    panning is a mirror of what is there, which the next dream steps blend in; a black or
    clamped border would leave streaks."""
    if motion == Motion():
        return img
    h, w = img.shape[-2:]
    theta = affine_theta(motion, fps, h, w).to(img.device, torch.float32).unsqueeze(0)
    grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
    # Bicubic keeps the zoomed frame sharp; bilinear would blur a little more every frame.
    out = F.grid_sample(img, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
    return out.clamp_(0, 1)
