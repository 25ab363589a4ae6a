"""What to do at each frame of a video: the segment's objective, its dream settings and its
camera move, keyframed numbers interpolated and cross-faded from the previous segment.

Spans and keyframe times are fractions of the video (or of the segment), so stretching the
video's length or frame rate stretches the journey rather than cutting it off."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from .objectives import Objective
from .settings import BY_OBJECTIVE, FRAME_DREAM, DreamSettings, Motion, declared

EASES = ("linear", "smooth")


def ease(t: float, how: str) -> float:
    return t * t * (3 - 2 * t) if how == "smooth" else t


@dataclass(frozen=True)
class Param:
    """A constant or keyframes [(fraction of the segment, value), …]."""

    keys: tuple[tuple[float, float], ...]
    ease: str = "linear"

    def at(self, u: float) -> float:
        keys = self.keys
        if u <= keys[0][0] or len(keys) == 1:
            return keys[0][1]
        for (u0, v0), (u1, v1) in zip(keys, keys[1:]):
            if u <= u1:
                t = (u - u0) / (u1 - u0) if u1 > u0 else 1.0
                return v0 + (v1 - v0) * ease(t, self.ease)
        return keys[-1][1]


@dataclass(frozen=True)
class Segment:
    span: tuple[float, float]  # fractions of the whole video
    objective: Objective
    params: tuple[tuple[str, Param], ...]
    blend: int = 0  # frames over which objective and numbers cross-fade from the previous segment


@dataclass(frozen=True)
class FrameSpec:
    objective: Objective
    dream: DreamSettings
    motion: Motion


_DREAM = declared(DreamSettings)
_MOTION = declared(Motion)
# A segment's numbers start from the per-frame dream settings and a still camera.
_DEFAULTS = {**{k: float(getattr(FRAME_DREAM, k) or 0) for k in _DREAM},
             **{k: float(getattr(Motion(), k)) for k in _MOTION}}


class Schedule:
    def __init__(self, segments: tuple[Segment, ...], total: int):
        self.segments, self.total = segments, total
        self.bounds = [round(s.span[0] * total) for s in segments] + [total]

    def segment_at(self, n: int) -> int:
        # The last segment starting at or before n (a segment too short for a frame is skipped).
        n = min(max(n, 0), self.total - 1)
        return max(0, bisect.bisect_right(self.bounds, n, hi=len(self.segments)) - 1)

    def _values(self, i: int, n: int) -> dict[str, float]:
        seg = self.segments[i]
        a, b = self.bounds[i], self.bounds[i + 1]
        u = (n - a) / max(b - a - 1, 1)
        return {**_DEFAULTS, **{k: p.at(u) for k, p in seg.params}}

    def motion(self, n: int) -> Motion:
        """Frame n's camera move (past the end, a loop's tail, the last frame's)."""
        return self.at(min(n, self.total - 1)).motion

    def at(self, n: int) -> FrameSpec:
        i = self.segment_at(n)
        seg = self.segments[i]
        values = self._values(i, n)
        objective = seg.objective
        start = self.bounds[i]
        if i > 0 and seg.blend > 0 and n - start < seg.blend:
            w = ease((n - start + 1) / (seg.blend + 1), "smooth")
            prev = self._values(i - 1, start - 1)
            values = {k: prev[k] + (v - prev[k]) * w for k, v in values.items()}
            before = self.segments[i - 1].objective
            if before != objective:
                objective = before.scaled(1 - w) + objective.scaled(w)
        dream = {k: round(values[k]) if f.metadata["check"].kind is int else values[k] for k, f in _DREAM.items()}
        given = dict(seg.params)
        for k in BY_OBJECTIVE:  # not set by the segment: the objective's own default (None)
            if k not in given and getattr(FRAME_DREAM, k) is None:
                dream[k] = None
        return FrameSpec(objective, replace(FRAME_DREAM, **dream), Motion(**{k: values[k] for k in _MOTION}))
