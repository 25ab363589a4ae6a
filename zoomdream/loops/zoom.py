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
from ..engine.dream import Dreamer, finite
from ..engine.images import to_tensor, to_uint8
from ..engine.motion import IDENTITY, affine_theta, camera_after, coverage, frame_work, resample
from ..timeline.schedule import Schedule, ease
from .smoothness import Smoothness


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

    index: int  # the next frame to show
    frame: torch.Tensor  # the input of the next frame to dream (index rounded up to the cadence)
    color_ref: torch.Tensor | None = None  # colour_stats of the frame whose colours are held, once dreamed
    camera: torch.Tensor = IDENTITY  # where that dreamed frame looks in frame 0's coordinates (motion.theta)
    velocity: torch.Tensor | None = None  # the dream's last change, moved with the camera (momentum)
    shown: torch.Tensor | None = None  # the last frame shown, which the next one grows from (cadence > 1)
    color_err: torch.Tensor | None = None  # the dreamed frames' colour_stats minus color_ref, summed over frames


def colour_stats(img: torch.Tensor) -> torch.Tensor:
    """4×3: the mean colour (row 0) and the 3×3 colour covariance (rows 1–3) of a picture."""
    x = img.movedim(1, 0).reshape(3, -1)
    mean = x.mean(1)
    return torch.cat([mean[None], x @ x.T / x.shape[1] - torch.outer(mean, mean)])


def colour_target(ref: torch.Tensor, err: torch.Tensor | None, strength: float) -> torch.Tensor:
    """Where the colour pull aims: the reference moved against the error the dreamed frames have
    kept so far. A pull alone leaves each frame off by the dream's push ÷ strength, and that
    push wanders with the content; the summed error takes its lasting part away (an integral
    term beside the pull's proportional one). With gain `strength` the pair is λ² + sλ + s²:
    damping 0.5, settling in about 2/s frames (20 at 0.1). At 96² over 1,500–3,000 frames,
    gain s against s/4 (critical damping) took the 100-frame means' variation from 1.4% to
    0.7% in brightness, 1.4% to 0.9% in saturation and 0.8% to 0.4% in contrast: the push
    wanders over a few hundred frames, where a slower integral barely acts."""
    if err is None or strength <= 0:
        return ref
    return ref - strength * err


# By frame 48 a dream grown from noise has found the colours it keeps while pulled toward
# frame 0's: at 256², contrast 38 → 62 and saturation 0.36 → 0.51 over frames 0–48, then
# 63 and 0.48–0.50 to frame 240. Held from there instead of pulled toward frame 0's, the pull
# no longer fights the dream (it had held contrast near 63 against frame 0's 38, and that
# balance wandered with the content: 9.5% in saturation and 7.1% in contrast over 10,000 frames).
SETTLED = 48


def colour_hold(mode: str, strength: float) -> tuple[float, int]:
    """A preset's `color` and `color_strength` as the loop's (color_strength, color_from): the
    settled dream's colours held from frame 48 ("hold"; pulled toward frame 0's before it),
    frame 0's from the start ("match": a photo's palette), or no pull ("off")."""
    return (0.0 if mode == "off" else strength), (SETTLED if mode == "hold" else 0)


def _sqrt_spd(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The square root of a symmetric positive semi-definite matrix and of its inverse."""
    w, v = torch.linalg.eigh(c)
    w = w.clamp_min(0).sqrt()
    return (v * w) @ v.T, (v / w.clamp_min(1e-12)) @ v.T


COLOUR_FLOOR = 1e-5  # added to both covariances: a flat picture (σ < 0.003) is not stretched without bound


def colour_map(stats: torch.Tensor, target: torch.Tensor, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine colour map (3×3 matrix, offset) that takes a picture with `stats` a share
    `strength` of the way to `target`, both colour_stats. The full map is the linear one that
    moves colours least (Monge–Kantorovich): A = C^-½ (C^½ T C^½)^½ C^-½ gives covariance T and
    leaves a picture that already has it unchanged. In float64 on the CPU: twelve numbers, and
    the same answer on every device."""
    s, t = stats.double().cpu(), target.double().cpu()
    eye = torch.eye(3, dtype=torch.float64)
    root, inv_root = _sqrt_spd(s[1:] + COLOUR_FLOOR * eye)
    middle, _ = _sqrt_spd(root @ ((t[1:] + t[1:].T) / 2 + COLOUR_FLOOR * eye) @ root)
    a = inv_root @ middle @ inv_root
    return (1 - strength) * eye + strength * a, strength * (t[0] - a @ s[0])


def match_colour(img: torch.Tensor, target: torch.Tensor, strength: float) -> torch.Tensor:
    """Pull a picture's colours (mean and covariance) a share `strength` toward `target`. Long
    zooms otherwise drift, because every dream step and resample shifts the statistics a little
    in the same direction. The covariance, not each channel's spread alone: with channels held
    apart, their correlation wandered (red–blue by 7% over 2,500 frames at 96²), and with the
    integral and the hold at strength 0.2 saturation's 100-frame means varied by 1.9% against
    1.4% with the covariance held."""
    if strength <= 0:
        return img
    m, b = colour_map(colour_stats(img), target, strength)
    x = img.movedim(1, 0).reshape(3, -1)
    out = torch.addmm(b.to(img)[:, None], m.to(img), x).reshape(3, img.shape[0], *img.shape[2:]).movedim(0, 1)
    return out.clamp_(0, 1)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs beside the schedule."""

    fps: float
    seed: int
    warmup: bool = True  # dream frame 0 like a still (all octaves)
    color_strength: float = 0.0  # share of the way to the held colours each frame; 0: off
    momentum: float = 0.0  # share of the dream's last change carried into the next frame
    cadence: int = 1  # dream every cadence-th frame; make the ones between from their neighbours
    color_from: int = 0  # the dreamed frame whose colours are held (before it: frame 0's, no integral term)


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
        target = colour_target(after.color_ref, after.color_err, loop.color_strength)
        for n in range(state.index, min(key + 1, stop)):
            with frame_work(change.device):
                shown, moved = grow(shown, change, schedule, loop, target, key - k, n, key)  # type: ignore[arg-type]
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
        finite(d, f"frame {key}")
        ref, err = colour_state(colour_stats(d), state, loop, key)
        h, w = d.shape[-2:]
        m = span_matrix(schedule, loop.fps, key, key + loop.cadence, h, w)
        # Frame 0's change is the warm-up dream itself, not a motion to carry on.
        velocity = resample(d - s, m, clamp=False) if key > 0 and loop.momentum > 0 else None
        # The next dreamed frame's input: this one moved on in one resample, not one per frame
        # (those blur it more; at cadence 3 P went from 0.73 to 0.77 and E8 from 16.1 to 16.9),
        # and pulled toward the held colours as `cadence` frames would be.
        pull = 1 - (1 - loop.color_strength) ** loop.cadence
        nxt = match_colour(resample(d, m), colour_target(ref, err, loop.color_strength), pull)
        return d, LoopState(key + loop.cadence, nxt, ref, state.camera @ m, velocity, state.shown, err)


def colour_state(stats: torch.Tensor, state: LoopState, loop: LoopSettings,
                 key: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The colour reference and summed error after dreamed frame `key` (colour_stats `stats`):
    frame 0's colours, from the first dreamed frame at or past loop.color_from that frame's;
    the error sums from there, weighted by the frames each dreamed frame stands for."""
    if state.color_ref is None or key - loop.cadence < loop.color_from <= key:
        return stats, None  # a new reference: nothing summed yet
    if key < loop.color_from:
        return state.color_ref, None
    err = (stats - state.color_ref) * loop.cadence
    return state.color_ref, err if state.color_err is None else state.color_err + err


def span_matrix(schedule: Schedule, fps: float, a: int, b: int, height: int, width: int) -> torch.Tensor:
    """The camera moves of frames a … b-1 as one matrix (see motion.theta): pixel p of frame b
    shows what was at span_matrix · p in frame a."""
    m = IDENTITY
    for n in range(a, b):
        m = camera_after(m, schedule.motion(n), fps, height, width)
    return m


def grow(shown: torch.Tensor, change: torch.Tensor, schedule: Schedule, loop: LoopSettings, target: torch.Tensor,
         a: int, n: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame n (a < n ≤ b, dreamed frames a and b): frame n-1 as shown, moved by one camera
    move and pulled toward the held colours (as a frame is carried at cadence 1), plus the
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
    base = match_colour(moved, target, loop.color_strength)
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
                "color_err": _cpu(loop.color_err),
                "head": [torch.from_numpy(h) for h in self.head],
                "smooth": [self.smooth.e1, self.smooth.n1, self.smooth.ek, self.smooth.nk]}

    @classmethod
    def from_dict(cls, d: dict, device: torch.device) -> VideoState:
        def on(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        loop = LoopState(d["index"], on(d["frame"]), on(d["color_ref"]), d["camera"], on(d["velocity"]),  # type: ignore[arg-type]
                         on(d["shown"]), on(d["color_err"]))
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
