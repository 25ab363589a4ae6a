"""Many renders as one command: a jobs file (`batch`) or a grid of variations (`sweep`), run
one after another here, several at once as child processes (`--jobs N`), or as tasks on a Ray
cluster (`--ray`), with one progress bar and a contact sheet of the results.

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
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError, closest
from .paths import input_file, names_a_file, output_file, read_bytes
from .settings import SEED, keyframeable, show

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
    try:
        data = tomllib.loads(read_bytes(p, "jobs file").decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: invalid TOML ({e})", "fix the syntax at that line") from None
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
        specs.append(JobSpec(name, str(folder / f"{name}.mp4"), preset, files["input"], files["audio"],
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
    from .presets import Preset
    from .settings import declared

    key, eq, rest = str(text).partition("=")
    key = key.strip().replace("-", "_")
    if not eq or not key or not rest.strip():
        raise UserError(f"--vary: cannot read {text!r}", "write KEY=VALUE,VALUE, e.g. --vary zoom=1.1,1.3")
    allowed = sorted({*declared(Preset), *keyframeable(), "objective", "size"} - {"name", "description", "seed"})
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
    from .paths import check_render_paths
    from .presets import check_objective_files, load_preset
    from .settings import RenderOptions, check

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
            output_file(s.output, (".mp4",), overwrite=True)
            check_render_paths(s.output, s.input, s.preset, None, None, None, True)
            if s.audio is not None:
                input_file(s.audio, "audio file", "check the audio path")
            given = {k: v for k, v in s.overrides.items() if k not in RENDER_KEYS}
            for k in RENDER_KEYS:
                if k in s.overrides:
                    check(RenderOptions, k, s.overrides[k], s.where)
            preset = load_preset(s.preset).with_overrides(source=s.where, **given)
            for seg in preset.segments:
                check_objective_files(seg.objective, s.input is not None)
            if preset.start == "photo" and s.input is None:
                raise UserError(f"preset '{preset.name}' starts from a photo", "give the job an input")
            if preset.reads_audio and s.audio is None:
                raise UserError(f"preset '{preset.name}' follows a soundtrack", "give the job an audio file")
        except UserError as e:
            where = "" if e.problem.startswith(s.where) else f"{s.where}: "
            raise UserError(f"{where}{e.problem}", e.fix) from None


# ------------------------------------------------------------------------------ one job


def run_one(spec: JobSpec, overwrite: bool = False, threads: int | None = None) -> Outcome:
    """Render one job to its end: skipped if finished, resumed if it has a checkpoint. Its log
    goes to the file beside its output. The same here, in a child process and on Ray."""
    from .render import state_dir
    from .state import CHECKPOINT

    out = Path(spec.output)
    sdir = state_dir(out)
    if out.exists() and not sdir.exists() and not overwrite:
        return Outcome(spec.name, "skipped")
    out.parent.mkdir(parents=True, exist_ok=True)
    resume = (sdir / CHECKPOINT).is_file() and not overwrite
    if threads:
        import torch

        torch.set_num_threads(threads)
    from . import api

    with open(spec.log, "a", encoding="utf-8") as log:

        def write(msg: str) -> None:
            log.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
            log.flush()

        write(f"{'resuming' if resume else 'starting'} {spec.name}: {spec.preset} {spec.overrides}")
        t0 = time.perf_counter()
        try:
            res = api.render(out, spec.preset, spec.input, audio=spec.audio, device=spec.device, resume=resume,
                             overwrite=not resume, log=write, source=spec.where, **spec.overrides)
        except UserError as e:
            write(f"error: {e}")
            return Outcome(spec.name, "failed", error=str(e))
        except Exception as e:  # a bug or a numerical failure: this job fails, the batch goes on
            write(f"failed: {type(e).__name__}: {e}")
            return Outcome(spec.name, "failed", error=f"{type(e).__name__}: {e}")
        write(f"{'interrupted' if res.interrupted else 'finished'}: {res.frames}/{res.total} frames in "
              f"{time.perf_counter() - t0:.1f} s")
        return Outcome(spec.name, "interrupted" if res.interrupted else "done", res.frames, res.seconds)


# ------------------------------------------------------------------------------ runners


def run_batch(specs: list[JobSpec], jobs: int = 1, ray: str | None = None, overwrite: bool = False,
              progress: bool = True, log: Callable[[str], None] | None = None,
              on_running: Callable[[dict[str, int]], None] | None = None) -> list[Outcome]:
    """Run every job (after checking all of them): here one at a time, `jobs` at once as child
    processes, or on the Ray cluster at `ray` ("auto", HOST:PORT, or "local": the Ray of this
    process, started if need be). `on_running` (Ray) sees {job: worker pid} as tasks start."""
    from .progress import Progress

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    check_jobs(specs)
    ray_module = connect(ray) if ray is not None else None  # an unreachable cluster fails before any job
    if overwrite:  # here, once: a job Ray runs again after a crash must resume, not start over
        _clear(specs)
        overwrite = False
    bar = Progress(len(specs), 0, log, unit="job") if progress else None
    done: list[Outcome] = []

    def finished(o: Outcome) -> None:
        done.append(o)
        if bar:
            bar.update(len(done))
        if o.status == "failed":
            log(f"job {o.name} failed: {o.error}")

    try:
        if ray_module is not None:
            _on_ray(ray_module, specs, overwrite, finished, on_running)
        elif jobs > 1:
            _children(specs, jobs, overwrite, finished)
        else:
            for s in specs:
                o = run_one(s, overwrite)
                finished(o)
                if o.status == "interrupted":
                    break
    finally:
        if bar:
            bar.stop()
    return done


def _clear(specs: list[JobSpec]) -> None:
    """--overwrite: every job's output, log and state folder removed before the batch starts."""
    import shutil

    from .render import state_dir

    for s in specs:
        out = Path(s.output)
        shutil.rmtree(state_dir(out), ignore_errors=True)
        out.unlink(missing_ok=True)
        s.log.unlink(missing_ok=True)


def _children(specs: list[JobSpec], jobs: int, overwrite: bool, finished: Callable[[Outcome], None]) -> None:
    """`jobs` child processes at a time, each `zoomdream job SPEC` with its share of the cores.
    Ctrl-C reaches them all (one process group): each closes its video and checkpoints."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    queue: Iterator[JobSpec] = iter(specs)
    running: dict[subprocess.Popen, JobSpec] = {}
    interrupted = False
    try:
        while True:
            while not interrupted and len(running) < jobs:
                s = next(queue, None)
                if s is None:
                    break
                cmd = [sys.executable, "-m", "zoomdream", "job", json.dumps(asdict(s)), "--threads", str(threads)]
                if overwrite:
                    cmd.append("--overwrite")
                Path(s.output).parent.mkdir(parents=True, exist_ok=True)
                with open(s.log, "a") as log:  # what a child says outside its render (a crash) goes there too
                    running[subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)] = s
            if not running:
                return
            for proc in [p for p in running if p.poll() is not None]:
                outcome = _outcome(proc, running.pop(proc))
                interrupted |= outcome.status == "interrupted"
                finished(outcome)
            time.sleep(0.2)
    except KeyboardInterrupt:
        for proc, s in running.items():  # they got the signal too: let them close their videos
            proc.wait()
            finished(_outcome(proc, s))
        raise


def _outcome(proc: subprocess.Popen, spec: JobSpec) -> Outcome:
    out = proc.stdout.read() if proc.stdout else ""
    try:
        return Outcome(**json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError, TypeError):
        return Outcome(spec.name, "interrupted" if proc.returncode in (130, -2) else "failed",
                       error=f"exit status {proc.returncode}; see {spec.log}")


def _on_ray(ray: Any, specs: list[JobSpec], overwrite: bool, finished: Callable[[Outcome], None],
            on_running: Callable[[dict[str, int]], None] | None) -> None:
    """One Ray task per job: a GPU each where the cluster has them, a CPU otherwise. A task
    whose worker or node dies is run again by Ray (max_retries), and resumes."""
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    registry = ray.remote(num_cpus=0)(_Registry).remote()
    task = ray.remote(_ray_job).options(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=3,
                                        retry_exceptions=False)
    pending = {task.remote(s, overwrite, registry): s for s in specs}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if on_running is not None:
                on_running(ray.get(registry.running.remote()))
            for ref in ready:
                s = pending.pop(ref)
                try:
                    finished(Outcome(**ray.get(ref)))
                except Exception as e:  # failed for good: out of retries
                    finished(Outcome(s.name, "failed", error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # the next run resumes them from their checkpoints
        raise


def _ray_job(spec: JobSpec, overwrite: bool, registry: Any) -> dict:
    """A Ray task: one job (resumed from its checkpoint when Ray runs it again after a worker
    or node died)."""
    import ray

    registry.started.remote(spec.name, os.getpid())
    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)) or 1
    return asdict(run_one(spec, overwrite, threads=cpus))


class _Registry:
    """Which job runs in which worker process (a Ray actor): how a user, or a test, finds a
    job's worker."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}

    def started(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def running(self) -> dict[str, int]:
        return dict(self.pids)


def connect(address: str) -> Any:
    """Ray, initialised for `address` ("auto": the cluster this machine belongs to; "local":
    the Ray already started in this process, or a new one on this machine; HOST:PORT), or a
    one-line error."""
    try:
        import ray
    except ImportError:
        raise UserError("Ray is not installed", "pip install 'zoomdream[ray]'") from None
    if address not in ("auto", "local"):
        _reachable(address)
    if ray.is_initialized():
        return ray
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
            ray.init(address=None if address == "local" else address, log_to_driver=False,
                     logging_level="ERROR", **({"include_dashboard": False} if address == "local" else {}))
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "no Ray cluster is running on this machine" if address == "auto" else f"cannot reach Ray at {address}"
        raise UserError(f"{where} ({str(e).splitlines()[0][:120]})",
                        "start one with `ray start --head`, or give --ray HOST:PORT of a running cluster") from None
    return ray


def _reachable(address: str) -> None:
    """Fail in seconds, not after Ray's long connection timeout, when nothing listens there."""
    m = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip())
    if not m:
        raise UserError(f"--ray: cannot read address {address!r}", "write auto, local or HOST:PORT (10.0.0.5:6379)")
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=3).close()
    except OSError as e:
        raise UserError(f"cannot reach Ray at {address} ({e.strerror or type(e).__name__})",
                        "check the address and that the cluster is up (ray status)") from None


# ------------------------------------------------------------------------------ sheet


def contact_sheet(specs: list[JobSpec], path: str | Path, cell: int = 256) -> np.ndarray:
    """One labelled cell per job (the middle frame of its video; grey if it has none yet), in a
    grid, written to `path`."""
    import cv2

    from .atlas import grid, labelled
    from .images import save_image
    from .video import middle_frame

    tiles = []
    for s in specs:
        label = " · ".join(f"{k} {v}" for k, v in s.labels.items()) or s.name
        tile = np.full((cell, cell, 3), 255, np.uint8)
        try:
            frame = middle_frame(Path(s.output))
        except UserError:
            frame, label = np.full((cell, cell, 3), 96, np.uint8), label + " (not rendered)"
        h, w = frame.shape[:2]
        scale = cell / max(h, w)
        frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        h, w = frame.shape[:2]
        tile[(cell - h) // 2 : (cell - h) // 2 + h, (cell - w) // 2 : (cell - w) // 2 + w] = frame
        tiles.append(labelled(tile, label))
    # A grid's columns are the values of what varies last (a sweep's innermost axis), when that
    # lays it out in full rows.
    last = [s.labels[k] for s in specs for k in list(s.labels)[-1:]]
    cols = len(set(last)) if last and len(set(last)) > 1 and len(specs) % len(set(last)) == 0 else None
    sheet = grid(tiles, cols)
    save_image(path, sheet)
    return sheet
