"""A render as one value: what to show (the preset), where (the output and the files it reads)
and how (RenderOptions), checked as a whole before any work; and what a finished or stopped
render reports. `zoomdream.render`, `zoomdream.dream_video` and every job of a batch build
theirs with `from_request`, so each request is read the same way wherever it comes from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..base.errors import UserError
from ..base.paths import check_render_paths, file_digest, frames_kept, same_file
from ..base.settings import FootageOptions, RenderOptions, build, checked, declared
from ..engine.catalog import float32_layers
from ..engine.models import Network
from ..engine.objectives import INPUT
from ..loops.footage import Coherence
from ..loops.smoothness import Smoothness
from ..media.audio import Features
from ..media.audio import features as audio_features
from ..media.audio import seconds as audio_seconds
from ..media.clip import MP4_AUDIO, Clip, probe
from ..media.codecs import check_container
from ..media.writer import Soundtrack
from ..timeline.presets import Preset, load_preset
from ..timeline.schedule import Schedule
from .state import CHECKPOINT, StateLock, state_dir


def lasts_as_audio(audio: str | Path | None, given: Mapping[str, Any]) -> bool:
    """Whether a video lasts as long as its soundtrack: it has one, and `given` (the request's
    preset keys) sets neither seconds nor frames."""
    return audio is not None and given.get("seconds") is None and given.get("frames") is None


def timed_to(preset: Preset, audio: str | Path | None, given: Mapping[str, Any], source: str) -> Preset:
    """The preset lasting as long as the soundtrack, unless `given` sets seconds or frames."""
    if not lasts_as_audio(audio, given):
        return preset
    return preset.with_overrides(source=source, seconds=audio_seconds(audio))


@dataclass(frozen=True, kw_only=True)
class RenderJob(RenderOptions):
    """One render: what to show (the preset), where, and how (RenderOptions). Keywords only."""

    INPUT: ClassVar[str] = "input image"  # what `input` is, in messages
    preset: Preset
    output: Path
    input: str | Path | None = None  # start photo
    audio: str | Path | None = None  # soundtrack: expressions read its features, the MP4 carries it
    draft: bool = False  # the preset is a draft (Preset.drafted): said in the output line
    stop_after: int | None = None  # stop (as if interrupted) after this many frames; for tests
    on_frame: Callable[[int], None] | None = None  # called with n after frame n is dreamed and kept
    source: str = "zoomdream.render()"  # where the options came from, for messages
    like: Mapping[str, Any] | None = None  # the settings of a video this one makes again (render --like)
    like_path: Path | None = None  # that video

    @classmethod
    def from_request(cls, output: str | Path, preset: str | Path | Preset = "default", input: str | Path | None = None,
                     *, audio: str | Path | None = None, draft: bool = False, source: str = "zoomdream.render()",
                     options: Mapping[str, Any] | None = None, **overrides: Any) -> RenderJob:
        """The job a request names: the preset (a shipped name, a file or a Preset) with
        `overrides` (preset keys and segment numbers, None: not given), as long as the
        soundtrack unless seconds or frames are given, drafted if asked; `options` are
        RenderOptions fields. `zoomdream.render` and a batch's job both start here."""
        p = timed_to(load_preset(preset).with_overrides(source=source, **overrides), audio, overrides, source)
        input = p.photo_path if input is None else input
        return cls(preset=p.drafted() if draft else p, draft=draft, output=Path(output), input=input, audio=audio,
                   source=source, **checked(RenderOptions, options or {}, source))

    def check(self) -> None:
        """Every path and option, before any work: one line for anything that would fail later."""
        checked(RenderOptions, {k: getattr(self, k) for k in declared(RenderOptions)}, self.source)
        for what, path in ((self.INPUT, self.input), ("soundtrack", self.audio), ("weights file", self.weights)):
            for written in (self.output, self.gif):  # --overwrite would destroy what it reads
                if path is not None and written is not None and same_file(written, path):
                    raise UserError(f"the output {written} is the {what}", "write to another file")
        check_render_paths(self.output, self.photo, None, self.weights, self.frames_dir, self.gif,
                           self.overwrite or self.resume)
        check_container(self.preset.codec, self.output)
        self.preset.check_files(self.photo is not None)
        out, sdir = Path(self.output), state_dir(Path(self.output))
        if sdir.exists() and not sdir.is_dir():
            raise UserError(f"{sdir} is in the way: a render keeps its state in a folder of that name",
                            "move it away or choose another -o path")
        if sdir.is_dir():
            StateLock(sdir, out).release()  # in use: refused before "unfinished render"
        if self.resume:
            if not (sdir / CHECKPOINT).is_file():
                raise UserError(f"nothing to resume for {out} (no {sdir.name}/{CHECKPOINT})",
                                "run without --resume to start a new render")
        elif not self.overwrite:
            if sdir.exists():
                raise UserError(f"an unfinished render of {out} is there",
                                "add --resume to continue it or --overwrite to restart")
            if out.exists():
                raise UserError(f"output {out} already exists", "add --overwrite or choose another -o path")
        # After the checks above, so that an unfinished render asks for --resume, not --overwrite.
        frames_kept(self.frames_dir, self.overwrite or self.resume)

    @property
    def photo(self) -> str | Path | None:
        """The photo frame 0 starts from and objectives name as INPUT."""
        return self.input

    def decisive(self) -> dict:
        """What decides the frames beside the preset and the files it reads (settings_hash)."""
        return {}

    def soundtrack(self, frames: int) -> Soundtrack | None:
        """The audio of the first `frames` frames of the video, if it has any: cut to them and
        encoded as AAC."""
        return None if self.audio is None else Soundtrack(Path(self.audio), 0.0, frames / self.preset.fps)

    def analysed(self, log: Callable[[str], None], sound: Path | None = None,
                 start: float = 0.0) -> tuple[Features | None, Schedule]:
        """The soundtrack's features (`sound` from `start`, default --audio; from the state folder
        when resuming) and the schedule with every expression checked at every frame: all before
        the network loads."""
        sound = sound or (None if self.audio is None else Path(self.audio))
        feats = None
        if sound is not None and not self.preset.reads_audio:
            audio_seconds(sound)  # a damaged or silent soundtrack fails here all the same
        elif sound is not None:
            sdir = state_dir(Path(self.output))
            t0 = time.perf_counter()
            feats = audio_features(sound, self.preset.fps, self.preset.frames, sdir if self.resume else None, start)
            if time.perf_counter() - t0 > 1:
                log(f"analysed {sound.name}: {len(feats.beats)} beats, about {feats.tempo:.0f} BPM "
                    f"({time.perf_counter() - t0:.1f} s)")
        return feats, self.preset.check_expressions(None if feats is None else feats.per_frame)


@dataclass(kw_only=True)
class RenderResult:
    output: Path
    frames: int  # frames in the output file
    total: int  # frames the finished video will have
    seconds: float
    interrupted: bool = False
    frames_rendered: int = 0  # dreamed by this run (a resumed render counts from where it resumed)
    signal: str | None = None  # what stopped it early: SIGINT, SIGTERM, …
    fps: float = 24.0
    width: int = 0
    height: int = 0
    stability: float | None = None  # a zoom's mean |d[n+1] - move(d[n])| in 0–255 units
    smoothness: Smoothness | None = None  # a zoom's E1, E8 and persistence P
    coherence: Coherence | None = None  # footage's warping error, and its source's
    draft: bool = False

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(self.frames_rendered, 1)


def settings_hash(job: RenderJob, network: Network) -> str:
    """What decides the video: resume refuses when any of it changed, the contents of the files
    it reads (photo, guide images, weights) included."""
    preset = dataclasses.asdict(job.preset)
    for key in ("source", "name", "description"):
        preset.pop(key, None)
    h = hashlib.sha256(json.dumps([preset, job.decisive()], sort_keys=True, default=str).encode())
    files = [job.input, job.audio]
    files += [path for seg in job.preset.segments for path, _ in seg.objective.files if path != INPUT]
    for f in [*files, network.source.path]:
        if f is not None:
            h.update(file_digest(Path(f)))
    h.update(f"{network.source.kind}|{network.device.type}|{torch.__version__}".encode())
    # Since 0.3.1 the layers kept float32 decide a half-precision video.
    if job.preset.precision != "fp32" and network.float32_head:
        h.update(",".join(sorted(float32_layers(network.backbone.name))).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class FootageJob(RenderJob):
    """Dreaming a video file (`input`, probed as `clip`): the preset says what to dream and
    how, the clip sets the length, frame rate and, with the preset's size as the box it is
    fitted into, the frame size."""

    INPUT: ClassVar[str] = "input video"
    clip: Clip
    flow: str = "dis"
    blend: float = 0.8

    @classmethod
    def from_request(cls, input: str | Path, output: str | Path, preset: str | Path | Preset = "footage",  # type: ignore[override]
                     *, objective: str | None = None, size: str | None = None,
                     source: str = "zoomdream.dream_video()", footage: Mapping[str, Any] | None = None,
                     options: Mapping[str, Any] | None = None, **overrides: Any) -> FootageJob:
        """The job of dreaming the video `input`: `footage` holds FootageOptions fields (flow,
        blend, start, end), `options` RenderOptions fields, `overrides` other preset keys."""
        opts = build(FootageOptions, footage or {}, source)
        clip = probe(input, opts.start, opts.end)
        p = load_preset(preset).with_overrides(source=source, objective=objective, **overrides)
        return cls(preset=footage_preset(p, clip, size, source), clip=clip, flow=opts.flow, blend=opts.blend,
                   output=Path(output), input=clip.path, source=source, **checked(RenderOptions, options or {}, source))

    @property
    def photo(self) -> None:
        return None

    def check(self) -> None:
        for seg in self.preset.segments:
            if any(path == INPUT for path, _ in seg.objective.files):
                raise UserError(f"a video's objective cannot name {INPUT} (the footage changes every frame)",
                                f"name an image file in place of {INPUT}")
        super().check()

    def decisive(self) -> dict:
        c = self.clip
        return {"flow": self.flow, "blend": self.blend, "start": c.start, "end": c.end, "frames": c.frames}

    def analysed(self, log: Callable[[str], None], sound: Path | None = None,
                 start: float = 0.0) -> tuple[Features | None, Schedule]:
        """Expressions that read audio follow the clip's own sound, from where the clip starts."""
        if self.preset.reads_audio and self.clip.audio is not None:
            return super().analysed(log, self.clip.path, self.clip.start)
        return super().analysed(log)

    def soundtrack(self, frames: int) -> Soundtrack | None:
        c = self.clip
        if c.audio is None:
            return None
        whole = frames == c.frames and not c.trimmed  # copied as it is; a part of it is cut and encoded
        return Soundtrack(c.path, c.start, None if whole else frames / c.fps, copy=whole and c.audio in MP4_AUDIO)


def footage_preset(preset: Preset, clip: Clip, size: str | None = None, source: str = "zoomdream.dream_video()",
                   ) -> Preset:
    """The preset fitted to a clip: its length and frame rate, and its size (`size`, or the
    clip's shape inside the preset's size)."""
    if preset.loop:
        raise UserError(f"preset '{preset.name}' makes a loop, and a dreamed video follows its footage",
                        "use a preset without loop = true (e.g. footage)")
    if preset.cadence > 1:
        raise UserError(f"preset '{preset.name}' has cadence {preset.cadence}; a dreamed video dreams every frame",
                        "use a preset without cadence (e.g. footage)")
    width, height = clip.fitted(preset.width, preset.height) if size is None else (None, None)
    return preset.with_overrides(source=source, fps=clip.fps, frames=clip.frames, size=size, width=width,
                                 height=height)
