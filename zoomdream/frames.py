"""The frame loop ("we must go deeper"): each frame dreams on the previous output, which is
then moved (zoomed, rotated, panned) to become the next frame's input.

    d[n]   = dream(s[n])                    the frame shown
    s[n+1] = colour(move(d[n]))             the next frame's input

Everything a frame needs is derived from (seed, n) and s[n], so a render can stop after any
frame and resume to the identical result from s[n] alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .dream import DreamSettings, Dreamer
from .errors import UserError
from .images import check_min_size, fit, load_image, to_tensor
from .motion import move
from .presets import Preset, Schedule, _hex_colour


def frame_generator(seed: int, n: int) -> torch.Generator:
    """An independent, reproducible random stream per frame (no state to carry across resume)."""
    return torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + n * 0xBF58476D1CE4E5B9 + 1) % 2**63)


def start_frame(preset: Preset, image: str | None, device: torch.device) -> torch.Tensor:
    w, h = preset.width, preset.height
    if image is not None:
        img = load_image(image)
        check_min_size(img, f"input image {image}")
        return to_tensor(fit(img, w, h), device)
    if preset.start == "photo":
        raise UserError(f"preset '{preset.name}' starts from a photo", "give an INPUT image")
    g = torch.Generator().manual_seed(preset.seed)
    colour = _hex_colour(preset.start)
    base = torch.tensor(colour if colour else (0.5, 0.5, 0.5)).view(1, 3, 1, 1).expand(1, 3, h, w)
    # Noise at several scales: a dream grows from whatever structure is there, and pure
    # per-pixel noise would only give it the finest scale to work with.
    noise = torch.zeros(1, 3, h, w)
    amp = 0.12 if colour is None else 0.03
    for k in range(5):
        small = torch.rand(1, 3, max(1, h >> k), max(1, w >> k), generator=g) - 0.5
        noise += amp * F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return (base + noise).clamp(0, 1).to(device)


@dataclass
class LoopState:
    """Everything the loop carries from one frame to the next (and a checkpoint saves)."""

    index: int  # the next frame to dream
    frame: torch.Tensor  # its input, s[index]
    color_ref: torch.Tensor | None = None  # 2×3 mean/std of frame 0, once dreamed


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


@dataclass
class Frame:
    index: int
    image: torch.Tensor  # d[n], the dreamed frame
    moved: torch.Tensor  # move(d[n]), to measure how much frame n+1's dream changes it
    state: LoopState  # the state after this frame (resume point)


def dream_frames(dreamer: Dreamer, preset: Preset, state: LoopState, stop: int | None = None,
                 schedule: Schedule | None = None) -> Iterator[Frame]:
    """Dream frames state.index … stop-1 (past the preset's length too: loops render a tail)."""
    schedule = schedule or preset.schedule()
    stop = preset.frames if stop is None else stop
    fps = preset.fps
    s, ref = state.frame, state.color_ref
    for n in range(state.index, stop):
        spec = schedule.at(min(n, preset.frames - 1))
        settings = spec.dream
        if n == 0 and preset.warmup:
            settings = replace(DreamSettings(), tile=settings.tile, tile_overlap=settings.tile_overlap,
                               blur=settings.blur)
        d = dreamer(s, spec.objective, settings, frame_generator(preset.seed, n))
        if not torch.isfinite(d).all():
            raise FloatingPointError(f"frame {n} has NaN or inf values")
        if ref is None:
            ref = channel_stats(d)
        moved = move(d, spec.motion, fps)
        s = match_colour(moved, ref, preset.color_strength) if preset.color == "match" else moved
        yield Frame(n, d, moved, LoopState(n + 1, s, ref))


def loop_blend(tail: np.ndarray, head: np.ndarray, k: int, length: int) -> np.ndarray:
    """Frame k of the loop's closing cross-fade: from the tail (frame N+k, which continues the
    motion past the end) to the head (frame k, where the video restarts). Both move with the
    same zoom, so the fade happens in consistent coordinates and the wrap shows no jump."""
    w = (k + 1) / (length + 1)
    w = w * w * (3 - 2 * w)
    out = tail.astype(np.float32) * (1 - w) + head.astype(np.float32) * w
    return (out + 0.5).astype(np.uint8)
