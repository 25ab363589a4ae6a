"""Every setting, declared once.

A setting's type, default, range or choices and help text live on the dataclass that owns it
(`DreamSettings`, `Motion`, the preset, `RenderOptions`), as field metadata made by `setting`.
One `check` validates a value wherever it comes from: a TOML preset, a command-line flag or an
API keyword, and the command line builds its flags and their help from the same metadata.
This module imports no torch, so every flag is checked in a blink before a network loads."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .errors import UserError, closest

MAX_FRAMES = 1_000_000  # 11.5 hours at 24 fps: past this a length is a typo, not a plan
# Video frame sizes: H.264 in yuv420p needs even sides, x264 refuses a side over 16384, and
# past 8192² pixels a frame is more than ffmpeg's raw-video input takes.
VIDEO_MIN_SIDE, VIDEO_MAX_SIDE, VIDEO_MAX_PIXELS = 32, 16384, 8192 * 8192
# Stills: the network needs a few pixels; a decoded image past 16384² would not fit in memory.
IMAGE_MIN_SIDE, IMAGE_MAX_SIDE = 16, 16384
PRECISIONS = ("fp32", "bf16", "fp16")
PRECONDITIONS = ("none", "laplacian", "decorrelated")
COMMAND_LINE = "command line"


def error(source: str, path: str, problem: str, fix: str) -> UserError:
    """The one shape of a bad-setting message: where, which key, what is wrong, what to do."""
    return UserError(f"{source}: {path}: {problem}", fix)


def show(v: Any) -> str:
    """A value as the user wrote it, short (a 5000-digit integer cannot even be printed)."""
    try:
        text = repr(v)
    except ValueError:
        return "an integer too long to print"
    return text if len(text) <= 40 else text[:37] + "..."


def _fmt(x: float | str | None) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class Range(NamedTuple):
    """A number's type and bounds. `open_lo`: the lower bound itself is not allowed; `zero`:
    0 is allowed too (it means "automatic")."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    zero: bool = False

    def describe(self) -> str:
        if self.zero:
            return f"0 or {self._describe()}"
        return self._describe()

    def _describe(self) -> str:
        lo, hi = _fmt(self.lo), _fmt(self.hi)
        if self.lo is not None and self.hi is not None and not self.open_lo:
            return f"from {lo} to {hi}"
        low = "" if self.lo is None else f"{'greater than' if self.open_lo else 'at least'} {lo}"
        high = "" if self.hi is None else f"at most {hi}"
        return " and ".join(x for x in (low, high) if x) or "a finite number"

    def short(self) -> str:
        """For --help: 1–12, >0–4, ≥0, 0 or 64–16384."""
        return ("0 or " if self.zero else "") + self._short()

    def _short(self) -> str:
        lo = "" if self.lo is None else (">" if self.open_lo else "") + _fmt(self.lo)
        if self.hi is None:
            return f"{'>' if self.open_lo else '≥'}{_fmt(self.lo)}" if lo else "any"
        return f"{lo}–{_fmt(self.hi)}" if lo else f"≤{_fmt(self.hi)}"

    def check(self, v: Any, path: str, source: str) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise error(source, path, f"must be a number, got {type(v).__name__} {show(v)}", "write a number")
        if isinstance(v, float):
            if not math.isfinite(v):
                raise error(source, path, f"must be finite, got {v}", "write a finite number")
            if self.kind is int and not v.is_integer():
                raise error(source, path, f"must be a whole number, got {v}", "drop the fraction")
        if isinstance(v, int) and abs(v) > 1e300:  # past what a float holds: float(v) would overflow
            raise error(source, path, f"is too large, got {show(v)}", "use a smaller number")
        if self.out(v):
            raise error(source, path, f"must be {self.describe()}, got {show(v)}", f"use a value {self.describe()}")
        return self.kind(v)

    def out(self, v: Any) -> Any:
        """Whether v (a number, or elementwise an array) is outside the range."""
        bad = False
        if self.lo is not None:
            bad = bad | ((v <= self.lo) if self.open_lo else (v < self.lo))
        if self.hi is not None:
            bad = bad | (v > self.hi)
        return bad & (v != 0) if self.zero else bad


class Choice(NamedTuple):
    choices: tuple[str, ...]
    kind: type = str

    def short(self) -> str:
        return "|".join(self.choices)

    def check(self, v: Any, path: str, source: str) -> str:
        if not isinstance(v, str) or v not in self.choices:
            raise error(source, path, f"unknown value {show(v)}", f"use one of {', '.join(self.choices)}")
        return v


class Kind(NamedTuple):
    """A bool or a free string."""

    kind: type

    def short(self) -> str:
        return ""

    def check(self, v: Any, path: str, source: str) -> Any:
        if self.kind is bool and not isinstance(v, bool):
            raise error(source, path, f"must be true or false, got {show(v)}", "write true or false")
        if self.kind is str and not isinstance(v, str):
            raise error(source, path, f"must be a string, got {show(v)}", "quote the value")
        return v


class Custom(NamedTuple):
    """A check of its own: fn(value, path, source) -> value."""

    fn: Callable[[Any, str, str], Any]
    kind: type = str
    hint: str = ""

    def short(self) -> str:
        return self.hint

    def check(self, v: Any, path: str, source: str) -> Any:
        return self.fn(v, path, source)


Check = Range | Choice | Kind | Custom


def setting(default: Any, check: Check, help: str, flag: str | tuple[str, ...] | None = None) -> Any:
    """A dataclass field that declares a setting. `flag` overrides the command-line names
    (click's declarations: "--progress/--quiet", or several of them)."""
    return field(default=default, metadata={"check": check, "help": help, "flag": flag})


def declared(cls: type) -> dict[str, dataclasses.Field]:
    """The settings a dataclass declares (fields made by `setting`), by name."""
    return {f.name: f for f in dataclasses.fields(cls) if "check" in f.metadata}


def flag(key: str) -> str:
    """The command-line flag for a setting: step_size → --step-size."""
    return f"--{key.replace('_', '-')}"


def path_of(key: str, source: str) -> str:
    """How a key is named in messages: the flag on the command line, the key elsewhere."""
    return flag(key) if source == COMMAND_LINE else key


def check(cls: type, key: str, value: Any, source: str, path: str | None = None) -> Any:
    """One value of one of `cls`'s settings, validated, or the one-line error."""
    spec = declared(cls).get(key)
    if spec is None:
        raise UserError(f"{source}: unknown setting {show(key)}", closest(str(key), sorted(declared(cls))))
    return spec.metadata["check"].check(value, path or path_of(key, source), source)


def checked(cls: type, given: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Each of `given` validated against `cls`'s declarations (None means "not given")."""
    return {k: check(cls, k, v, source) for k, v in given.items() if v is not None}


def build(cls: type, given: Mapping[str, Any], source: str, base: Any = None) -> Any:
    """An instance of `cls` from validated keyword values, over `base` or the defaults."""
    values = checked(cls, given, source)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def help_text(cls: type, key: str, default: Any = dataclasses.MISSING) -> str:
    """A setting's --help line: its help, range and default."""
    f = declared(cls)[key]
    rng = f.metadata["check"].short()
    shown = f.default if default is dataclasses.MISSING else default
    parts = [p for p in (rng, f"default {shown}" if shown is not None else "") if p]
    return f"{f.metadata['help']}" + (f" ({'; '.join(parts)})" if parts else "")


# ------------------------------------------------------------------------------------ values


SEED = Range(int, 0, 2**63 - 1)  # what a torch.Generator takes


def hex_colour(v: str) -> tuple[float, float, float] | None:
    """'#204060' as RGB in [0, 1], or None."""
    if isinstance(v, str) and len(v) == 7 and v.startswith("#"):
        try:
            return tuple(int(v[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            return None
    return None


def check_video_size(w: int, h: int, path: str, source: str) -> tuple[int, int]:
    size = f"{show(w)}x{show(h)}"
    if w < VIDEO_MIN_SIDE or h < VIDEO_MIN_SIDE:
        raise error(source, path, f"{size} is too small", f"use at least {VIDEO_MIN_SIDE}x{VIDEO_MIN_SIDE}")
    if w > VIDEO_MAX_SIDE or h > VIDEO_MAX_SIDE:
        raise error(source, path, f"{size} has a side over {VIDEO_MAX_SIDE}, more than H.264 encodes",
                    f"keep each side at most {VIDEO_MAX_SIDE}")
    if w * h > VIDEO_MAX_PIXELS:
        raise error(source, path, f"{size} is too large", "use at most 8192x8192 pixels in all")
    if w % 2 or h % 2:
        raise error(source, path, f"{size} has an odd side; H.264 yuv420p needs even sides",
                    f"use {w + w % 2}x{h + h % 2}")
    return w, h


def parse_size(v: Any, path: str = "size", source: str = COMMAND_LINE) -> tuple[int, int]:
    """'1280x720', [1280, 720] or 512 as (width, height) of a video frame."""
    if isinstance(v, str):
        parts = v.lower().replace("×", "x").split("x")
        try:
            if len(parts) > 2:
                raise ValueError
            w, h = (int(parts[0]), int(parts[-1]))
        except ValueError:
            raise error(source, path, f"cannot read size {show(v)}", "write WIDTHxHEIGHT, e.g. 512x512") from None
    elif isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                              for x in v):
        w, h = v
    elif isinstance(v, int) and not isinstance(v, bool):
        w = h = v
    else:
        raise error(source, path, f"cannot read size {show(v)}", 'write "512x512" or [512, 512]')
    return check_video_size(w, h, path, source)


def _still_size(v: Any, path: str, source: str) -> int:
    """The long side of a still: 0 keeps the photo's own size."""
    if v == 0 and not isinstance(v, bool):
        return 0
    return Range(int, IMAGE_MIN_SIDE, IMAGE_MAX_SIDE).check(v, path, source)


# Below 64 px a tile is mostly its borrowed context: --tile 5 cut a 512² image into 1,024 tiles
# of 144² a step, and one step took minutes.
TILE_MIN = 64


def _start(v: Any, path: str, source: str) -> str:
    if isinstance(v, str) and (v in ("noise", "photo") or hex_colour(v) is not None):
        return v
    raise error(source, path, f"unknown start {show(v)}", 'use "noise", "photo" or a colour like "#204060"')


# ------------------------------------------------------------------------------------ owners


# What a dream setting left at None becomes, by the objective's kind of defaults. Layer,
# channel and guide dreams ("plain") amplify what is there and need no prior. A class logit
# ("natural") is pooled over the whole image, so gradient ascent on it alone finds a faint
# pattern that fools the network at one exact scale and position; random rescaling and
# rotation each step make only what survives them (a shape) pay, and more, larger steps let
# the shape form: measured on five classes from noise (tests/test_style_content.py), each stays
# the network's first choice over random views. Content terms alone ("match") pull toward a
# target; a step of fixed size circles a minimum, so theirs falls within each octave, and
# inverting a photo takes many. Style alone ("texture") matches statistics that a step of
# 0.015 overshoots at the shallow layers: its steps are smaller still (tests measure both).
#
# Steps are shaped by a Laplacian pyramid (engine/precondition.py) for layers, channels, guides
# and classes: on four photos and noise at features.13, 512 px, the added detail's energy above
# half Nyquist fell to a third (0.088 against 0.269) with colourfulness 79.8 against 66.3 and
# the objective rising 1.36× as fast per second; the default preset's P rose from 0.68 to 0.71;
# class images keep their 16-view test (5 of 5) with a third of the fine grain and twice the
# colour (bench, look). Style and content alone keep the classic step: not measured with it.
PLAIN = dict(steps=10, step_size=0.015, settle=0.0, blur=0.0, tv=0.0, decay=0.0, scale_jitter=0.0,
             rotate_jitter=0.0, precondition="laplacian")
DEFAULTS = {"plain": PLAIN, "natural": dict(PLAIN, steps=30, step_size=0.03, blur=0.5, scale_jitter=0.1,
                                            rotate_jitter=10.0),
            "match": dict(PLAIN, steps=100, step_size=0.015, settle=1.0, precondition="none"),
            "texture": dict(PLAIN, steps=100, step_size=0.005, settle=1.0, precondition="none")}


def _prior_help(key: str) -> str:
    plain = _fmt(PLAIN[key])
    others = [(name, _fmt(DEFAULTS[kind][key])) for kind, name in (("natural", "class"), ("match", "content alone"),
                                                                    ("texture", "style alone"))]
    return f" (default {plain}" + "".join(f"; {name} {v}" for name, v in others if v != plain) + ")"


@dataclass(frozen=True)
class DreamSettings:
    """How hard and at which scales one image is dreamed. The defaults are tuned for
    mobilenet_v2 on a photo at 512 px; settings left at None take the objective's defaults
    (see DEFAULTS). Upper bounds keep a
    typo (jitter = 1e20) from validating and then failing, or running for ever, in a render."""

    # Each octave is 1.4× smaller: the classic value. Small enough that features grown at one
    # scale are still meaningful one octave up, large enough that 4 octaves span 2.7×.
    octaves: int = setting(4, Range(int, 1, 12), "Number of octaves (scales)")
    octave_scale: float = setting(1.4, Range(float, 1.0, 4.0, open_lo=True), "Size ratio between octaves")
    steps: int | None = setting(None, Range(int, 0, 1000), "Gradient steps per octave" + _prior_help("steps"))
    # The gradient is divided by its mean magnitude, so this is the mean pixel change per step
    # whatever the layer, image or weights.
    step_size: float | None = setting(None, Range(float, 0.0, 1.0, open_lo=True),
                                      "Mean pixel change per step, 0–1 units" + _prior_help("step_size"))
    # moves the network's stride grid (and the tile grid) under the image so no grid shows
    jitter: int = setting(32, Range(int, 0, 1024), "Random roll per step, in pixels")
    # Tiles bound memory (a 1024² pass of mobilenet_v2 to features.13 holds about 1.1 GB for the
    # backward pass) and each costs its overlap in extra pixels, so they are as large as memory
    # comfortably allows: automatic is 1024 on the CPU (faster than whole frames there) and the
    # whole frame on a GPU while it fits (tiles made a 1080p frame 2.3× slower on an H200).
    tile: int = setting(0, Range(int, TILE_MIN, 16384, zero=True),
                        "Largest side sent through the network at once (0: automatic, 1024 on the CPU, "
                        "whole frames on a GPU while they fit in its memory)")
    tile_overlap: int = setting(64, Range(int, 0, 1024), "Context each tile borrows from its neighbours, px")
    # Priors: what keeps an image natural. The blur's reflect padding must stay inside a 32 px
    # frame, hence its bound.
    blur: float | None = setting(None, Range(float, 0.0, 5.0), "Blur sigma after each step, px" + _prior_help("blur"))
    tv: float | None = setting(None, Range(float, 0.0, 1.0),
                               "Total-variation prior: share of each step spent smoothing" + _prior_help("tv"))
    decay: float | None = setting(None, Range(float, 0.0, 0.5),
                                  "L2 decay: pull toward grey by this share each step" + _prior_help("decay"))
    scale_jitter: float | None = setting(None, Range(float, 0.0, 0.5),
                                         "Random rescale of the network's view per step, ±" + _prior_help("scale_jitter"))
    rotate_jitter: float | None = setting(None, Range(float, 0.0, 45.0), "Random rotation of the network's view "
                                          "per step, ± degrees" + _prior_help("rotate_jitter"))
    # Steps of one size circle a target instead of reaching it: a falling step size crosses
    # the distance first and then settles.
    settle: float | None = setting(None, Range(float, 0.0, 1.0), "Step size falls within each octave, from "
                                   "(1+settle)× to (1-settle)× (same mean)" + _prior_help("settle"))
    # How a step is shaped from the gradient (engine/precondition.py).
    precondition: str | None = setting(None, Choice(PRECONDITIONS), "How each step is shaped from the gradient: "
                                       "none (the classic), laplacian (each band of a Laplacian pyramid normalised "
                                       "on its own) or decorrelated (ImageNet's decorrelated colours, frequencies "
                                       "scaled by 1/f)" + _prior_help("precondition"))
    bands: int = setting(4, Range(int, 1, 8), "Bands of the Laplacian pyramid (precondition laplacian)")
    band_scale: float = setting(2.0, Range(float, 1.25, 4.0), "Size ratio between those bands")
    min_octave: int = 48  # never dream an octave smaller than this (px, short side): it only adds noise

    def resolved(self, defaults: str) -> DreamSettings:
        """Every setting left at None given the objective's default (Objective.defaults)."""
        table = DEFAULTS[defaults]
        return dataclasses.replace(self, **{k: v for k, v in table.items() if getattr(self, k) is None})


# The settings that default to the objective's own value (see DEFAULTS), and of
# those, the priors that shape the image (the rest say how long and hard to dream).
BY_OBJECTIVE = tuple(PLAIN)
PRIORS = ("blur", "tv", "decay", "scale_jitter", "rotate_jitter")
SHAPE = ("precondition", "bands", "band_scale")  # how a step is shaped from the gradient

# Per video frame: the frame before was already dreamed and only moved a little, so a couple of
# octaves with a few steps keep it dreaming at a fraction of a still's cost.
FRAME_DREAM = DreamSettings(octaves=2, steps=4, step_size=0.012, jitter=16)


@dataclass(frozen=True)
class Motion:
    """The camera move between frames, per second, so that the same preset moves identically
    at 24 or 60 fps."""

    zoom: float = setting(1.0, Range(float, 0.01, 100.0), "Scale factor per second; >1 flies in")
    rotate: float = setting(0.0, Range(float, -3600.0, 3600.0),
                            "Degrees per second; >0 turns the view counter-clockwise (the picture clockwise)")
    pan_x: float = setting(0.0, Range(float, -100.0, 100.0), "Frame widths per second; >0 drifts the view right")
    pan_y: float = setting(0.0, Range(float, -100.0, 100.0), "Frame heights per second; >0 drifts the view down")

    def per_frame(self, fps: float) -> tuple[float, float, float, float]:
        """(zoom, radians, dx, dy) for one frame: z**(1/fps) keeps the motion fps-independent."""
        return self.zoom ** (1 / fps), math.radians(self.rotate) / fps, self.pan_x / fps, self.pan_y / fps


def seed_setting() -> Any:
    return setting(0, SEED, "Random seed: the same seed gives the same result")


def precision_setting() -> Any:
    return setting("fp32", Choice(PRECISIONS),
                   "Number format (fp16: GPU only; bf16 and fp16 keep the first layers fp32)")


START = Custom(_start, str, "noise|photo|#rrggbb")


@dataclass(frozen=True)
class StillOptions:
    """What `dream` takes beside DreamSettings."""

    size: int = setting(512, Custom(_still_size, int, f"{IMAGE_MIN_SIDE}–{IMAGE_MAX_SIDE} or 0"),
                        "Long side of the image to dream, px (0: keep the photo's size)")
    seed: int = seed_setting()
    precision: str = precision_setting()


_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def _device(v: Any, path: str, source: str) -> str:
    """The device's name, checked for its form here; whether this machine has it, when the
    network loads (models.resolve_device)."""
    if isinstance(v, str) and _DEVICE.fullmatch(v.strip().lower()):
        return v.strip().lower()
    raise error(source, path, f"unknown device {show(v)}", "use auto, cpu, cuda, cuda:N or mps")


def _path(v: Any, path: str, source: str) -> Path:
    """A file or folder name (what is there is checked by base/paths.py before any work)."""
    if isinstance(v, (str, os.PathLike)) and str(v):
        return Path(v)
    raise error(source, path, f"must be a path, got {show(v)}", "give a file name")


PATH = Custom(_path, Path)


@dataclass(frozen=True, kw_only=True)
class RenderOptions:
    """How a render runs, beside what the preset says it shows: the same for `render`, `video`,
    a batch's jobs and the API (`dream` and `atlas` take its device and weights)."""

    device: str = setting("auto", Custom(_device, str, "auto|cpu|cuda|cuda:N|mps"), "Where to dream")
    weights: Path | None = setting(None, PATH, "A torchvision state_dict file for the model")
    frames_dir: Path | None = setting(None, PATH, "Also keep every frame as a lossless PNG in this folder")
    gif: Path | None = setting(None, PATH, "Also write a short GIF preview")
    resume: bool = setting(False, Kind(bool), "Continue an interrupted render of the same output")
    overwrite: bool = setting(False, Kind(bool), "Replace the output (and any unfinished render of it)")
    checkpoint_every: int = setting(24, Range(int, 1, MAX_FRAMES), "Frames between checkpoints (and MP4 parts)")
    # A live bar on a terminal; in a log (stderr redirected, nohup, CI) a plain line every 10 s.
    progress: bool = setting(True, Kind(bool), "Show progress with an ETA (-q: none)",
                             flag=("--progress/--quiet", " /-q"))


FLOWS = ("dis", "farneback", "off")


@dataclass(frozen=True)
class FootageOptions:
    """How `video` treats its footage, beside what the preset says to dream."""

    # DIS: fast and accurate enough on real motion (OpenCV); Farneback: the classic dense flow,
    # smoother on large textureless areas, several times slower.
    flow: str = setting("dis", Choice(FLOWS), "Optical flow that carries the dream along the footage's motion "
                                              "(off: carried in place, with no motion compensation)")
    # 0.8: a twelfth of the flicker of dreaming each frame on its own (warping error, tests'
    # clip: 0.0011 against 0.0134), with the fine detail still there; 0.9 averages it away.
    blend: float = setting(0.8, Range(float, 0.0, 0.95), "Share of the last frame's dream carried into the next "
                                                         "(0: every frame dreamed on its own)")
    start: float = setting(0.0, Range(float, 0.0, 1e7), "Where to start in the input video, seconds")
    end: float | None = setting(None, Range(float, 0.0, 1e7, open_lo=True), "Where to stop, seconds (default: its end)")


_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


def _layers(v: Any, path: str, source: str) -> str:
    """"all" or LAYER,LAYER,… (the names are checked against the model once it is known)."""
    names = [n.strip() for n in v.split(",")] if isinstance(v, str) else []
    if v != "all" and (not names or not all(_NAME.match(n) for n in names)):
        raise error(source, path, f"cannot read layers {show(v)}", 'write "all" or e.g. features.4,features.10')
    return v if v == "all" else ",".join(names)


def _channels(v: Any, path: str, source: str) -> str:
    layer, _, n = v.partition(":") if isinstance(v, str) else ("", "", "")
    if not _NAME.match(layer.strip()) or not n.strip().isdigit() or not 1 <= int(n) <= ATLAS_MAX_CHANNELS:
        raise error(source, path, f"cannot read channels {show(v)}",
                    f"write LAYER:N with N from 1 to {ATLAS_MAX_CHANNELS}, e.g. features.10:8")
    return f"{layer.strip()}:{int(n)}"


ATLAS_MAX_CHANNELS = 64


@dataclass(frozen=True)
class AtlasOptions:
    """What `atlas` takes: which cells, and how large."""

    # 224 px is the size the network was trained at: every layer shows its own scale of
    # detail, and 20 cells fit in well under a minute on two cores.
    size: int = setting(224, Range(int, 32, 1024), "Long side of each cell, px")
    layers: str = setting("all", Custom(_layers, str, "all|L1,L2,…"), "Layers to dream, one cell each")
    channels: str | None = setting(None, Custom(_channels, str, "LAYER:N"),
                                   "Also dream the N most excited channels of LAYER, one cell each")
    seed: int = seed_setting()


def keyframeable() -> dict[str, dataclasses.Field]:
    """The numbers a preset segment may set and keyframe: the dream's and the motion's."""
    return {k: f for k, f in {**declared(DreamSettings), **declared(Motion)}.items()
            if isinstance(f.metadata["check"], Range)}


def segment_choices() -> dict[str, dataclasses.Field]:
    """The dream's settings that are a choice (precondition): a segment sets one, not keyframes."""
    return {k: f for k, f in declared(DreamSettings).items() if isinstance(f.metadata["check"], Choice)}


LOOPBACK = "127.0.0.1"


def _host(v: Any, path: str, source: str) -> str:
    """An address to listen on: a name or an IPv4/IPv6 address (whether it can be bound is
    found when the server starts)."""
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9.:\-]{1,253}", v.strip()):
        return v.strip()
    raise error(source, path, f"cannot read host {show(v)}", f"use {LOOPBACK} (this machine only) or 0.0.0.0")


PORT = Range(int, 0, 65535)


@dataclass(frozen=True, kw_only=True)
class LiveOptions:
    """How `zoomdream live` serves its page and listens for OSC, beside the preset it starts."""

    # Loopback unless told otherwise: anything else is reachable by the network and then needs
    # the token printed with the URL.
    host: str = setting(LOOPBACK, Custom(_host, str, "ADDRESS"), "Address to serve the page on (any other than "
                        f"{LOOPBACK} requires the token printed with the URL)")
    port: int = setting(8765, PORT, "TCP port of the page (0: any free port)")
    osc_port: int = setting(9000, PORT, "UDP port for OSC messages on the same address (0: any free port)")
    osc: bool = setting(True, Kind(bool), "Listen for OSC messages (/zoomdream/zoom 1.4, …)")
    out: Path = setting(Path("."), PATH, "Folder for saved presets, uploads and renders (the only one written)")
    open: bool = setting(False, Kind(bool), "Open the page in a browser")
