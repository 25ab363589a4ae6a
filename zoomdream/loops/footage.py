"""Dreaming footage: each frame of a video dreamed with the detail of the frame before carried
along the footage's own motion, so that the dream sticks to what moves instead of boiling.

    s[t]   the source frame             r[t] = d[t] − s[t]   the dream's detail
    x[t] = s[t] + b · m[t] · warp(r[t−1], flow t → t−1)         b: blend
    d[t] = dream(x[t]), steps scaled per pixel: 1 where m = 0, (1 − b)/b where m = 1

m[t] is 1 where the flow is consistent forward and backward and 0 where it is not (occluded,
newly revealed, or wrongly matched), so those pixels start again from the raw frame and take
full steps, while pixels that carry their dream along take smaller ones. Only the detail is
carried, and it is a leaky sum (each frame keeps b of it and adds its own steps), so it
settles at b·step/(1 − b) = one frame's worth of steps, as strong as a frame dreamed alone,
and cannot build up: a static shot keeps its brightness and colour. What changes is that the
dream now follows the footage instead of being drawn anew each frame. A preset's camera move
(zoom, rotate, pan) moves the carried detail over the footage, so the dream flows inward while
the footage plays.

Everything a frame needs comes from (seed, n), the source frames and the state, so a render
can stop after any frame and resume to the identical video."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..base.settings import Motion
from ..engine.dream import Dreamer, finite
from ..engine.images import grey, to_tensor, to_uint8
from ..engine.motion import affine_theta, resample
from ..timeline.schedule import Schedule
from .flow import FlowMethod, WarpError, consistent, pair, soft, warp_flow
from .zoom import frame_generator


@dataclass(frozen=True)
class FootageSettings:
    fps: float
    seed: int
    flow: str = "dis"  # dis, farneback, or off: the detail is carried in place
    blend: float = 0.8  # share of the previous frame's detail carried


@dataclass
class Coherence:
    """The warping error (flow.WarpError) of the dreamed video and of its source: how much
    flicker the dream added beyond what the footage itself has."""

    output: WarpError = field(default_factory=WarpError)
    source: WarpError = field(default_factory=WarpError)


@dataclass
class FootageState:
    """What dreaming a video carries from frame to frame (and a checkpoint saves)."""

    index: int  # the next frame to dream
    residual: torch.Tensor | None = None  # r[index − 1]
    last: np.ndarray | None = None  # frame index − 1 as shown
    coherence: Coherence = field(default_factory=Coherence)

    def to_dict(self) -> dict:
        c = self.coherence
        return {"index": self.index, "residual": None if self.residual is None else self.residual.cpu(),
                "last": None if self.last is None else torch.from_numpy(self.last.copy()),
                "coherence": [*c.output, *c.source]}

    @classmethod
    def from_dict(cls, d: dict, device: torch.device) -> FootageState:
        o, no, s, ns = d["coherence"]
        return cls(d["index"], None if d["residual"] is None else d["residual"].to(device),
                   None if d["last"] is None else d["last"].numpy(), Coherence(WarpError(o, no), WarpError(s, ns)))

    def figures(self) -> dict:
        return {"coherence": self.coherence}


def footage_frames(dreamer: Dreamer, schedule: Schedule, source: Iterator[np.ndarray], state: FootageState,
                   settings: FootageSettings) -> Iterator[tuple[int, int, np.ndarray]]:
    """(n, n, frame) for each frame from state.index on, `source` yielding the source frames
    from frame 0 (those before state.index − 1 are skipped). `state` is updated in place and is
    the resume point after each frame."""
    # The coherence figure always uses DIS, so that it compares one method with another.
    measure = FlowMethod("dis")
    method = measure if settings.flow in ("dis", "off") else FlowMethod(settings.flow)
    previous: np.ndarray | None = None  # the source frame before n
    for n, frame in enumerate(source):
        if n < state.index - 1:
            continue
        if n < state.index:
            previous = frame
            continue
        before, now = (None if previous is None else grey(previous)), grey(frame)
        src = to_tensor(frame.astype(np.float32) / 255, dreamer.device)
        spec = schedule.at(n)
        x, weight = src, None
        if previous is not None and state.residual is not None:
            flows = pair(measure, before, now)
            carry = flows if method is measure else pair(method, before, now)
            x, weight = _carried(src, state.residual, carry, settings, spec.motion)
        d = finite(dreamer(x, spec.objective, spec.dream, frame_generator(settings.seed, n), weight=weight),
                   f"frame {n}")
        shown = to_uint8(d)
        if previous is not None and state.last is not None:
            mask = consistent(flows.forward, flows.backward)
            c = state.coherence
            state.coherence = Coherence(c.output.add(state.last, shown, flows.forward, mask),
                                        c.source.add(previous, frame, flows.forward, mask))
        state.index, state.residual, state.last = n + 1, d - src, shown
        previous = frame
        yield n, n, shown


def _carried(src: torch.Tensor, residual: torch.Tensor, flows, settings: FootageSettings,
             motion: Motion) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of a frame and its per-pixel step scale: the source frame with the last
    frame's detail carried along the flow where it is consistent (in place with --flow off)."""
    h, w = src.shape[-2:]
    if motion != Motion():
        residual = resample(residual, affine_theta(motion, settings.fps, h, w), clamp=False)
    if settings.flow == "off":
        mask = torch.ones(1, 1, h, w)
    else:
        residual = warp_flow(residual, flows.backward)
        mask = soft(consistent(flows.backward, flows.forward))
    mask = mask.to(src.device)
    x = torch.addcmul(src, residual, mask * settings.blend).clamp_(0, 1)
    b = settings.blend
    # Steps of (1 - b)/b where the detail is carried: the sum it settles at (b·step/(1 - b)
    # times one frame's change) is then one frame's worth, as strong as a frame dreamed alone.
    carried_step = min(1.0, (1 - b) / b) if b > 0 else 1.0
    return x, 1 - (1 - carried_step) * mask
