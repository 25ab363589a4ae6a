"""Optical flow between frames of a video, and what it is used for: carrying the dream along
the motion of the footage, knowing where that carry is trustworthy, and measuring flicker.

A flow field here is H×W×2 float32 (dx, dy) in pixels on the grid of the frame it starts
from: pixel p of frame a shows what is at p + flow(p) in frame b. Flows are computed on the
grey *source* frames, never on dreamed ones: the dream's own patterns would pull the flow
toward themselves and lock the dream in place."""

from __future__ import annotations

import functools
from typing import NamedTuple

import cv2
import numpy as np
import torch

from ..base.settings import FLOWS


class FlowMethod:
    """One optical-flow method, set up once (DIS keeps buffers between calls)."""

    def __init__(self, method: str):
        if method not in FLOWS[:2]:
            raise ValueError(f"unknown flow method {method!r}")
        self.method = method
        # DIS "medium": about 8 ms for a 512×288 pair on two cores and close to Farneback's
        # accuracy on camera motion; "fast" misses the fine motion of small objects.
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The flow from grey frame a to grey frame b."""
        if self._dis is not None:
            return self._dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=5, winsize=15, iterations=3,
                                            poly_n=5, poly_sigma=1.2, flags=0)


class Pair(NamedTuple):
    """The flows both ways between two consecutive frames."""

    forward: np.ndarray  # t-1 → t, on frame t-1's grid
    backward: np.ndarray  # t → t-1, on frame t's grid


def pair(method: FlowMethod, before: np.ndarray, after: np.ndarray) -> Pair:
    return Pair(method(before, after), method(after, before))


@functools.lru_cache(maxsize=4)
def _grid(height: int, width: int) -> np.ndarray:
    """(x, y) of each pixel, H×W×2 float32 (made once per frame size)."""
    grid = np.empty((height, width, 2), np.float32)
    grid[..., 0] = np.arange(width, dtype=np.float32)
    grid[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def _map(flow: np.ndarray) -> np.ndarray:
    return _grid(*flow.shape[:2]) + flow


def warp_numpy(img: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """img (on the grid `flow` points into) sampled at p + flow(p): aligned with flow's grid."""
    return cv2.remap(img, _map(flow), None, interpolation, borderMode=cv2.BORDER_REPLICATE)


def warp_flow(img: torch.Tensor, flow: np.ndarray) -> torch.Tensor:
    """A 1×C×H×W tensor warped along `flow` (see warp_numpy), bicubic: a residual carried
    frame after frame by bilinear sampling would blur a little more each time."""
    src = img[0].permute(1, 2, 0).contiguous().cpu().float().numpy()
    out = warp_numpy(src, flow, cv2.INTER_CUBIC)
    if out.ndim == 2:
        out = out[..., None]
    return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0).to(img.device)


def _norm2(v: np.ndarray) -> np.ndarray:
    return cv2.magnitude(v[..., 0], v[..., 1]) ** 2


def consistent(flow: np.ndarray, back: np.ndarray) -> np.ndarray:
    """H×W float32 on `flow`'s grid: 1 where following `flow` and then `back` returns to the
    start (the pixel is seen in both frames), 0 where it does not (occluded, newly revealed, or
    the flow is wrong). The test of Sundaram et al. (2010), as used by Ruder et al. (2016) for
    video style transfer: the error may grow with the motion, plus half a pixel."""
    h, w = flow.shape[:2]
    xy = _map(flow)
    there = cv2.remap(back, xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ok = _norm2(flow + there) <= 0.01 * (_norm2(flow) + _norm2(there)) + 0.5
    x, y = xy[..., 0], xy[..., 1]
    ok &= (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ok.astype(np.float32)


def soft(mask: np.ndarray, radius: int = 2) -> torch.Tensor:
    """The mask eroded, then feathered, as 1×1×H×W: the carried dream fades out before the edge
    of an occlusion rather than at it, where the flow itself is least sure."""
    k = 2 * radius + 1
    eroded = cv2.erode(mask, np.ones((k, k), np.uint8))
    return torch.from_numpy(cv2.GaussianBlur(eroded, (k, k), 0))[None, None]


class WarpError(NamedTuple):
    """Sums for the warping error of Lai et al. (2018): the mean, over consecutive pairs, of
    the squared difference between frame t and frame t+1 warped back along the source's flow,
    over the pixels where that flow is consistent (pixels in [0, 1], averaged over channels)."""

    total: float = 0.0
    pairs: int = 0

    def add(self, before: np.ndarray, after: np.ndarray, forward: np.ndarray, mask: np.ndarray) -> WarpError:
        back = warp_numpy(after, forward).astype(np.float32) / 255
        diff = np.square(before.astype(np.float32) / 255 - back).mean(-1)
        n = float(mask.sum())
        value = float((diff * mask).sum() / n) if n else 0.0
        return WarpError(self.total + value, self.pairs + 1)

    @property
    def value(self) -> float:
        return self.total / max(self.pairs, 1)
