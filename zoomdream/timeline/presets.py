"""Presets: TOML files that script a zoom video as segments over time.

Every key is a setting declared once (here for the video, in base/settings.py for the dream
and the camera), and everything is validated before frame 0: each error names the file, the key
path (e.g. `segments[2].zoom`) and what to write instead. The same checks serve command-line
flags and API keywords (`with_overrides`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..base.errors import UserError, closest
from ..base.paths import input_file, names_a_file, read_toml
from ..base.settings import (COMMAND_LINE, MAX_FRAMES, START, VIDEO_MIN_SIDE, Choice, Custom, DreamSettings, Kind,
                             Range, check, declared, error, keyframeable, parse_size, path_of, precision_setting,
                             seed_setting, segment_choices, setting, show)
from ..engine.catalog import BACKBONES, DEFAULT_MODEL, net_info
from ..engine.objectives import DEFAULT_OBJECTIVE, INPUT, Objective, parse_objective
from ..media.codecs import CODECS, PIX_FMTS, check_delivery
from .expressions import Expr, frame_variables
from .expressions import parse as parse_expression
from .schedule import EASES, Param, Schedule, Segment

# Shipped presets: inside the package when installed from a wheel, the repo's presets/ otherwise.
_PACKAGE = Path(__file__).resolve().parents[1]
PRESET_DIR = next((d for d in (_PACKAGE / "presets", _PACKAGE.parent / "presets") if d.is_dir()), _PACKAGE / "presets")


def _model(v: Any, path: str, source: str) -> str:
    if not isinstance(v, str) or v not in BACKBONES:
        raise error(source, path, f"unknown model {show(v)}", closest(show(v).strip("'"), BACKBONES))
    return v


@dataclass(frozen=True)
class Preset:
    name: str = setting("custom", Kind(str), "Preset name")
    description: str = setting("", Kind(str), "Shown by `zoomdream presets`")
    model: str = setting(DEFAULT_MODEL, Custom(_model, str, "see: zoomdream layers"), "Backbone network")
    width: int = 512  # from `size`
    height: int = 512
    fps: float = setting(24.0, Range(float, 1, 240), "Frames per second (motion is per second)")
    seconds: float = setting(10.0, Range(float, 0, open_lo=True), "Video length in seconds (stretches the timeline)")
    seed: int = seed_setting()
    start: str = setting("noise", START, "What frame 0 dreams on when no photo is given")
    # How the video is written (media/codecs.py; figures in docs/delivery.md).
    codec: str = setting("h264", Choice(tuple(CODECS)), "Video codec: " + "; ".join(
        f"{c.name} ({'/'.join(c.containers)})" for c in CODECS.values()))
    pix_fmt: str = setting("auto", Choice(PIX_FMTS), "Pixel format (auto: the codec's first; 10-bit: ...10le; rgb: "
                           "ffv1's lossless)")
    crf: int | None = setting(None, Range(int, 0, 63), "Quality of h264, h265, av1 and vp9, lower is better (default: "
                              + ", ".join(f"{c.name} {c.crf[2]}" for c in CODECS.values() if c.crf) + ")")
    loop: bool = setting(False, Kind(bool), "Make the video loop seamlessly")
    loop_seconds: float = setting(1.0, Range(float, 0, 3600, open_lo=True), "Length of the cross-fade closing a loop")
    # Long zooms otherwise drift dark or washed out, or wander with the content; see
    # loops/zoom.py match_colour and colour_target.
    color: str = setting("hold", Choice(("hold", "match", "off")), "Hold colour statistics: the dream's own once "
                         "settled (hold: frame 48's), frame 0's (match: a photo's palette), or off")
    color_strength: float = setting(0.1, Range(float, 0, 1), "How hard colours are pulled each frame")
    warmup: bool = setting(True, Kind(bool), "Dream frame 0 like a still (all octaves), to open on a dream")
    # Each frame's fresh jitter and steps push details back and forth: carried-over change
    # averages that boil away while what the dream keeps doing grows (frames.with_momentum).
    momentum: float = setting(0.9, Range(float, 0, 0.95), "Share of each frame's change carried into the next: "
                                                         "the dream grows instead of boiling (0: off)")
    # Deforum's cadence, with exact in-between frames: the camera move between two dreamed
    # frames is known, so the frames between are both moved to that instant and cross-faded.
    cadence: int = setting(1, Range(int, 1, 64), "Dream every Nth frame; the frames between are the dreamed "
                                                 "ones moved to that instant and cross-faded")
    precision: str = precision_setting()
    # A recording of `zoomdream live` keeps the image it started from beside it.
    photo: str = setting("", Kind(str), "Start image when none is given (a relative path is read from the "
                                         "preset's folder)")
    segments: tuple[Segment, ...] = ()
    source: str = "<built-in>"

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    def schedule(self, audio: Mapping[str, np.ndarray] | None = None) -> Schedule:
        """What each frame does; `audio`: the soundtrack's features per frame (audio.py), which
        expressions may read."""
        return Schedule(self.segments, self.frames, frame_variables(self.frames, self.fps, audio))

    @property
    def photo_path(self) -> Path | None:
        """The start image the preset names, if any (relative to the preset's own folder)."""
        if not self.photo:
            return None
        p = Path(self.photo)
        return p if p.is_absolute() or self.source.startswith("<") else Path(self.source).parent / p

    @property
    def reads_audio(self) -> bool:
        """Whether an expression reads the soundtrack (beat, bass, …)."""
        return any(isinstance(v, Expr) and v.audio for seg in self.segments for _, p in seg.params for _, v in p.keys)

    def check_expressions(self, audio: Mapping[str, np.ndarray] | None = None) -> Schedule:
        """Every expression evaluated at every frame and checked (one line naming the frame);
        the schedule, ready to render."""
        schedule = self.schedule(audio)
        schedule.check(self.source)
        return schedule

    def with_overrides(self, source: str = COMMAND_LINE, **kw: Any) -> Preset:
        """Apply flags or API keywords (None: not given), validated like the preset's keys.
        `size` ("WxH", or `width` and `height`) and `frames` are accepted beside its own keys, and
        `objective` and the segment numbers (zoom, steps, … or an expression), which replace
        every segment's."""
        given = {k: v for k, v in kw.items() if v is not None}
        objective = given.pop("objective", None)
        numbers = {k: given.pop(k) for k in list(given) if k in keyframeable()}
        choices = {k: check(DreamSettings, k, given.pop(k), source) for k in list(given) if k in segment_choices()}
        out = replace(self, **_top_level(given, source, self))
        if choices:  # a choice of the dream's (precondition): the same for every segment
            out = replace(out, segments=tuple(replace(seg, choices=tuple(sorted({**dict(seg.choices), **choices}.items())))
                                              for seg in out.segments))
        if numbers:  # a segment number (zoom, steps, …): the same for every segment
            params = {k: Param(((0.0, _number(v, path_of(k, source), keyframeable()[k].metadata["check"], source)),))
                      for k, v in numbers.items()}
            out = replace(out, segments=tuple(replace(seg, params=tuple(sorted({**dict(seg.params), **params}.items())))
                                              for seg in out.segments))
            if not out.reads_audio:
                out.check_expressions()
        if objective is not None:
            path = path_of("objective", source)
            obj = _objective(objective, path, source)
            try:
                check_objective_files(obj)
                obj.check(net_info(out.model))
            except UserError as e:
                raise error(source, path, e.problem, e.fix or "") from None
            out = replace(out, segments=tuple(replace(seg, objective=obj) for seg in out.segments))
        _check_video(out, path_of("seconds" if "seconds" in given else "frames", source), source)
        if not out.reads_audio and ({"seconds", "frames", "fps"} & set(given)):
            out.check_expressions()  # t and n now run over other frames
        return out

    def drafted(self) -> Preset:
        """A quick look at this preset: half the width and height, cadence 6 (or as many frames
        as its shortest segment has), one octave per frame. Same seed, motion and objectives."""
        w, h = (max(VIDEO_MIN_SIDE, v // 4 * 2) for v in (self.width, self.height))
        one = (("octaves", Param(((0.0, 1.0),))),)
        segments = tuple(replace(seg, params=tuple(p for p in seg.params if p[0] != "octaves") + one)
                         for seg in self.segments)
        bounds = self.schedule().bounds
        shortest = min(b - a for a, b in zip(bounds, bounds[1:])) if self.segments else DRAFT_CADENCE
        cadence = max(self.cadence, min(DRAFT_CADENCE, max(shortest, 1)))
        return replace(self, width=w, height=h, segments=segments, cadence=cadence)

    def check_files(self, has_input: bool) -> None:
        """Every image the objectives name is a readable file, and INPUT has a photo."""
        for seg in self.segments:
            check_objective_files(seg.objective, has_input)

    @property
    def tail(self) -> int:
        """Frames dreamed past the end to close a loop (cross-faded into the first ones)."""
        return min(round(self.loop_seconds * self.fps), self.frames // 2) if self.loop else 0


DRAFT_CADENCE = 6  # with a quarter of the pixels and one octave: about 30× less dreaming

# Keys that are not settings of their own: size → width/height, frames → seconds.
EXTRA_KEYS = ("size", "width", "height", "frames")
_TOP_KEYS = (*declared(Preset), *EXTRA_KEYS, "segments")
_SEGMENT_KEYS = (*keyframeable(), *segment_choices(), "seconds", "frames", "objective", "blend", "ease")


def _top_level(data: dict[str, Any], source: str, base: Preset) -> dict[str, Any]:
    """Preset fields from top-level keys (TOML, flags or keywords) over `base`, each checked once."""
    if "frames" in data and "seconds" in data:
        which = "--frames and --seconds" if source == COMMAND_LINE else "frames and seconds"
        raise error(source, path_of("frames", source), f"both {which} are given", "keep one of them")
    unknown = [k for k in data if k not in _TOP_KEYS or k == "segments"]
    if unknown:
        raise error(source, unknown[0], "unknown key", closest(unknown[0], _TOP_KEYS))
    kw = {k: check(Preset, k, v, source) for k, v in data.items() if k not in EXTRA_KEYS}
    if "size" in data or "width" in data or "height" in data:
        size = data.get("size", [data.get("width", base.width), data.get("height", base.height)])
        kw["width"], kw["height"] = parse_size(size, path_of("size", source), source)
    if "frames" in data:
        frames = Range(int, 1, MAX_FRAMES).check(data["frames"], path_of("frames", source), source)
        kw["seconds"] = frames / kw.get("fps", base.fps)
    return kw


def _check_video(preset: Preset, path: str, source: str) -> None:
    """What a whole preset must hold beyond each key: a codec that takes its pixel format and
    crf, and a length in bounds."""
    check_delivery(preset.codec, preset.pix_fmt, preset.crf, source)
    if preset.seconds * preset.fps > MAX_FRAMES:
        raise error(source, path, f"{preset.seconds:g} s at {preset.fps:g} fps is more than {MAX_FRAMES} frames",
                    "render a shorter video (or several)")
    _check_cadence(preset, source)


def _check_cadence(preset: Preset, source: str) -> None:
    """A segment shorter than the cadence would have no dreamed frame of its own."""
    if preset.cadence == 1 or not preset.segments:
        return
    bounds = preset.schedule().bounds
    shortest = min(range(len(preset.segments)), key=lambda i: bounds[i + 1] - bounds[i])
    frames = bounds[shortest + 1] - bounds[shortest]
    if frames < preset.cadence:
        raise error(source, path_of("cadence", source), f"cadence {preset.cadence} is longer than "
                    f"segments[{shortest}] ({frames} frames)", f"use a cadence of at most {max(frames, 1)}, "
                    "or make the segment longer")


def parse_preset(data: dict[str, Any], source: str = "<preset>") -> Preset:
    kw = _top_level({k: v for k, v in data.items() if k != "segments"}, source, Preset())
    preset = Preset(source=source, **kw)
    _check_video(preset, "seconds", source)
    raw_segments = data.get("segments", [{}])
    if not isinstance(raw_segments, list) or not raw_segments or not all(isinstance(s, dict) for s in raw_segments):
        raise error(source, "segments", "must be a list of tables", "write [[segments]] blocks")
    preset = replace(preset, segments=_parse_segments(raw_segments, preset, source))
    _check_cadence(preset, source)
    check_names(preset)
    if not preset.reads_audio:  # those that do are checked once the soundtrack is known
        preset.check_expressions()
    return preset


def _parse_segments(raw: list[dict], preset: Preset, source: str) -> tuple[Segment, ...]:
    total = preset.seconds
    spans = [_span(seg, f"segments[{i}]", len(raw), preset, source) for i, seg in enumerate(raw)]
    for i, (a, b) in enumerate(spans):
        prev_end = spans[i - 1][1] if i else 0.0
        if abs(a - prev_end) > 1e-6:
            what = "overlaps the previous segment" if a < prev_end else "leaves a gap after the previous segment"
            raise error(source, f"segments[{i}]", f"{what} (starts at {a:g}s, previous ends at {prev_end:g}s)",
                        "make each segment start where the last one ends")
    if abs(spans[-1][1] - total) > 0.5 / preset.fps:
        raise error(source, f"segments[{len(spans) - 1}]", f"ends at {spans[-1][1]:g}s but the video lasts {total:g}s",
                    "make the last segment end at the video's length")
    return tuple(_parse_segment(seg, f"segments[{i}]", (a / total, b / total), b - a, source)
                 for i, (seg, (a, b)) in enumerate(zip(raw, spans)))


def _span(seg: dict, where: str, count: int, preset: Preset, source: str) -> tuple[float, float]:
    """A segment's [start, end] in seconds."""
    unknown = sorted(set(seg) - set(_SEGMENT_KEYS))
    if unknown:
        raise error(source, f"{where}.{unknown[0]}", "unknown key", closest(unknown[0], sorted(_SEGMENT_KEYS)))
    if "seconds" in seg and "frames" in seg:
        raise error(source, where, "both seconds and frames spans are set", "keep one")
    unit = "seconds" if "seconds" in seg else "frames" if "frames" in seg else None
    if unit is None:
        if count > 1:
            raise error(source, where, "has no span", "add seconds = [START, END] to every segment")
        return 0.0, preset.seconds
    span = seg[unit]
    if not (isinstance(span, list) and len(span) == 2):
        raise error(source, f"{where}.{unit}", f"must be [start, end], got {show(span)}", "write e.g. [0, 4]")
    a, b = (Range(float, 0).check(x, f"{where}.{unit}", source) for x in span)
    if unit == "frames":
        a, b = a / preset.fps, b / preset.fps
    if b <= a:
        raise error(source, f"{where}.{unit}", f"ends before it starts ({show(span)})", "make end > start")
    return a, b


def _objective(text: Any, path: str, source: str) -> Objective:
    if not isinstance(text, str):
        raise error(source, path, f"must be a string, got {show(text)}", 'write e.g. "features.13"')
    try:
        return parse_objective(text)
    except UserError as e:
        raise error(source, path, e.problem, e.fix or "") from None


def _parse_segment(seg: dict, where: str, span: tuple[float, float], length: float, source: str) -> Segment:
    objective = _objective(seg.get("objective", DEFAULT_OBJECTIVE), f"{where}.objective", source)
    how = Choice(EASES).check(seg.get("ease", "linear"), f"{where}.ease", source)
    blend = Range(int, 0, MAX_FRAMES).check(seg.get("blend", 0), f"{where}.blend", source)
    numbers = keyframeable()
    params = []
    for key in sorted(set(seg) & set(numbers)):
        value, path, r = seg[key], f"{where}.{key}", numbers[key].metadata["check"]
        if isinstance(value, list):
            keys = _keyframes(value, path, r, length, source)
        else:
            keys = ((0.0, _number(value, path, r, source)),)
        params.append((key, Param(keys, how if len(keys) > 1 else "linear")))  # a constant has no ease
    choices = tuple((k, check(DreamSettings, k, seg[k], source, f"{where}.{k}")) for k in sorted(set(seg) & set(segment_choices())))
    return Segment(span, objective, tuple(params), blend, choices)


def _number(value: Any, path: str, r: Range, source: str) -> float | Expr:
    """A segment's number: a constant in range, or an expression (a string), checked at every
    frame once the video's length (and soundtrack) is known."""
    if isinstance(value, str):
        try:
            return parse_expression(value, path)
        except UserError as e:
            raise UserError(f"{source}: {e.problem}", e.fix) from None
    return float(r.check(value, path, source))


def _keyframes(value: list, path: str, r: Range, length: float, source: str) -> tuple[tuple[float, float], ...]:
    """[[t, v], …] with t in seconds from the segment's start."""
    keys: list[tuple[float, float]] = []
    for j, kv in enumerate(value):
        where = f"{path}[{j}]"
        if not (isinstance(kv, list) and len(kv) == 2):
            raise error(source, where, f"must be [seconds, value], got {show(kv)}", "write e.g. [[0, 1.2], [4, 1.5]]")
        t = Range(float, 0).check(kv[0], where, source)
        v = _number(kv[1], where, r, source)
        if t > length + 1e-9:
            raise error(source, where, f"time {t:g}s is past the segment's end ({length:g}s)",
                        "use times from 0 to the segment's length")
        if keys and t <= keys[-1][0] * length:
            raise error(source, where, "keyframe times must increase", "sort the keyframes by time")
        keys.append((t / length, v))
    if not keys:
        raise error(source, path, "has no keyframes", "give a number or [[seconds, value], …]")
    return tuple(keys)


def check_names(preset: Preset) -> None:
    """Every layer, channel, class and guide image the preset names exists (no weights needed)."""
    info = net_info(preset.model)
    for i, seg in enumerate(preset.segments):
        try:
            check_objective_files(seg.objective)
            seg.objective.check(info)
        except UserError as e:
            raise error(preset.source, f"segments[{i}].objective", e.problem, e.fix or "") from None


def check_objective_files(objective: Objective, has_input: bool | None = None) -> None:
    """Every image the objective names is a readable file; INPUT needs an input photo (None:
    not known yet, as when a preset loads)."""
    for path, what in objective.files:
        if path != INPUT:
            kind = what.split()[0]
            input_file(path, what, f"check the path after '{kind}:'")
        elif has_input is False:
            raise UserError(f"the objective names {INPUT} as its {what}, but no input photo is given",
                            f"give an input image, or a file in place of {INPUT}")


# ------------------------------------------------------------------ loading


def preset_toml(data: Mapping[str, Any], comment: str = "") -> str:
    """Preset keys as TOML text that `load_preset` reads back to the same values: top-level
    keys, then each of data["segments"] as a [[segments]] table. Floats are written as repr
    gives them, which reads back bit for bit."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"{k} = {value(v)}" for k, v in data.items() if k != "segments"]
    for seg in data.get("segments", ()):
        lines += ["", "[[segments]]", *(f"{k} = {value(v)}" for k, v in seg.items())]
    return "\n".join(lines) + "\n"


def preset_data(preset: Preset, paths: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every key of a preset, resolved (defaults written out), as `preset_toml` writes them and
    `parse_preset` reads them back to an equal Preset: spans and keyframe times are written as
    the seconds that divide back to the very fractions the preset holds. `paths` renames image
    files in objectives (to absolute paths, so the text reads the same from any folder)."""
    data: dict[str, Any] = {k: getattr(preset, k) for k in declared(Preset)}
    data = {k: v for k, v in data.items() if v is not None and (k != "photo" or v)}
    data["size"] = f"{preset.width}x{preset.height}"
    total = preset.seconds
    segments = []
    for seg in preset.segments:
        a, b = (_seconds_for(u, total) for u in seg.span)
        out: dict[str, Any] = {"seconds": [a, b], "objective": str(seg.objective.renamed(paths or {}))}
        eases = {p.ease for _, p in seg.params if len(p.keys) > 1}
        if eases:
            out["ease"] = eases.pop()
        if seg.blend:
            out["blend"] = seg.blend
        out.update(dict(seg.choices))
        numbers = keyframeable()
        for key, param in seg.params:
            whole = numbers[key].metadata["check"].kind is int
            value = [_key_value(v, whole) for _, v in param.keys]
            out[key] = value[0] if len(param.keys) == 1 and param.keys[0][0] == 0 else [
                [_seconds_for(u, b - a), v] for (u, _), v in zip(param.keys, value)]
        segments.append(out)
    data["segments"] = segments
    return data


def _key_value(v: float | Expr, whole: bool) -> float | int | str:
    return v.text if isinstance(v, Expr) else int(v) if whole and float(v).is_integer() else v


def _seconds_for(fraction: float, length: float) -> float:
    """The seconds t with t / length == fraction exactly (t = fraction·length can miss by an
    ulp, and one ulp moves a keyframe's value at a frame)."""
    t = fraction * length
    for direction in (math.inf, -math.inf):
        c = t
        for _ in range(8):
            if c / length == fraction:
                return c
            c = math.nextafter(c, direction)
    return t


def preset_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.toml"))}


def load_preset(name_or_path: str | Path | Preset | None = None) -> Preset:
    """A shipped preset by name, or a TOML file by path (a Preset is returned as it is)."""
    if isinstance(name_or_path, Preset):
        return name_or_path
    name_or_path = name_or_path or "default"
    if names_a_file(name_or_path):
        p = input_file(name_or_path, "preset file", "check the path, or see: zoomdream presets")
    else:
        shipped = preset_paths()
        if str(name_or_path) not in shipped:
            raise UserError(f"unknown preset '{name_or_path}'", closest(str(name_or_path), shipped) +
                            " (see: zoomdream presets)")
        p = shipped[str(name_or_path)]
    data = read_toml(p, "preset file")
    data.setdefault("name", p.stem)
    return parse_preset(data, str(p))
