"""What to do at each frame of a video: the segment's objective, its dream settings and its
camera move, keyframed numbers interpolated and cross-faded from the previous segment.

Spans and keyframe times are fractions of the video (or of the segment), so stretching the
video's length or frame rate stretches the journey rather than cutting it off."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from collections.abc import Callable, Mapping

import numpy as np

from ..base.errors import UserError
from ..base.settings import BY_OBJECTIVE, FRAME_DREAM, DreamSettings, Motion, declared, keyframeable
from ..engine.objectives import Objective
from .expressions import Expr

EASES = ("linear", "smooth")


def ease(t, how: str):
    return t * t * (3 - 2 * t) if how == "smooth" else t


@dataclass(frozen=True)
class Param:
    """A constant or keyframes [(fraction of the segment, value), …]; a value may be an
    expression (expressions.Expr), which has a value at every frame."""

    keys: tuple[tuple[float, float | Expr], ...]
    ease: str = "linear"

    @property
    def constant(self) -> bool:
        return not any(isinstance(v, Expr) for _, v in self.keys)

    def at(self, u: float) -> float:
        """The value at fraction u of the segment (constant keys only)."""
        return float(self.values(np.array([u]), lambda v: np.array([v]))[0])

    def values(self, u: np.ndarray, value: Callable[[float | Expr], np.ndarray]) -> np.ndarray:
        """The value at each fraction `u` of the segment; `value(key value)` gives a key's
        value at those same frames (an expression's series, a constant broadcast)."""
        keys = self.keys
        out = np.array(np.broadcast_to(value(keys[0][1]), u.shape), dtype=np.float64)
        for (u0, v0), (u1, v1) in zip(keys, keys[1:]):
            inside = u > u0
            if not inside.any():
                break
            t = np.clip((u - u0) / (u1 - u0), 0.0, 1.0) if u1 > u0 else np.ones_like(u)
            a, b = value(v0), value(v1)
            out = np.where(inside, a + (b - a) * ease(t, self.ease), out)
        return out


@dataclass(frozen=True)
class Segment:
    span: tuple[float, float]  # fractions of the whole video
    objective: Objective
    params: tuple[tuple[str, Param], ...]
    blend: int = 0  # frames over which objective and numbers cross-fade from the previous segment
    choices: tuple[tuple[str, str], ...] = ()  # the dream's settings that are a choice (precondition)


@dataclass(frozen=True)
class FrameSpec:
    objective: Objective
    dream: DreamSettings
    motion: Motion


_DREAM = {k: f for k, f in declared(DreamSettings).items() if k in keyframeable()}  # its numbers
_RANGES = {k: f.metadata["check"] for k, f in keyframeable().items()}
_MOTION = declared(Motion)
# A segment's numbers start from the per-frame dream settings and a still camera.
_DEFAULTS = {**{k: float(getattr(FRAME_DREAM, k) or 0) for k in _DREAM},
             **{k: float(getattr(Motion(), k)) for k in _MOTION}}


class Schedule:
    """Frame n's objective, dream settings and camera move. `env` holds the variables of
    every frame that expressions read (expressions.frame_variables)."""

    def __init__(self, segments: tuple[Segment, ...], total: int, env: Mapping[str, np.ndarray] | None = None):
        self.segments, self.total, self.env = segments, total, env
        self.bounds = [round(s.span[0] * total) for s in segments] + [total]
        self._series: dict[tuple[int, str], np.ndarray] = {}

    def series(self, i: int, key: str) -> np.ndarray:
        """Segment i's value of `key` at each of its frames, for a key that holds expressions."""
        if (i, key) not in self._series:
            a, b = self.bounds[i], self.bounds[i + 1]
            if b <= a:  # a segment too short for a frame of its own: its value where it starts
                a, b = min(a, self.total - 1), min(a, self.total - 1) + 1
            p = dict(self.segments[i].params)[key]
            u = (np.arange(a, b) - a) / max(b - a - 1, 1)
            self._series[(i, key)] = p.values(u, lambda v: self._expression(v)[a:b] if isinstance(v, Expr) else v)
        return self._series[(i, key)]

    def _expression(self, e: Expr) -> np.ndarray:
        if self.env is None or any(name not in self.env for name in e.names):
            missing = next((n for n in e.names if self.env is None or n not in self.env), "t")
            raise UserError(f"the expression {str(e)!r} reads '{missing}', which needs a soundtrack",
                            "give one with --audio FILE, or footage that has sound")
        return e.values(self.env, self.total)

    def check(self, source: str) -> None:
        """Every expression's value at every frame is finite and in its setting's range: a zoom
        that goes to 0 at frame 1,234 is an error before frame 0, naming the frame."""
        for i, seg in enumerate(self.segments):
            for key, p in seg.params:
                if p.constant or self.bounds[i + 1] <= self.bounds[i]:
                    continue
                rng = _RANGES[key]
                try:
                    vals = self.series(i, key)
                except UserError as e:
                    raise UserError(f"{source}: segments[{i}].{key}: {e.problem}", e.fix) from None
                vals = np.round(vals) if rng.kind is int else vals
                bad = ~np.isfinite(vals) | rng.out(vals)
                if bad.any():
                    j = int(np.argmax(bad))
                    n = self.bounds[i] + j
                    t = f", t = {self.env['t'][n]:.2f} s" if self.env is not None else ""
                    v = float(vals[j])
                    raise UserError(f"{source}: segments[{i}].{key} is {v:g} at frame {n}{t}, but must be "
                                    f"{rng.describe() if np.isfinite(v) else 'finite'}",
                                    f"change its expression so that it stays {rng.describe()}")

    def segment_at(self, n: int) -> int:
        # The last segment starting at or before n (a segment too short for a frame is skipped).
        n = min(max(n, 0), self.total - 1)
        return max(0, bisect.bisect_right(self.bounds, n, hi=len(self.segments)) - 1)

    def _values(self, i: int, n: int) -> dict[str, float]:
        seg = self.segments[i]
        a, b = self.bounds[i], self.bounds[i + 1]
        u = (n - a) / max(b - a - 1, 1)
        return {**_DEFAULTS, **{k: p.at(u) if p.constant else float(self.series(i, k)[min(max(n - a, 0), b - a - 1)])
                                for k, p in seg.params}}

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
        dream.update(seg.choices)
        given = {**dict(seg.params), **dict(seg.choices)}
        for k in BY_OBJECTIVE:  # not set by the segment: the objective's own default (None)
            if k not in given and getattr(FRAME_DREAM, k) is None:
                dream[k] = None
        return FrameSpec(objective, replace(FRAME_DREAM, **dream), Motion(**{k: values[k] for k in _MOTION}))
