"""The frame loop ("we must go deeper"): each frame dreams on the previous output, which is
then moved (zoomed, rotated, panned) to become the next frame's input.

    d[n]   = dream(s[n])                    the frame shown
    s[n+1] = colour(move(d[n]))             the next frame's input

Everything a frame needs is derived from (seed, n) and s[n], so a loop can stop after any
frame and resume to the identical result from s[n] alone. `video_frames` puts the dreamed
frames in the order a video shows them, closing a loop with a cross-fade."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from .dream import Dreamer
from .images import to_tensor, to_uint8
from .motion import IDENTITY, camera_after, move
from .schedule import Schedule
from .settings import PRIORS, DreamSettings, hex_colour


def frame_generator(seed: int, n: int) -> torch.Generator:
    """An independent, reproducible random stream per frame (no state to carry across resume)."""
    return torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + n * 0xBF58476D1CE4E5B9 + 1) % 2**63)


def start_frame(width: int, height: int, start: str, seed: int, device: torch.device,
                photo: np.ndarray | None = None) -> torch.Tensor:
    """Frame 0's input: the photo (already fitted to the frame), or noise or a colour."""
    if photo is not None:
        return to_tensor(photo, device)
    g = torch.Generator().manual_seed(seed)
    colour = hex_colour(start)
    base = torch.tensor(colour if colour else (0.5, 0.5, 0.5)).view(1, 3, 1, 1).expand(1, 3, height, width)
    # Noise at several scales: a dream grows from whatever structure is there, and pure
    # per-pixel noise would only give it the finest scale to work with.
    noise = torch.zeros(1, 3, height, width)
    amp = 0.12 if colour is None else 0.03
    for k in range(5):
        small = torch.rand(1, 3, max(1, height >> k), max(1, width >> k), generator=g) - 0.5
        noise += amp * F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    return (base + noise).clamp(0, 1).to(device)


@dataclass
class LoopState:
    """Everything the loop carries from one frame to the next (and a checkpoint saves)."""

    index: int  # the next frame to dream
    frame: torch.Tensor  # its input, s[index]
    color_ref: torch.Tensor | None = None  # 2×3 mean/std of frame 0, once dreamed
    camera: torch.Tensor = IDENTITY  # where frame `index` looks in frame 0's coordinates (motion.theta)


def channel_stats(img: torch.Tensor) -> torch.Tensor:
    flat = img.flatten(2)[0]
    return torch.stack([flat.mean(1), flat.std(1)])


def match_colour(img: torch.Tensor, ref: torch.Tensor, strength: float) -> torch.Tensor:
    """Nudge each channel's mean and spread toward the reference. Long zooms otherwise drift
    dark or washed-out, because every dream step and resample shifts the statistics a little
    in the same direction; a small pull each frame cancels the drift without fighting the
    dream's own colours."""
    if strength <= 0:
        return img
    cur = channel_stats(img)
    mean, std = cur[0].view(1, 3, 1, 1), cur[1].view(1, 3, 1, 1).clamp_min(1e-4)
    matched = (img - mean) / std * ref[1].view(1, 3, 1, 1) + ref[0].view(1, 3, 1, 1)
    return (img + strength * (matched - img)).clamp_(0, 1)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs beside the schedule."""

    fps: float
    seed: int
    warmup: bool = True  # dream frame 0 like a still (all octaves)
    color_strength: float = 0.0  # pull toward frame 0's colours; 0: off


@dataclass
class Frame:
    index: int
    image: torch.Tensor  # d[n], the dreamed frame
    moved: torch.Tensor  # move(d[n]), to measure how much frame n+1's dream changes it
    state: LoopState  # the state after this frame (resume point)


def dream_frames(dreamer: Dreamer, schedule: Schedule, state: LoopState, loop: LoopSettings,
                 stop: int | None = None) -> Iterator[Frame]:
    """Dream frames state.index … stop-1 (past the schedule's end too: loops dream a tail)."""
    stop = schedule.total if stop is None else stop
    s, ref, camera = state.frame, state.color_ref, state.camera
    for n in range(state.index, stop):
        spec = schedule.at(min(n, schedule.total - 1))
        settings = spec.dream
        if n == 0 and loop.warmup:
            keep = ("tile", "tile_overlap", *PRIORS)  # a still's steps, the segment's priors
            settings = replace(DreamSettings(), **{k: getattr(settings, k) for k in keep})
        # The objective's pictures (content:INPUT) are seen by the camera: the frame keeps the
        # photo as the zoom has brought it, not as it was at frame 0.
        d = dreamer(s, spec.objective, settings, frame_generator(loop.seed, n), camera=camera)
        if not torch.isfinite(d).all():
            raise FloatingPointError(f"frame {n} has NaN or inf values")
        if ref is None:
            ref = channel_stats(d)
        moved = move(d, spec.motion, loop.fps)
        s = match_colour(moved, ref, loop.color_strength)
        camera = camera_after(camera, spec.motion, loop.fps, *d.shape[-2:])
        yield Frame(n, d, moved, LoopState(n + 1, s, ref, camera))


def loop_blend(tail: np.ndarray, head: np.ndarray, k: int, length: int) -> np.ndarray:
    """Frame k of the loop's closing cross-fade: from the tail (frame N+k, which continues the
    motion past the end) to the head (frame k, where the video restarts). Both move with the
    same zoom, so the fade happens in consistent coordinates and the wrap shows no jump."""
    w = (k + 1) / (length + 1)
    w = w * w * (3 - 2 * w)
    out = tail.astype(np.float32) * (1 - w) + head.astype(np.float32) * w
    return (out + 0.5).astype(np.uint8)


@dataclass
class VideoState:
    """A video in the making: the loop's state, the frames held back to close a loop, and the
    running stability figure."""

    loop: LoopState
    head: list[np.ndarray] = field(default_factory=list)  # frames 0…tail-1, shown last, blended
    stab_sum: float = 0.0
    stab_n: int = 0
    prev_moved: torch.Tensor | None = None

    @property
    def stability(self) -> float:
        """Mean |d[n+1] − move(d[n])| in 0–255 units: how much each dream changes the frame."""
        return self.stab_sum / max(self.stab_n, 1)


def video_frames(dreamer: Dreamer, schedule: Schedule, state: VideoState, loop: LoopSettings,
                 tail: int = 0) -> Iterator[tuple[int, int | None, np.ndarray]]:
    """(frame dreamed, its position in the video, H×W×3 uint8) for every frame dreamed from
    where `state` stands; `state` is updated in place and is the resume point after each.

    A loop of N frames dreams N + tail: frames 0…tail-1 are held back (position None), the
    video shows tail…N-1, then N…N+tail-1 cross-faded into the held-back ones, so that its end
    flows into its start. Positions come in order: this is the order the video shows."""
    total = schedule.total
    for fr in dream_frames(dreamer, schedule, state.loop, loop, stop=total + tail):
        n = fr.index
        if state.prev_moved is not None:
            state.stab_sum += float((fr.image - state.prev_moved).abs().mean()) * 255
            state.stab_n += 1
        state.prev_moved, state.loop = fr.moved, fr.state
        frame = to_uint8(fr.image)
        if n < tail:
            state.head.append(frame)
            yield n, None, frame
            continue
        if n >= total:
            frame = loop_blend(frame, state.head[n - total], n - total, tail)
        yield n, n - tail, frame
