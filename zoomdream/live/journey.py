"""The live dream's settings over its frames, and the preset they make.

A take starts at frame 0 from a preset's first frame. Every change from the page or OSC is
stamped with the first frame the loop has not read yet, so the frames already dreamed keep the
values they were dreamed with and the record is exact: frame n's value is the last change
stamped at or before n. The zoom loop reads a Journey as it reads a Schedule (`at`, `motion`,
`total`); `preset_data` turns the record into preset keys, numbers as keyframes where they
changed and objectives as segments, whose schedule gives the same value at every frame."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..base.settings import (DEFAULTS, FRAME_DREAM, MAX_FRAMES, DreamSettings, Motion, declared, keyframeable,
                             segment_choices)
from ..engine.objectives import Objective
from ..media.audio import AUDIO_VARIABLES
from ..timeline.presets import Preset
from ..timeline.schedule import FrameSpec
from .controls import LOOP_KEYS

_DREAM = tuple(declared(DreamSettings))
_MOTION = tuple(declared(Motion))
NUMBERS = tuple(keyframeable())
OBJECTIVE = "objective"
# What starts a segment of the saved preset when it changes: the objective and the dream's choices.
SEGMENT_KEYS = (OBJECTIVE, *segment_choices())


def first_frame(preset: Preset) -> FrameSpec:
    """What a preset does at its frame 0 (expressions that follow a soundtrack read silence:
    a live dream has none)."""
    silence = {name: np.zeros(preset.frames) for name in AUDIO_VARIABLES}
    return preset.schedule(silence).at(0)


class Journey:
    """Every control's value over the frames of one take (see the module's docstring).
    Thread-safe: the page and OSC change it while the loop reads it."""

    total = MAX_FRAMES  # a live dream has no end; the loop asks as far as it goes

    def __init__(self, base: Preset, start: Mapping[str, Any] | None = None):
        """A take of `base` from its first frame's values, `start` (control: value, objective:
        Objective) replacing some of them."""
        spec = first_frame(base)
        values: dict[str, Any] = {**{k: getattr(spec.dream, k) for k in _DREAM},
                                  **{k: getattr(spec.motion, k) for k in _MOTION},
                                  **{k: getattr(base, k) for k in LOOP_KEYS}, OBJECTIVE: spec.objective}
        values.update(start or {})
        self.base = base
        self._history: dict[str, list[tuple[int, Any]]] = {k: [(0, v)] for k, v in values.items()}
        self._lock = threading.Lock()
        self.frontier = -1  # the last frame whose values the loop has read
        # The frame the loop is dreaming reads its values first (`at`); until that dream is
        # done, a change can still take effect there by dreaming it again (`stale`), once
        # per dreamed frame so that a slider dragged at length still lets dreams finish.
        self.floor = -1  # frames up to here are final
        self.stale = False
        self._dreaming = False
        self._preempted = -2
        self.preempt = True

    # ------------------------------------------------------------------ what the loop reads

    def _value(self, key: str, n: int) -> Any:
        hist = self._history[key]
        return hist[bisect.bisect_right(hist, n, key=lambda e: e[0]) - 1][1]

    def values(self, n: int) -> dict[str, Any]:
        """Every control's value (None: the objective's default) and the objective at frame n."""
        with self._lock:
            return {k: self._value(k, n) for k in self._history}

    def at(self, n: int) -> FrameSpec:
        """Frame n's objective, dream settings and camera move. Reading a frame past all that
        was read is the loop starting its dream."""
        with self._lock:
            if n > self.frontier:  # the loop starts dreaming frame n
                self.floor, self._dreaming = n - 1, True
            self.frontier = max(self.frontier, n)
            v = {k: self._value(k, n) for k in self._history}
        return FrameSpec(v[OBJECTIVE], replace(FRAME_DREAM, **{k: v[k] for k in _DREAM}),
                         Motion(**{k: v[k] for k in _MOTION}))

    def motion(self, n: int) -> Motion:
        with self._lock:
            self.frontier = max(self.frontier, n)
            v = {k: self._value(k, n) for k in _MOTION}
        return Motion(**v)

    def loop(self, n: int) -> dict[str, Any]:
        """The loop's settings (cadence, momentum, colour strength) in effect at frame n."""
        with self._lock:
            return {k: self._value(k, n) for k in LOOP_KEYS}

    # ------------------------------------------------------------------ changes

    def set(self, key: str, value: Any) -> int:
        """Change a control (or the objective) from the first frame not read yet; returns that
        frame. The objective and the loop's settings change on a dreamed frame (a multiple of
        the cadence): a frame between two dreamed ones is made from both, with one objective.
        A change not yet in effect is replaced by a newer one."""
        with self._lock:
            n = self.frontier + 1
            if self.preempt and key not in LOOP_KEYS and self._dreaming and self._preempted != self.floor:
                n, self.stale, self._preempted = self.floor + 1, True, self.floor
            if key in SEGMENT_KEYS or key in LOOP_KEYS:
                k = self._value("cadence", n)
                n = -(-n // k) * k
            hist = self._history[key]
            while hist and hist[-1][0] >= n:
                hist.pop()
            if not hist or hist[-1][1] != value:
                hist.append((n, value))
            return n

    def dreaming(self, on: bool) -> bool:
        """The loop starts (True) or ends (False) the dream of frame floor + 1; at the end,
        whether a change arrived that it must be dreamed again for."""
        with self._lock:
            self._dreaming = on
            return self.stale

    def again(self) -> None:
        """The loop drops the dream it was making (stale) and starts it again."""
        with self._lock:
            self.frontier, self.stale = self.floor, False

    def undo(self, key: str, since: int) -> None:
        """Forget `key`'s changes from frame `since` on (one that failed before any frame used it)."""
        with self._lock:
            hist = self._history[key]
            while len(hist) > 1 and hist[-1][0] >= since:
                hist.pop()

    def changes(self, key: str) -> list[tuple[int, Any]]:
        with self._lock:
            return list(self._history[key])

    # ------------------------------------------------------------------ the preset it makes

    def preset_data(self, end: int, size: tuple[int, int], paths: Mapping[str, str] | None = None,
                    photo: str | None = None) -> dict[str, Any]:
        """Preset keys for frames 0…end-1 of the take, at `size`: each objective (or choice of
        the dream's, precondition) a segment, each number a constant or keyframes where it
        changed, so that the preset's schedule
        gives every frame the value it had here. `paths` renames image files in objectives;
        `photo` is the start image's file. The loop's settings are the preset's own: they keep
        their value at the end."""
        with self._lock:
            history = {k: list(v) for k, v in self._history.items()}
        base, fps = self.base, self.base.fps
        loop = {k: _at(history[k], end - 1) for k in LOOP_KEYS}
        starts = sorted({s for key in SEGMENT_KEYS for s, _ in history[key] if s < end})
        cadence = loop["cadence"]
        end = max(end, starts[-1] + cadence)  # the last segment holds a dreamed frame of its own
        bounds = [*starts, end]
        cadence = min(cadence, *(b - a for a, b in zip(bounds, bounds[1:])))  # as the take's were
        segments = []
        for a, b in zip(bounds, bounds[1:]):
            objective: Objective = _at(history[OBJECTIVE], a)
            seg: dict[str, Any] = {"frames": [a, b], OBJECTIVE: str(objective.renamed(paths or {}))}
            seg.update({k: v for k in SEGMENT_KEYS[1:] if (v := _at(history[k], a)) is not None})
            for key in NUMBERS:
                numbers = _numbers(history[key], a, b, DEFAULTS[objective.defaults].get(key), fps)
                if numbers is not None:
                    seg[key] = numbers
            segments.append(seg)
        data: dict[str, Any] = {
            "name": f"live-{base.name}", "description": f"Recorded with zoomdream live from preset {base.name}",
            "model": base.model, "size": f"{size[0]}x{size[1]}", "fps": fps, "frames": end, "seed": base.seed,
            "start": base.start, "codec": base.codec, "pix_fmt": base.pix_fmt,
            **({} if base.crf is None else {"crf": base.crf}), "color": base.color, "warmup": base.warmup,
            "precision": base.precision, **loop, "cadence": cadence}
        if photo:
            data["photo"] = photo
        data["segments"] = segments
        return data


def _at(hist: list[tuple[int, Any]], n: int) -> Any:
    return hist[bisect.bisect_right(hist, n, key=lambda e: e[0]) - 1][1]


def _numbers(hist: list[tuple[int, Any]], a: int, b: int, default: Any, fps: float) -> Any:
    """One number over frames a…b-1 as a preset segment writes it: a constant, or keyframes
    [[seconds, value], …] holding each value up to the frame before it changed. None: the
    objective's default throughout (the key is left out)."""
    first = _at(hist, a)
    changes = [(s - a, v) for s, v in hist if a < s < b]
    if first is None and not changes:
        return None
    first = default if first is None else first
    if not changes:
        return first
    points, last = [(0, first)], first
    for k, v in changes:
        if points[-1][0] < k - 1:
            points.append((k - 1, last))
        points.append((k, v))
        last = v
    # A segment's frame k sits at fraction k/(frames-1) of it, and a keyframe at t/length
    # (timeline/schedule.py): these times put each key exactly on its frame.
    length, frames = (b - a) / fps, b - a
    return [[k * length / (frames - 1), v] for k, v in points]
