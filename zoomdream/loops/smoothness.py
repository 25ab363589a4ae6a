"""How a video moves, from its frames in order and the camera move after each: Ek is the motion
error between frame n and frame n+k (frame n moved by the k camera moves between), and
persistence P = E8 / (8·E1). P = 1: every change persists, the dream grows; P = 1/8: what one
frame adds the next ones undo, the dream boils. Every render reports it; `make bench` measures
it for every preset."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.images import to_tensor
from ..engine.motion import IDENTITY, affine_theta, resample
from ..timeline.schedule import Schedule


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
    """The running sums of E1 and E8 over a video's frames, and its persistence P."""

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
            m = IDENTITY
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
