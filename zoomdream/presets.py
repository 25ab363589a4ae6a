"""Presets: TOML files that script a zoom video as segments over time.

Everything is validated before frame 0, and every error names the file, the key path (e.g.
`segments[2].zoom`) and what to write instead. Segment spans and keyframe times are stored
as fractions of the video, so `--seconds`, `--frames` or `--fps` stretch a journey rather
than cut it off."""

from __future__ import annotations

import bisect
import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from .dream import FRAME_DREAM, DreamSettings
from .errors import UserError, closest
from .models import BACKBONES, DEFAULT_MODEL, categories, describe_layers, get_backbone
from .motion import Motion
from .objectives import DEFAULT_OBJECTIVE, Objective, parse_objective
from .objectives import check_names as check_objective_names
from .paths import input_file, names_a_file, read_bytes

# Shipped presets: inside the package when installed from a wheel, the repo's presets/ otherwise.
_HERE = Path(__file__).resolve().parent
PRESET_DIR = next((d for d in (_HERE / "presets", _HERE.parent / "presets") if d.is_dir()), _HERE / "presets")
EASES = ("linear", "smooth")


class Range(NamedTuple):
    """A number's type and bounds. `open_lo`: the lower bound itself is not allowed."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False

    def describe(self) -> str:
        lo, hi = _fmt(self.lo), _fmt(self.hi)
        if self.lo is not None and self.hi is not None and not self.open_lo:
            return f"from {lo} to {hi}"
        low = "" if self.lo is None else f"{'greater than' if self.open_lo else 'at least'} {lo}"
        high = "" if self.hi is None else f"at most {hi}"
        return " and ".join(x for x in (low, high) if x) or "a finite number"


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# Keys a segment may keyframe, with their ranges. Upper bounds keep a typo (jitter = 1e20,
# blur = 1e300) from validating and then failing, or running for ever, inside the render.
SEGMENT_RANGES: dict[str, Range] = {
    "octaves": Range(int, 1, 12),
    "octave_scale": Range(float, 1.0, 4.0, open_lo=True),
    "steps": Range(int, 0, 1000),
    "step_size": Range(float, 0.0, 1.0, open_lo=True),  # mean pixel change per step, 0–1 units
    "jitter": Range(int, 0, 1024),
    "tile": Range(int, 0, 16384),
    "tile_overlap": Range(int, 0, 1024),
    "blur": Range(float, 0.0, 5.0),  # its reflect padding must stay inside a 32 px frame
    "zoom": Range(float, 0.01, 100.0),  # scale per second: 100× in, 100× out
    "rotate": Range(float, -3600.0, 3600.0),  # degrees per second
    "pan_x": Range(float, -100.0, 100.0),  # frame widths per second
    "pan_y": Range(float, -100.0, 100.0),
}
SEED = Range(int, 0, 2**63 - 1)  # what a torch.Generator takes


def flag(key: str) -> str:
    """The command-line flag for a setting: step_size → --step-size."""
    return f"--{key.replace('_', '-')}"


def dream_settings(given: dict[str, Any], source: str = "command line", base: DreamSettings | None = None,
                   ) -> DreamSettings:
    """DreamSettings from keyword values, each checked against the ranges presets use."""
    checked = {}
    for key, value in given.items():
        if key not in _DREAM_KEYS:
            raise UserError(f"unknown dream setting {_show(key)}", f"use {', '.join(sorted(_DREAM_KEYS))}")
        path = flag(key) if source == "command line" else key
        checked[key] = check_number(value, path, SEGMENT_RANGES[key], source)
    return replace(base or DreamSettings(), **checked)


_DREAM_KEYS = {f.name for f in fields(DreamSettings)} & set(SEGMENT_RANGES)
_MOTION_KEYS = {f.name for f in fields(Motion)}
_SEGMENT_KEYS = set(SEGMENT_RANGES) | {"seconds", "frames", "objective", "blend", "ease"}


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
                return v0 + (v1 - v0) * _ease(t, self.ease)
        return keys[-1][1]


def _ease(t: float, ease: str) -> float:
    return t * t * (3 - 2 * t) if ease == "smooth" else t


@dataclass(frozen=True)
class Segment:
    span: tuple[float, float]  # fractions of the whole video
    objective: Objective
    params: tuple[tuple[str, Param], ...]
    blend: int = 0  # frames over which objective and parameters cross-fade from the previous segment
    ease: str = "linear"


@dataclass(frozen=True)
class Preset:
    name: str = "custom"
    description: str = ""
    model: str = DEFAULT_MODEL
    width: int = 512
    height: int = 512
    fps: float = 24.0
    seconds: float = 10.0
    seed: int = 0
    start: str = "noise"  # noise | photo | #rrggbb
    crf: int = 18
    loop: bool = False
    loop_seconds: float = 1.0  # length of the cross-fade that closes a loop
    color: str = "match"  # match | off: pull each frame's colour statistics toward the first frame's
    color_strength: float = 0.1
    warmup: bool = True  # dream frame 0 like a still (all octaves), so the video opens on a dream
    precision: str = "fp32"
    segments: tuple[Segment, ...] = ()
    source: str = "<built-in>"

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    def with_overrides(self, **kw: Any) -> Preset:
        """Apply command-line flags (None means 'not given'), validated like preset keys."""
        given = {k: v for k, v in kw.items() if v is not None}
        for key, value in given.items():
            if key in _TOP_CHECKS:
                given[key] = _TOP_CHECKS[key](value, flag(key), "command line")
            elif key in ("frames", "width", "height"):
                given[key] = check_number(value, flag(key), Range(int, 1, MAX_FRAMES if key == "frames" else None),
                                          "command line")
        if "frames" in given:
            given["seconds"] = given.pop("frames") / given.get("fps", self.fps)
        out = replace(self, **given)
        _check_size(out.width, out.height, "--size", "command line")
        _check_length(out, "--seconds", "command line")
        return out

    def schedule(self) -> Schedule:
        return Schedule(self)

    def layers_used(self) -> set[str]:
        return {t.layer for s in self.segments for t in s.objective.terms}


def _err(source: str, path: str, problem: str, fix: str) -> UserError:
    return UserError(f"{source}: {path}: {problem}", fix)


def _show(v: Any) -> str:
    """A value as the user wrote it, short (a 5000-digit integer cannot even be printed)."""
    try:
        text = repr(v)
    except ValueError:
        return "an integer too long to print"
    return text if len(text) <= 40 else text[:37] + "..."


def check_number(v: Any, path: str, r: Range, source: str) -> float:
    """`v` as a number within `r`, or the one-line error naming `path` in `source`."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _err(source, path, f"must be a number, got {type(v).__name__} {_show(v)}", "write a number")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _err(source, path, f"must be finite, got {v}", "write a finite number")
        if r.kind is int and not v.is_integer():
            raise _err(source, path, f"must be a whole number, got {v}", "drop the fraction")
    too_low = r.lo is not None and (v < r.lo or (v == r.lo and r.open_lo))
    if too_low or (r.hi is not None and v > r.hi):
        raise _err(source, path, f"must be {r.describe()}, got {_show(v)}", f"use a value {r.describe()}")
    return r.kind(v)


MAX_FRAMES = 1_000_000  # 11.5 hours at 24 fps: past this a length is a typo, not a plan


def _check_length(preset: Preset, path: str, source: str) -> None:
    if preset.seconds * preset.fps > MAX_FRAMES:
        raise _err(source, path, f"{preset.seconds:g} s at {preset.fps:g} fps is more than {MAX_FRAMES} frames",
                   "render a shorter video (or several)")


# Video frame sizes: H.264 in yuv420p needs even sides, x264 refuses a side over 16384, and
# past 8192² pixels a frame is more than ffmpeg's raw-video input takes.
MIN_SIDE, MAX_SIDE, MAX_PIXELS = 32, 16384, 8192 * 8192


def _check_size(w: int, h: int, path: str, source: str) -> None:
    size = f"{_show(w)}x{_show(h)}"
    if w < MIN_SIDE or h < MIN_SIDE:
        raise _err(source, path, f"{size} is too small", f"use at least {MIN_SIDE}x{MIN_SIDE}")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise _err(source, path, f"{size} has a side over {MAX_SIDE}, more than H.264 encodes",
                   f"keep each side at most {MAX_SIDE}")
    if w * h > MAX_PIXELS:
        raise _err(source, path, f"{size} is too large", "use at most 8192x8192 pixels in all")
    if w % 2 or h % 2:
        raise _err(source, path, f"{size} has an odd side; H.264 yuv420p needs even sides",
                   f"use {w + w % 2}x{h + h % 2}")


def parse_size(v: Any, path: str = "size", source: str = "command line") -> tuple[int, int]:
    if isinstance(v, str):
        parts = v.lower().replace("×", "x").split("x")
        try:
            w, h = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (int(parts[0]), int(parts[0]))
        except ValueError:
            raise _err(source, path, f"cannot read size {_show(v)}", "write WIDTHxHEIGHT, e.g. 512x512") from None
    elif isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        w, h = v
    elif isinstance(v, int) and not isinstance(v, bool):
        w = h = v
    else:
        raise _err(source, path, f"cannot read size {_show(v)}", 'write "512x512" or [512, 512]')
    _check_size(w, h, path, source)
    return w, h


def _check_str(choices: tuple[str, ...]):
    def check(v, path, source):
        if v not in choices:
            raise _err(source, path, f"unknown value {_show(v)}", f"use one of {', '.join(choices)}")
        return v

    return check


def _check_start(v, path, source):
    if isinstance(v, str) and (v in ("noise", "photo") or _hex_colour(v) is not None):
        return v
    raise _err(source, path, f"unknown start {_show(v)}", 'use "noise", "photo" or a colour like "#204060"')


def _hex_colour(v: str) -> tuple[float, float, float] | None:
    if len(v) == 7 and v.startswith("#"):
        try:
            return tuple(int(v[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            return None
    return None


def _typed(kind: type, *bounds: Any, **kw: Any):
    """A check for a top-level key: a bool, a string, or a number in Range(kind, *bounds)."""
    def check(v, path, source):
        if kind is bool:
            if not isinstance(v, bool):
                raise _err(source, path, f"must be true or false, got {_show(v)}", "write true or false")
            return v
        if kind is str:
            if not isinstance(v, str):
                raise _err(source, path, f"must be a string, got {_show(v)}", "quote the value")
            return v
        return check_number(v, path, Range(kind, *bounds, **kw), source)

    return check


def _check_model(v, path, source):
    if not isinstance(v, str) or v not in BACKBONES:
        raise _err(source, path, f"unknown model {_show(v)}", closest(_show(v), BACKBONES))
    return v


_TOP_CHECKS = {
    "name": _typed(str),
    "description": _typed(str),
    "model": _check_model,
    "fps": _typed(float, 0, 240, open_lo=True),
    "seconds": _typed(float, 0, open_lo=True),  # and at most MAX_FRAMES frames
    "seed": _typed(*SEED),
    "start": _check_start,
    "crf": _typed(int, 0, 51),  # H.264's range; 18 is visually lossless
    "loop": _typed(bool),
    "loop_seconds": _typed(float, 0, 3600, open_lo=True),
    "color": _check_str(("match", "off")),
    "color_strength": _typed(float, 0, 1),
    "warmup": _typed(bool),
    "precision": _check_str(("fp32", "bf16", "fp16")),
}
_TOP_KEYS = set(_TOP_CHECKS) | {"size", "frames", "segments"}


def parse_preset(data: dict[str, Any], source: str = "<preset>") -> Preset:
    unknown = set(data) - _TOP_KEYS
    if unknown:
        k = sorted(unknown)[0]
        raise _err(source, k, "unknown key", closest(k, sorted(_TOP_KEYS)))
    kw: dict[str, Any] = {}
    for key, check in _TOP_CHECKS.items():
        if key in data:
            kw[key] = check(data[key], key, source)
    if "size" in data:
        kw["width"], kw["height"] = parse_size(data["size"], "size", source)
    fps = kw.get("fps", Preset.fps)
    if "frames" in data:
        if "seconds" in data:
            raise _err(source, "frames", "both frames and seconds are set", "keep one of them")
        kw["seconds"] = check_number(data["frames"], "frames", Range(int, 1, MAX_FRAMES), source) / fps
    preset = Preset(source=source, **kw)
    _check_length(preset, "seconds", source)
    raw_segments = data.get("segments", [{}])
    if not isinstance(raw_segments, list) or not raw_segments or not all(isinstance(s, dict) for s in raw_segments):
        raise _err(source, "segments", "must be a list of tables", "write [[segments]] blocks")
    segments = _parse_segments(raw_segments, preset, source)
    preset = replace(preset, segments=segments)
    check_names(preset)
    return preset


def _parse_segments(raw: list[dict], preset: Preset, source: str) -> tuple[Segment, ...]:
    total = preset.seconds
    spans: list[tuple[float, float]] = []
    for i, seg in enumerate(raw):
        where = f"segments[{i}]"
        unknown = set(seg) - _SEGMENT_KEYS
        if unknown:
            k = sorted(unknown)[0]
            raise _err(source, f"{where}.{k}", "unknown key", closest(k, sorted(_SEGMENT_KEYS)))
        if "seconds" in seg and "frames" in seg:
            raise _err(source, where, "both seconds and frames spans are set", "keep one")
        unit = "seconds" if "seconds" in seg else "frames" if "frames" in seg else None
        if unit is None:
            if len(raw) > 1:
                raise _err(source, where, "has no span", "add seconds = [START, END] to every segment")
            spans.append((0.0, total))
            continue
        span = seg[unit]
        if not (isinstance(span, list) and len(span) == 2):
            raise _err(source, f"{where}.{unit}", f"must be [start, end], got {_show(span)}", "write e.g. [0, 4]")
        a, b = (check_number(x, f"{where}.{unit}", Range(float, 0), source) for x in span)
        if unit == "frames":
            a, b = a / preset.fps, b / preset.fps
        if b <= a:
            raise _err(source, f"{where}.{unit}", f"ends before it starts ({_show(span)})", "make end > start")
        spans.append((a, b))
    for i, (a, b) in enumerate(spans):
        prev_end = spans[i - 1][1] if i else 0.0
        if abs(a - prev_end) > 1e-6:
            what = "overlaps the previous segment" if a < prev_end else "leaves a gap after the previous segment"
            raise _err(source, f"segments[{i}]", f"{what} (starts at {a:g}s, previous ends at {prev_end:g}s)",
                       "make each segment start where the last one ends")
    if abs(spans[-1][1] - total) > 0.5 / preset.fps:
        raise _err(source, f"segments[{len(spans) - 1}]", f"ends at {spans[-1][1]:g}s but the video lasts {total:g}s",
                   "make the last segment end at the video's length")
    out = []
    for i, (seg, (a, b)) in enumerate(zip(raw, spans)):
        out.append(_parse_segment(seg, f"segments[{i}]", (a / total, b / total), (b - a), preset, source))
    return tuple(out)


def _parse_segment(seg: dict, where: str, span: tuple[float, float], length: float, preset: Preset,
                   source: str) -> Segment:
    text = seg.get("objective", DEFAULT_OBJECTIVE)
    if not isinstance(text, str):
        raise _err(source, f"{where}.objective", f"must be a string, got {_show(text)}", 'write e.g. "features.13"')
    try:
        objective = parse_objective(text)
    except UserError as e:
        raise _err(source, f"{where}.objective", e.problem, e.fix or "") from None
    ease = seg.get("ease", "linear")
    if ease not in EASES:
        raise _err(source, f"{where}.ease", f"unknown ease {_show(ease)}", "use linear or smooth")
    blend = check_number(seg.get("blend", 0), f"{where}.blend", Range(int, 0, MAX_FRAMES), source)
    params = []
    for key in sorted(set(seg) & set(SEGMENT_RANGES)):
        value = seg[key]
        path = f"{where}.{key}"
        if isinstance(value, list):
            keys = _keyframes(value, path, SEGMENT_RANGES[key], length, source)
        else:
            keys = ((0.0, float(check_number(value, path, SEGMENT_RANGES[key], source))),)
        params.append((key, Param(keys, ease)))
    return Segment(span, objective, tuple(params), blend, ease)


def _keyframes(value: list, path: str, r: Range, length: float, source: str):
    """[[t, v], …] with t in seconds from the segment's start."""
    keys = []
    for j, kv in enumerate(value):
        if not (isinstance(kv, list) and len(kv) == 2):
            raise _err(source, f"{path}[{j}]", f"must be [seconds, value], got {_show(kv)}", "write e.g. [[0, 1.2], [4, 1.5]]")
        t = check_number(kv[0], f"{path}[{j}]", Range(float, 0), source)
        v = check_number(kv[1], f"{path}[{j}]", r, source)
        if t > length + 1e-9:
            raise _err(source, f"{path}[{j}]", f"time {t:g}s is past the segment's end ({length:g}s)",
                       "use times from 0 to the segment's length")
        if keys and t <= keys[-1][0] * length:
            raise _err(source, f"{path}[{j}]", "keyframe times must increase", "sort the keyframes by time")
        keys.append((t / length, float(v)))
    if not keys:
        raise _err(source, path, "has no keyframes", "give a number or [[seconds, value], …]")
    return tuple(keys)


def check_names(preset: Preset) -> None:
    """Every layer, channel, class and guide in the preset exists (no weights needed)."""
    backbone = get_backbone(preset.model)
    layers = describe_layers(backbone)
    for i, seg in enumerate(preset.segments):
        try:
            check_objective_names(seg.objective, backbone, layers, lambda: categories(backbone))
        except UserError as e:
            raise _err(preset.source, f"segments[{i}].objective", e.problem, e.fix or "") from None


# ------------------------------------------------------------------ loading


def preset_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.toml"))}


def load_preset(name_or_path: str | Path | None = None) -> Preset:
    """A shipped preset by name, or a TOML file by path."""
    name_or_path = name_or_path or "default"
    if names_a_file(name_or_path):
        p = input_file(name_or_path, "preset file", "check the path, or see: zoomdream presets")
    else:
        shipped = preset_paths()
        if str(name_or_path) not in shipped:
            raise UserError(f"unknown preset '{name_or_path}'", closest(str(name_or_path), shipped) +
                            " (see: zoomdream presets)")
        p = shipped[str(name_or_path)]
    try:
        data = tomllib.loads(read_bytes(p, "preset file").decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p}: invalid TOML ({e})", "fix the syntax at that line") from None
    except UnicodeDecodeError as e:
        raise UserError(f"preset file {p} is not UTF-8 text ({e.reason} at byte {e.start})",
                        "save it as UTF-8") from None
    data.setdefault("name", p.stem)
    return parse_preset(data, str(p))


# ------------------------------------------------------------------ schedule


@dataclass(frozen=True)
class FrameSpec:
    objective: Objective
    dream: DreamSettings
    motion: Motion


class Schedule:
    """What to do at each frame: the segment's objective and settings, keyframes interpolated,
    cross-faded from the previous segment over its `blend` frames."""

    def __init__(self, preset: Preset):
        self.preset = preset
        self.total = preset.frames
        bounds = [round(s.span[0] * self.total) for s in preset.segments] + [self.total]
        self.bounds = bounds

    def segment_at(self, n: int) -> int:
        # The last segment starting at or before n (a segment too short for a frame is skipped).
        n = min(max(n, 0), self.total - 1)
        return max(0, bisect.bisect_right(self.bounds, n, hi=len(self.preset.segments)) - 1)

    def _values(self, i: int, n: int) -> dict[str, float]:
        seg = self.preset.segments[i]
        a, b = self.bounds[i], self.bounds[i + 1]
        u = (n - a) / max(b - a - 1, 1)
        values = {f.name: float(getattr(FRAME_DREAM, f.name) or 0) for f in fields(DreamSettings)
                  if f.name in _DREAM_KEYS}
        values.update({f.name: float(getattr(Motion(), f.name)) for f in fields(Motion)})
        values.update({k: p.at(u) for k, p in seg.params})
        return values

    def at(self, n: int) -> FrameSpec:
        i = self.segment_at(n)
        seg = self.preset.segments[i]
        values = self._values(i, n)
        objective = seg.objective
        start = self.bounds[i]
        if i > 0 and seg.blend > 0 and n - start < seg.blend:
            w = _ease((n - start + 1) / (seg.blend + 1), "smooth")
            prev = self._values(i - 1, start - 1)
            values = {k: prev[k] + (v - prev[k]) * w for k, v in values.items()}
            before = self.preset.segments[i - 1].objective
            if before != objective:
                objective = before.scaled(1 - w) + objective.scaled(w)
        dream_kw = {}
        for k in _DREAM_KEYS:
            dream_kw[k] = round(values[k]) if SEGMENT_RANGES[k].kind is int else values[k]
        if "blur" not in dict(seg.params):
            dream_kw["blur"] = FRAME_DREAM.blur
        motion = Motion(**{k: values[k] for k in _MOTION_KEYS})
        return FrameSpec(objective, replace(FRAME_DREAM, **dream_kw), motion)

