"""Many renders as one command, as data: a jobs file (`batch`) or a grid of variations
(`sweep`) read into JobSpecs, every one checked before the first starts. runners.py runs them
(here, as child processes or on Ray), sheet.py draws their contact sheet.

Every job is an ordinary render with its own state folder, so nothing here schedules, queues
or retries: a job whose output is finished is skipped, one with a checkpoint resumes, and on
Ray a task whose worker or node dies is run again by Ray's own retry, which then resumes from
the last checkpoint. Whatever stops a batch, running the same command again finishes it with
the same files as a batch that never stopped."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UserError, closest
from ..base.paths import check_render_paths, input_file, names_a_file, read_toml
from ..base.settings import SEED, RenderOptions, checked, declared, keyframeable, segment_choices, show
from ..media.codecs import CODECS, check_container
from ..timeline.presets import Preset, load_preset

# What a job sets beside the preset's own keys (those are checked by Preset.with_overrides),
# and the render options it may set.
JOB_KEYS = ("output", "preset", "input", "audio", "name")
RENDER_KEYS = ("checkpoint_every",)


@dataclass(frozen=True)
class JobSpec:
    """One render of a batch, as plain data: it crosses process and machine boundaries."""

    name: str
    output: str  # absolute: on Ray every node must see the same path
    preset: str = "default"
    input: str | None = None
    audio: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # what varies between jobs, for the sheet
    device: str = "auto"
    where: str = ""  # for messages: "jobs.toml: jobs[3]"

    @property
    def log(self) -> Path:
        return Path(self.output).with_suffix(".log")

    @property
    def preset_keys(self) -> dict[str, Any]:
        """Its overrides that are preset keys or segment numbers."""
        return {k: v for k, v in self.overrides.items() if k not in RENDER_KEYS}

    @property
    def render_options(self) -> dict[str, Any]:
        """Its overrides that are render options (RenderOptions fields)."""
        return {k: v for k, v in self.overrides.items() if k in RENDER_KEYS}


class Registry:
    """Which job runs in which worker process, kept by a Ray actor: how a user, or a test, finds
    a job's worker. It lives in this torch-free module so that the actor starts in a blink: one
    that imported torch first took longer to start (over 3 s) than a short job takes to run."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}

    def started(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def running(self) -> dict[str, int]:
        return dict(self.pids)


@dataclass
class Outcome:
    name: str
    status: str  # done, skipped (finished before), interrupted, failed
    frames: int = 0
    seconds: float = 0.0
    error: str = ""


# ------------------------------------------------------------------------------ jobs


def read_jobs(path: str | Path, device: str = "auto") -> list[JobSpec]:
    """A jobs file: optional [defaults] for every job, then [[jobs]] tables with `output`
    (required), `preset`, `input`, `audio`, `name` and any preset key. Relative paths are
    from the file's folder."""
    p = input_file(path, "jobs file", "check the path")
    data = read_toml(p, "jobs file")
    unknown = sorted(set(data) - {"defaults", "jobs"})
    if unknown:
        raise UserError(f"{p}: unknown table '{unknown[0]}'", "write [defaults] and [[jobs]] tables only")
    defaults, jobs = data.get("defaults", {}), data.get("jobs", [])
    if not isinstance(defaults, dict):
        raise UserError(f"{p}: defaults must be a table", "write [defaults]")
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
        raise UserError(f"{p}: no jobs", 'add [[jobs]] tables, each with output = "NAME.mp4"')
    specs = []
    for i, job in enumerate(jobs):
        where = f"{p}: jobs[{i}]"
        keys = {**defaults, **job}
        if "output" not in keys:
            raise UserError(f"{where}: has no output", 'add output = "NAME.mp4"')
        for k in JOB_KEYS:
            if k in keys and not isinstance(keys[k], str):
                raise UserError(f"{where}.{k}: must be a string, got {show(keys[k])}", "quote the value")
        files = {k: _relative(keys[k], p.parent) for k in ("output", "input", "audio") if k in keys}
        preset = keys.get("preset", "default")
        if preset.endswith(".toml") or os.sep in preset or (p.parent / preset).exists():
            preset = _relative(preset, p.parent)
        specs.append(JobSpec(keys.get("name") or Path(files["output"]).stem, files["output"], preset,
                             files.get("input"), files.get("audio"),
                             {k: v for k, v in keys.items() if k not in JOB_KEYS}, device=device, where=where))
    return _labelled(specs)


def _relative(v: str, base: Path) -> str:
    p = Path(v).expanduser()
    return str((p if p.is_absolute() else base / p).resolve())


def _labelled(specs: list[JobSpec]) -> list[JobSpec]:
    """Each job labelled with the settings that differ between jobs (the sheet shows those)."""
    keys = sorted({k for s in specs for k in (*s.overrides, "preset", "input")})
    varying = [k for k in keys if len({json.dumps(_setting(s, k), default=str) for s in specs}) > 1]
    return [JobSpec(**{**asdict(s), "labels": {k: _short(_setting(s, k)) for k in varying}}) for s in specs]


def _setting(spec: JobSpec, key: str) -> Any:
    return {"preset": spec.preset, "input": spec.input}.get(key, spec.overrides.get(key))


def _short(v: Any) -> str:
    if isinstance(v, str) and os.sep in v:
        return Path(v).stem
    return "-" if v is None else str(v)


def sweep_jobs(folder: str | Path, preset: str = "default", seeds: str | None = None,
               vary: list[str] | None = None, input: str | None = None, audio: str | None = None,
               device: str = "auto", **overrides: Any) -> list[JobSpec]:
    """The grid seeds × each --vary KEY=V1,V2,… as jobs in `folder`, each output named after
    what varies (seed3_zoom-1.3.mp4)."""
    axes: list[tuple[str, list[Any]]] = []
    if seeds is not None:
        axes.append(("seed", parse_seeds(seeds)))
    for item in vary or []:
        key, values = parse_vary(item)
        if any(k == key for k, _ in axes):
            raise UserError(f"--vary {key} is given twice", f"list every value once: --vary {key}=A,B,C")
        axes.append((key, values))
    if not axes:
        raise UserError("the sweep is empty: nothing varies", "add --seeds 0-3 and/or --vary KEY=A,B")
    base = {k: v for k, v in overrides.items() if v is not None and k not in dict(axes)}
    folder = Path(folder).expanduser().resolve()
    preset = _relative(preset, Path.cwd()) if names_a_file(preset) else preset
    files = {k: None if v is None else _relative(v, Path.cwd()) for k, v in (("input", input), ("audio", audio))}
    specs = []
    for combo in itertools.product(*(values for _, values in axes)):
        chosen = dict(zip((k for k, _ in axes), combo))
        name = "_".join(f"seed{v}" if k == "seed" else f"{k}-{_slug(v)}" for k, v in chosen.items())
        codec = {**base, **chosen}.get("codec") or load_preset(preset).codec
        ext = CODECS[codec].containers[0] if codec in CODECS else ".mp4"  # an unknown codec is refused with the rest
        specs.append(JobSpec(name, str(folder / f"{name}{ext}"), preset, files["input"], files["audio"],
                             {**base, **chosen}, {k: str(v) for k, v in chosen.items()}, device,
                             where=f"sweep job {name}"))
    return specs


def _slug(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]+", "-", str(v)).strip("-")[:60] or "x"


def parse_seeds(text: str) -> list[int]:
    """'0-7', '1,4,9' or '0-3,10'."""
    out: list[int] = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise UserError(f"--seeds: cannot read {text!r}", "write a range and/or a list, e.g. 0-7 or 1,4,9")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b > SEED.hi or b - a > 9999:
            raise UserError(f"--seeds: {text!r} is too many or too large", "sweep fewer seeds")
        out += range(a, b + 1)
    return list(dict.fromkeys(out))


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """'zoom=1.1,1.3' (';' separates values that hold commas: 'objective=features.10:3,5;features.7')."""
    key, eq, rest = str(text).partition("=")
    key = key.strip().replace("-", "_")
    if not eq or not key or not rest.strip():
        raise UserError(f"--vary: cannot read {text!r}", "write KEY=VALUE,VALUE, e.g. --vary zoom=1.1,1.3")
    allowed = sorted({*declared(Preset), *keyframeable(), *segment_choices(), "objective", "size"}
                     - {"name", "description", "seed"})
    if key not in allowed:
        hint = "vary seeds with --seeds 0-7" if key == "seed" else closest(key, allowed)
        raise UserError(f"--vary: {key} cannot be varied", hint)
    parts = [v.strip() for v in rest.split(";" if ";" in rest else ",")]
    if not all(parts):
        raise UserError(f"--vary {key}: an empty value in {rest!r}", "list values like 1.1,1.3")
    return key, list(dict.fromkeys(_value(v) for v in parts))


def _value(v: str) -> Any:
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def check_jobs(specs: list[JobSpec]) -> None:
    """Every job, before the first one starts: its preset and keys (as `render` checks them),
    its files, and that no two jobs write the same output."""
    if not specs:
        raise UserError("no jobs to run", "add jobs to the file, or values to the sweep")
    seen: dict[str, JobSpec] = {}
    for s in specs:
        if s.output in seen:
            raise UserError(f"{seen[s.output].where} and {s.where} both write {s.output}",
                            "give every job its own output")
        seen[s.output] = s
        try:
            with contextlib.suppress(OSError):  # a batch makes its output folders (refused below if it cannot)
                Path(s.output).parent.mkdir(parents=True, exist_ok=True)
            check_render_paths(s.output, s.input, s.preset, None, None, None, True)
            if s.audio is not None:
                input_file(s.audio, "audio file", "check the audio path")
            checked(RenderOptions, s.render_options, s.where)
            preset = load_preset(s.preset).with_overrides(source=s.where, **s.preset_keys)
            preset.check_files(s.input is not None)
            check_container(preset.codec, s.output)
            if preset.start == "photo" and s.input is None:
                raise UserError(f"preset '{preset.name}' starts from a photo", "give the job an input")
            if preset.reads_audio and s.audio is None:
                raise UserError(f"preset '{preset.name}' follows a soundtrack", "give the job an audio file")
        except UserError as e:
            where = "" if e.problem.startswith(s.where) else f"{s.where}: "
            raise UserError(f"{where}{e.problem}", e.fix) from None
