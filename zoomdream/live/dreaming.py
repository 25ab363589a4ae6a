"""The live dream: the zoom loop (loops/zoom.py) in a thread, reading its settings from a
Journey that the page and OSC change, and handing every frame it shows to `publish`.

A take is one run of the loop from frame 0. Frames are shown as fast as they are dreamed and
no faster than the preset's fps, so what the page shows moves as the rendered video will; frame
n is time n/fps whatever the machine's speed. A change of the loop's own settings (cadence,
momentum, colour) starts the loop again from its state at a dreamed frame; anything else is read
by the loop at the next frame it dreams."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from ..base.errors import UserError
from ..engine.dream import Dreamer
from ..engine.images import to_uint8
from ..engine.models import Network, load_network
from ..loops.zoom import LoopSettings, LoopState, colour_hold, dream_frames
from ..run.render import first_input
from ..timeline.presets import Preset
from .journey import OBJECTIVE, Journey


class Again(Exception):
    """The frame being dreamed must be dreamed again: a change arrived that it should show."""


class LiveDreamer(Dreamer):
    """A Dreamer that stops between two steps when a change arrives for the frame it is
    dreaming (Journey.stale): that frame is dreamed again with it, so a change shows one
    dream after it was made instead of up to two (at 256² on two cores, 0.26 s instead of
    up to 0.55)."""

    def __init__(self, journey: Journey, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.journey = journey
        # ZOOMDREAM_LIVE_AGAIN=0: never dream a frame again (the bench's comparison).
        journey.preempt = os.environ.get("ZOOMDREAM_LIVE_AGAIN", "1") != "0"

    def __call__(self, *args: Any, **kw: Any) -> torch.Tensor:
        self.journey.dreaming(True)
        try:
            out = super().__call__(*args, **kw)
        finally:
            stale = self.journey.dreaming(False)
        if stale:
            raise Again
        return out

    def step(self, *args: Any, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if self.journey.stale:
            raise Again
        return super().step(*args, **kw)


@dataclass(frozen=True)
class Shown:
    """A frame as the page gets it."""

    n: int
    image: np.ndarray  # H×W×3 uint8
    jpeg: bytes
    values: dict  # every control's value in effect (the objective's defaults resolved) and the objective
    seconds_per_frame: float  # wall time per frame shown, recent average


@dataclass
class Take:
    journey: Journey
    dreamer: LiveDreamer
    state: LoopState
    start: torch.Tensor  # frame 0's input
    photo: str | None  # the start image's upload name


def frame_values(journey: Journey, n: int) -> dict:
    """What the page shows for frame n: every number as the dream uses it."""
    spec = journey.at(n)
    dream = spec.dream.resolved(spec.objective.defaults)
    values = {k: v for k, v in journey.values(n).items() if k != OBJECTIVE}
    values.update({k: getattr(dream, k) for k in values if hasattr(dream, k)})
    return {**values, OBJECTIVE: str(spec.objective)}


def png(shown: Shown | None) -> bytes:
    """A frame shown, as a PNG (the page's snapshot)."""
    if shown is None:
        raise UserError("no frame yet", "wait for the first frame")
    ok, data = cv2.imencode(".png", cv2.cvtColor(shown.image, cv2.COLOR_RGB2BGR))
    return data.tobytes()


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


class LiveDream:
    """The loop, run by `run` in the calling thread until `stop`; takes, pauses and images come
    from other threads. `publish(frame)` is called for every frame shown; `report(msg)` with a
    one-line message when a change fails in the dream (the dream goes on without it)."""

    def __init__(self, device: torch.device, size: tuple[int, int], publish: Callable[[Shown], None],
                 report: Callable[[str], None], weights: str | None = None):
        self.device, self.size, self.weights = device, size, weights
        self.publish, self.report = publish, report
        self._networks: dict[str, Network] = {}
        self._take: Take | None = None
        self._next: Take | None = None
        self._wake = threading.Condition()
        self._paused = False
        self._stopping = False
        self.last: Shown | None = None

    # ------------------------------------------------------------------ from other threads

    def take(self, preset: Preset, journey: Journey, photo: np.ndarray | None, photo_name: str | None,
             images: dict[str, np.ndarray]) -> Take:
        """A new take of `preset` at this dream's size, ready to run (network loaded, objective
        bound): shown from its frame 0 once the frame now being dreamed is done. `images`:
        uploads, by the names objectives use."""
        preset = replace(preset, width=self.size[0], height=self.size[1])
        if preset.model not in self._networks:
            self._networks[preset.model] = load_network(preset.model, self.weights, self.device)
        dreamer = LiveDreamer(journey, self._networks[preset.model], preset.precision, photo)
        dreamer.objectives.images.update(images)
        dreamer.bound(journey.at(0).objective)
        journey.frontier = -1  # binding read frame 0; the loop has not
        start = first_input(preset, photo, self.device)
        t = Take(journey, dreamer, LoopState(0, start), start, photo_name)
        with self._wake:
            self._next = t
            self._wake.notify_all()
        return t

    def add_image(self, name: str, image: np.ndarray) -> None:
        """An uploaded image that objectives may name from now on."""
        for take in (self._take, self._next):
            if take is not None:
                take.dreamer.objectives.images[name] = image

    @property
    def current(self) -> Take | None:
        return self._next or self._take

    def pause(self, paused: bool) -> None:
        with self._wake:
            self._paused = paused
            self._wake.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    def stop(self) -> None:
        """`run` returns after the frame it is making."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Dream until `stop`. In the main thread: there torch's workers keep both cores busy
        (0.14 s a frame at 256², cadence 2, on two cores), where in a second thread they kept
        1.4 of them busy and took 0.16 s (bench, live)."""
        while not self._stopping:
            with self._wake:
                while self._next is None and self._take is None and not self._stopping:
                    self._wake.wait()
                if self._next is not None:
                    self._take, self._next = self._next, None
                take = self._take
            if take is None:
                return
            try:
                self._dream(take)
            except Again:
                take.journey.again()
            except UserError as e:  # an objective that binds but cannot be dreamed here: back to the last one
                since = take.journey.changes(OBJECTIVE)[-1][0]
                take.journey.undo(OBJECTIVE, since)
                self.report(f"{e} - the dream goes on with {take.journey.values(since)[OBJECTIVE]}")
            except FloatingPointError as e:
                self.report(f"the dream diverged ({e}); lower the step size - starting again from frame 0")
                self._restart(take)

    def _restart(self, take: Take) -> None:
        """The take again from frame 0, with the values last in effect as its first ones."""
        last = self.last.n if self.last is not None else 0
        journey = Journey(take.journey.base, take.journey.values(last))
        journey.preempt = take.journey.preempt
        take.dreamer.journey = journey
        with self._wake:
            if self._next is None:
                self._next = replace(take, journey=journey, state=LoopState(0, take.start))

    def _dream(self, take: Take) -> None:
        """Run the loop from the take's state until a new take, a change of the loop's settings
        or the end."""
        journey = take.journey
        values = journey.loop(take.state.index)
        k = values["cadence"]
        fps = journey.base.fps
        strength, held_from = colour_hold(journey.base.color, values["color_strength"])
        loop = LoopSettings(fps, journey.base.seed, journey.base.warmup, strength, values["momentum"], k, held_from)
        frames = dream_frames(take.dreamer, journey, take.state, loop)
        spf = None
        last = due = time.perf_counter()
        try:
            for fr in frames:
                take.state = fr.state
                with torch.inference_mode():
                    image = to_uint8(fr.image)
                # No faster than the video (frame n is time n/fps), but the frames made from a
                # dreamed one go out at once when the dream is behind: waiting would only add
                # to the time a change takes to show.
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                now = time.perf_counter()
                due = max(due + 1 / fps, now - (k - 1) / fps)
                spf = now - last if spf is None else 0.9 * spf + 0.1 * (now - last)
                last = now
                shown = Shown(fr.index, image, jpeg(image), frame_values(journey, fr.index), spf)
                self.last = shown
                self.publish(shown)
                held = self._hold()
                if held is None:
                    return
                last, due = last + held, due + held  # a pause is not a slow frame
                if fr.index % k == 0 and journey.loop(fr.index + k) != values:
                    return  # the loop's settings change at the next dreamed frame
        finally:
            frames.close()

    def _hold(self) -> float | None:
        """Wait while paused; the seconds waited, or None when this take should end (a new
        take, or stopping)."""
        t0 = time.perf_counter()
        with self._wake:
            while self._paused and not self._stopping and self._next is None:
                self._wake.wait()
            return None if self._stopping or self._next is not None else time.perf_counter() - t0
