"""The frame loop of a zoom ("we must go deeper"): each frame dreams on the previous output, which is
then moved (zoomed, rotated, panned) to become the next frame's input.

    d[n]   = dream(s[n])                    the frame shown
    s[n+1] = colour(move(d[n]))             the next frame's input

With cadence K only every K-th frame is dreamed, from d[n] moved on K frames at once; the
frames shown are grown one from the next: f[n+1] = colour(move(f[n])) + the next share of the
change d[n+K] made, moved back by the exact camera motion to that instant (see `grow`).

Everything a frame needs is derived from (seed, n) and the loop's state, so a loop can stop
after any frame and resume to the identical result. `video_frames` puts the dreamed frames in
the order a video shows them, closing a loop with a cross-fade."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..base.settings import PRIORS, SHAPE, DreamSettings, hex_colour
from ..engine.dream import Dreamer
from ..engine.images import to_tensor, to_uint8
from ..engine.motion import IDENTITY, affine_theta, camera_after, coverage, frame_work, resample
from ..timeline.schedule import Schedule, ease
from .smoothness import Smoothness


def frame_generator(seed: int, n: int) -> torch.Generator:
    """An independent, reproducible random stream per frame (no state to carry across resume)."""
    return torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + n * 0xBF58476D1CE4E5B9 + 1) % 2**63)


def finite(d: torch.Tensor, n: int) -> torch.Tensor:
    """Dreamed frame n, or FloatingPointError where the dream diverged (a NaN or inf in it)."""
    # One sum instead of a mask: NaN and inf carry through it (0.05 ms against 1.6 at 512²).
    if not torch.isfinite(d.sum()):
        raise FloatingPointError(f"frame {n} has NaN or inf values")
    return d


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

    index: int  # the next frame to show
    frame: torch.Tensor  # the input of the next frame to dream (index rounded up to the cadence)
    color_ref: torch.Tensor | None = None  # 2×3 mean/std of frame 0, once dreamed
    camera: torch.Tensor = IDENTITY  # where that dreamed frame looks in frame 0's coordinates (motion.theta)
    velocity: torch.Tensor | None = None  # the dream's last change, moved with the camera (momentum)
    shown: torch.Tensor | None = None  # the last frame shown, which the next one grows from (cadence > 1)


def channel_stats(img: torch.Tensor) -> torch.Tensor:
    """2×3: each channel's mean and standard deviation, from the means of x and x² (values are
    0–1, so float32 loses nothing that matters here): a tenth of torch.std_mean's time on a CPU,
    and in-between frames do this every frame."""
    mean = img.mean(dim=(0, 2, 3))
    var = (img * img).mean(dim=(0, 2, 3)) - mean * mean
    n = img[0, 0].numel()
    return torch.stack([mean, (var.clamp_min(0) * (n / max(n - 1, 1))).sqrt()])


def match_colour(img: torch.Tensor, ref: torch.Tensor, strength: float) -> torch.Tensor:
    """Nudge each channel's mean and spread toward the reference. Long zooms otherwise drift
    dark or washed-out, because every dream step and resample shifts the statistics a little
    in the same direction; a small pull each frame cancels the drift without fighting the
    dream's own colours. (img + strength·(matched − img) is one affine map per channel.)"""
    if strength <= 0:
        return img
    mean, std = channel_stats(img)
    gain = ref[1] / std.clamp_min(1e-4)
    a = 1 + strength * (gain - 1)
    b = strength * (ref[0] - mean * gain)
    return torch.addcmul(b.view(1, 3, 1, 1), img, a.view(1, 3, 1, 1)).clamp_(0, 1)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs beside the schedule."""

    fps: float
    seed: int
    warmup: bool = True  # dream frame 0 like a still (all octaves)
    color_strength: float = 0.0  # pull toward frame 0's colours; 0: off
    momentum: float = 0.0  # share of the dream's last change carried into the next frame
    cadence: int = 1  # dream every cadence-th frame; make the ones between from their neighbours


@dataclass
class Frame:
    index: int
    image: torch.Tensor  # the frame: dreamed, or made from the dreamed ones around it
    state: LoopState  # the state after this frame (resume point)
    moved: torch.Tensor | None = None  # the frame before moved by one camera move, where it was made


def dream_frames(dreamer: Dreamer, schedule: Schedule, state: LoopState, loop: LoopSettings,
                 stop: int | None = None) -> Iterator[Frame]:
    """Frames state.index … stop-1 (past the schedule's end too: loops dream a tail), dreamed
    every loop.cadence-th frame and grown between (see `grow`)."""
    stop = schedule.total if stop is None else stop
    k = loop.cadence
    while state.index < stop:
        key = -(-state.index // k) * k  # the next frame to dream
        d, after = dream_key(dreamer, schedule, state, loop, key)
        if k == 1 or key == 0:
            state = replace(after, index=key + 1, shown=d if k > 1 else None)
            if key < stop:
                yield Frame(key, d, state)
            continue
        change, shown = d - state.frame, state.shown
        for n in range(state.index, min(key + 1, stop)):
            with frame_work(change.device):
                shown, moved = grow(shown, change, schedule, loop, after.color_ref, key - k, n, key)  # type: ignore[arg-type]
            yield Frame(n, shown, replace(after if n == key else state, index=n + 1, shown=shown), moved)
        state = replace(after, index=key + 1, shown=shown)


def dream_key(dreamer: Dreamer, schedule: Schedule, state: LoopState, loop: LoopSettings,
              key: int) -> tuple[torch.Tensor, LoopState]:
    """Dream frame `key` from state.frame; returns it and the state after it (whose frame is the
    input of the frame cadence frames on: the dreamed frame carried on to it)."""
    spec = schedule.at(min(key, schedule.total - 1))
    settings = spec.dream
    if key == 0 and loop.warmup:
        keep = ("tile", "tile_overlap", *PRIORS, *SHAPE)  # a still's steps, the segment's priors and step shape
        settings = replace(DreamSettings(), **{k: getattr(settings, k) for k in keep})
    s, x = state.frame, state.frame
    if key > 0 and (loop.momentum > 0 or loop.cadence > 1):
        # A dreamed frame stands for `cadence` frames but averages fewer jitter draws per frame
        # shown, so its change carries more boil: momentum compounded over 1 + 0.55·(K − 1)
        # frames per dreamed frame (at K = 3 a time constant of 15 frames against 10) averages
        # it, and steps K^0.7 larger keep the dream moving. At 512² over 48 frames, cadence 3
        # against 1: P 0.74 against 0.70, E8 17.5 against 18.3 (β^K and √K steps: P 0.69,
        # E8 17.3; K^0.7 and β^(1 + 0.75(K − 1)): P 0.72, E8 18.8; bench, cadence).
        settings = settings.resolved(spec.objective.defaults)
        settings = replace(settings, step_size=settings.step_size * loop.cadence**0.7)
        x, settings = with_momentum(s, state.velocity, settings, loop.momentum ** (1 + 0.55 * (loop.cadence - 1)))
    # The objective's pictures (content:INPUT) are seen by the camera: the frame keeps the
    # photo as the zoom has brought it, not as it was at frame 0.
    d = dreamer(x, spec.objective, settings, frame_generator(loop.seed, key), camera=state.camera)
    with frame_work(d.device):
        finite(d, key)
        ref = channel_stats(d) if state.color_ref is None else state.color_ref
        h, w = d.shape[-2:]
        m = span_matrix(schedule, loop.fps, key, key + loop.cadence, h, w)
        # Frame 0's change is the warm-up dream itself, not a motion to carry on.
        velocity = resample(d - s, m, clamp=False) if key > 0 and loop.momentum > 0 else None
        # The next dreamed frame's input: this one moved on in one resample, not one per frame
        # (those blur it more; at cadence 3 P went from 0.73 to 0.77 and E8 from 16.1 to 16.9),
        # and pulled toward frame 0's colours as `cadence` frames would be.
        pull = 1 - (1 - loop.color_strength) ** loop.cadence
        nxt = match_colour(resample(d, m), ref, pull)
        return d, LoopState(key + loop.cadence, nxt, ref, state.camera @ m, velocity, state.shown)


def span_matrix(schedule: Schedule, fps: float, a: int, b: int, height: int, width: int) -> torch.Tensor:
    """The camera moves of frames a … b-1 as one matrix (see motion.theta): pixel p of frame b
    shows what was at span_matrix · p in frame a."""
    m = IDENTITY
    for n in range(a, b):
        m = camera_after(m, schedule.motion(n), fps, height, width)
    return m


def grow(shown: torch.Tensor, change: torch.Tensor, schedule: Schedule, loop: LoopSettings, ref: torch.Tensor,
         a: int, n: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame n (a < n ≤ b, dreamed frames a and b): frame n-1 as shown, moved by one camera
    move and pulled toward frame 0's colours (as a frame is carried at cadence 1), plus the
    next share of the change the dream made at b, moved back to n; shares follow a smoothstep
    from 0 at a to 1 at b. Where b does not reach (the border a zoom uncovers) nothing is added.

    Each frame is built on the one before exactly as a viewer (and E1) compares them: a dreamed
    frame shown as dreamed would differ from its predecessor moved on by the detail that moving
    the change back and forth blurs, a pop of fine detail at every dreamed frame (E1 at those
    frames was 1.7 above its share, P at cadence 3 0.59). So what is shown drifts from what is
    dreamed by that blur, and no further: the dream itself goes on from the dreamed frames.
    Returns the frame and frame n-1 moved (which the smoothness figure reuses)."""
    h, w = change.shape[-2:]
    moved = resample(shown, affine_theta(schedule.motion(n - 1), loop.fps, h, w))
    base = match_colour(moved, ref, loop.color_strength)
    share = ease((n - a) / (b - a), "smooth") - ease((n - 1 - a) / (b - a), "smooth")
    if n == b:
        return torch.add(base, change, alpha=share).clamp_(0, 1), moved
    back = torch.linalg.inv(span_matrix(schedule, loop.fps, n, b, h, w))
    fade = coverage(back, h, w, change.device) * share
    return torch.addcmul(base, resample(change, back, "border", clamp=False), fade).clamp_(0, 1), moved


def with_momentum(s: torch.Tensor, velocity: torch.Tensor | None, settings: DreamSettings,
                  momentum: float) -> tuple[torch.Tensor, DreamSettings]:
    """A frame's input and steps with momentum: the last change carried on, and steps scaled by
    1 − momentum, so that a change the dream keeps making grows at the rate it would without
    momentum while one it undoes the next frame (the boil) is averaged away. Measured on the
    default preset: persistence 0.28 → 0.67 (bench: `make bench`, smoothness)."""
    x = s if velocity is None else torch.add(s, velocity, alpha=momentum).clamp_(0, 1)
    return x, replace(settings, step_size=settings.step_size * (1 - momentum))


def loop_blend(tail: np.ndarray, head: np.ndarray, k: int, length: int) -> np.ndarray:
    """Frame k of the loop's closing cross-fade: from the tail (frame N+k, which continues the
    motion past the end) to the head (frame k, where the video restarts). Both move with the
    same zoom, so the fade happens in consistent coordinates and the wrap shows no jump."""
    w = ease((k + 1) / (length + 1), "smooth")
    out = tail.astype(np.float32) * (1 - w) + head.astype(np.float32) * w
    return (out + 0.5).astype(np.uint8)


@dataclass
class VideoState:
    """A video in the making: the loop's state, the frames held back to close a loop, and the
    running stability figure."""

    loop: LoopState
    head: list[np.ndarray] = field(default_factory=list)  # frames 0…tail-1, shown last, blended
    smooth: Smoothness = field(default_factory=Smoothness)  # E1, E8, P (after a resume: its sums go on)

    @property
    def index(self) -> int:
        return self.loop.index

    def to_dict(self) -> dict:
        loop = self.loop
        return {"index": loop.index, "frame": loop.frame.cpu(), "color_ref": _cpu(loop.color_ref),
                "camera": loop.camera, "velocity": _cpu(loop.velocity), "shown": _cpu(loop.shown),
                "head": [torch.from_numpy(h) for h in self.head],
                "smooth": [self.smooth.e1, self.smooth.n1, self.smooth.ek, self.smooth.nk]}

    @classmethod
    def from_dict(cls, d: dict, device: torch.device) -> VideoState:
        def on(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        loop = LoopState(d["index"], on(d["frame"]), on(d["color_ref"]), d["camera"], on(d["velocity"]),  # type: ignore[arg-type]
                         on(d["shown"]))
        e1, n1, ek, nk = d["smooth"]
        return cls(loop, [h.numpy() for h in d["head"]], Smoothness(e1=e1, n1=n1, ek=ek, nk=nk))

    def figures(self) -> dict:
        return {"stability": self.stability, "smoothness": self.smooth}

    @property
    def stability(self) -> float:
        """Mean |frame[n+1] − move(frame[n])| in 0–255 units over the inner 80% of the frame
        (E1): how much each frame changes the one before beyond the camera move."""
        return self.smooth.E1


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.cpu()


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
        state.loop = fr.state
        h, w = fr.image.shape[-2:]
        with frame_work(fr.image.device):
            state.smooth.add(fr.image, affine_theta(schedule.motion(n), loop.fps, h, w), fr.moved)
            frame = to_uint8(fr.image)
        if n < tail:
            state.head.append(frame)
            yield n, None, frame
            continue
        if n >= total:
            frame = loop_blend(frame, state.head[n - total], n - total, tail)
        yield n, n - tail, frame
