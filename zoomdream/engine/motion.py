"""The camera move between frames: zoom, rotate and pan, expressed per second so that the
same preset moves identically at 24 or 60 fps."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..base.settings import Motion

__all__ = ["Motion", "IDENTITY", "affine_theta", "camera_after", "coverage", "frame_work", "move", "resample", "theta",
           "warp"]

IDENTITY = torch.eye(3, dtype=torch.float64)  # a camera that has not moved


def theta(zoom: float, radians: float, dx: float, dy: float, height: int, width: int) -> torch.Tensor:
    """The 3×3 matrix (its top two rows are what affine_grid wants) that maps each output pixel
    to where it samples the input, in normalised coordinates: input = R(-a) · output / z + pan.

    Rotation is done in pixel units (not the normalised [-1, 1] square) so that a non-square
    frame rotates without shearing."""
    cos, sin = math.cos(radians), math.sin(radians)
    ax = width / height  # normalised x units are this many times larger than y units
    m = [[cos / zoom, sin / (zoom * ax), 2 * dx], [-sin * ax / zoom, cos / zoom, 2 * dy], [0.0, 0.0, 1.0]]
    return torch.tensor(m, dtype=torch.float64)


def affine_theta(motion: Motion, fps: float, height: int, width: int) -> torch.Tensor:
    """One frame's worth of the camera move, as `theta`."""
    return theta(*motion.per_frame(fps), height, width)


def camera_after(camera: torch.Tensor, motion: Motion, fps: float, height: int, width: int) -> torch.Tensor:
    """Where the camera looks after one more frame: pixel p of the next frame shows what was at
    camera · move · p at frame 0."""
    return camera @ affine_theta(motion, fps, height, width)


def warp(img: torch.Tensor, m: torch.Tensor, mode: str = "bicubic", padding: str = "reflection") -> torch.Tensor:
    """Sample `img` (N×3×H×W) through the 3×3 matrix `m`; differentiable."""
    h, w = img.shape[-2:]
    # non_blocking: a CPU matrix goes to the GPU without waiting for the work queued there.
    m = m[:2].to(img.dtype).to(img.device, non_blocking=True)
    grid = F.affine_grid(m.unsqueeze(0).expand(img.shape[0], 2, 3), [img.shape[0], img.shape[1], h, w],
                         align_corners=False)
    return F.grid_sample(img, grid, mode=mode, padding_mode=padding, align_corners=False)


def _pixels(m: torch.Tensor, height: int, width: int) -> np.ndarray:
    """`m` (normalised coordinates, align_corners=False) as the 2×3 pixel map OpenCV takes."""
    to_norm = torch.tensor([[2 / width, 0, 1 / width - 1], [0, 2 / height, 1 / height - 1], [0, 0, 1]],
                           dtype=torch.float64)
    return (torch.linalg.inv(to_norm) @ m.double() @ to_norm)[:2].numpy()


def resample(img: torch.Tensor, m: torch.Tensor, padding: str = "reflection", clamp: bool = True,
             window: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """`warp` for frames, not differentiable, bicubic, clamped to [0, 1] (unless `clamp` is
    False: a difference of frames); `window` (y0, y1, x0, x1): only that part of the result.
    On the CPU it is OpenCV's warpAffine: the same cubic kernel (a = -0.75) and borders as
    grid_sample, ten times faster (1.3 ms against 13.5 ms at 512², bench), which is what makes
    in-between frames cost almost nothing beside a dreamed one."""
    if img.device.type != "cpu" or img.shape[0] != 1:
        out = warp(img, m.float(), "bicubic", padding)
        out = out if window is None else out[..., window[0] : window[1], window[2] : window[3]]
        return out.clamp_(0, 1) if clamp else out
    h, w = img.shape[-2:]
    y0, y1, x0, x1 = (0, h, 0, w) if window is None else window
    border = cv2.BORDER_REFLECT if padding == "reflection" else cv2.BORDER_REPLICATE
    # Plane by plane, in the tensor's own layout: no copies to and from interleaved pixels, and
    # the result stays planar, which the elementwise work after it runs fastest on (1.9 ms
    # against 2.7 at 512², and a colour pull on the interleaved result took twice as long).
    src = img[0].float().contiguous().numpy()
    out = np.empty((src.shape[0], y1 - y0, x1 - x0), np.float32)
    pixels = _pixels(m, h, w)
    pixels[:, 2] += pixels[:, 0] * x0 + pixels[:, 1] * y0  # output pixel (x, y) is (x + x0, y + y0)
    for plane, dst in zip(src, out):
        cv2.warpAffine(plane, pixels, (x1 - x0, y1 - y0), dst=dst, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                       borderMode=border)
    out = torch.from_numpy(out).unsqueeze(0)
    return out.clamp_(0, 1) if clamp else out


@contextlib.contextmanager
def frame_work(device: torch.device) -> Iterator[None]:
    """Frame arithmetic between `resample`s: on the CPU, torch runs it on one thread. After
    each parallel op torch's OpenMP workers spin for a few milliseconds waiting for the next
    one, and OpenCV's own workers then share the cores with them: on 2 cores a 512² warp took
    3.5 ms right after a torch op against 1.7 ms alone. The arithmetic between warps is a few
    passes over memory, which one thread does about as fast. A cadence-3 render at 512² took
    153.9 ms a frame against 155.6 without this (alternating, 3 rounds); the thread count is
    the calling thread's own. Other devices are left as they are."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def coverage(m: torch.Tensor, height: int, width: int, device: torch.device) -> torch.Tensor:
    """1×1×H×W: 1 where moving a frame by m samples inside it, 0 where it falls outside."""
    if device.type == "cpu":
        ones = np.ones((height, width), np.float32)
        out = cv2.warpAffine(ones, _pixels(m, height, width), (width, height),
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        return torch.from_numpy(out)[None, None]
    m = m[:2].float().to(device, non_blocking=True)
    grid = F.affine_grid(m.unsqueeze(0), [1, 1, height, width], align_corners=False)
    return (grid.abs() <= 1).all(dim=-1).unsqueeze(1).float()


def move(img: torch.Tensor, motion: Motion, fps: float) -> torch.Tensor:
    """Warp a 1×3×H×W frame by one frame's worth of motion, on the frame's own device.

    Reflection padding hides the border: content that enters at the edge while rotating or
    panning is a mirror of what is there, which the next dream steps blend in; a black or
    clamped border would leave streaks."""
    if motion == Motion():
        return img
    # Bicubic keeps the zoomed frame sharp; bilinear would blur a little more every frame.
    return resample(img, affine_theta(motion, fps, *img.shape[-2:]))
