"""Running a batch's jobs (batch.py): one after another here, several at once as child
processes (`--jobs N`), or as tasks on a Ray cluster (`--ray`), with one progress bar. Each
job is `run_one`, the same here, in a child process and on Ray: an ordinary render, skipped
when finished and resumed when it has a checkpoint."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..base.errors import UserError
from ..base.progress import Progress
from ..engine.images import load_picture
from ..engine.models import resolve_device
from ..media.audio import seconds as audio_seconds
from ..media.ffmpeg import check_ffmpeg, tags
from .batch import JobSpec, Outcome, Registry, check_jobs
from .jobs import RenderJob
from .provenance import TAG
from .render import render
from .state import CHECKPOINT, remove, state_dir


def check_media(specs: list[JobSpec], here: bool) -> None:
    """What check_jobs cannot see without torch, before the first job starts: every photo
    decodes, every soundtrack has sound, and (`here`: not on a cluster) every device is on
    this machine."""
    checks = {"input": load_picture, "audio": audio_seconds, **({"device": resolve_device} if here else {})}
    seen: set[tuple[str, str]] = set()
    for s in specs:
        for key, check in checks.items():
            value = getattr(s, key)
            if value is None or (key, str(value)) in seen:
                continue
            seen.add((key, str(value)))
            try:
                check(value)
            except UserError as e:
                raise UserError(f"{s.where}: {e.problem}", e.fix) from None


def check_finished(specs: list[JobSpec], overwrite: bool) -> None:
    """A file where a job's video goes, with no render of it under way, is skipped as
    finished: refused here unless zoomdream wrote it, or the job would count it as done."""
    found = [(s, Path(s.output)) for s in specs if _finished(Path(s.output), overwrite)]
    if found:
        check_ffmpeg()  # a missing ffmpeg is said as such, not as files it could not read
    for s, out in found:
        try:
            made = TAG in tags(out)
        except UserError:  # not a video at all
            made = False
        if not made:
            raise UserError(f"{s.where}: {out} is there and is not a video zoomdream made",
                            "move it away, or run with --overwrite to replace it")


def _finished(out: Path, overwrite: bool) -> bool:
    """Whether a job's output stands finished: there, with no render of it under way."""
    return not overwrite and out.exists() and not state_dir(out).exists()


def run_one(spec: JobSpec, overwrite: bool = False, threads: int | None = None) -> Outcome:
    """Render one job to its end: skipped if finished, resumed if it has a checkpoint. Its log
    goes to the file beside its output. The same here, in a child process and on Ray."""
    out = Path(spec.output)
    sdir = state_dir(out)
    if _finished(out, overwrite):  # run_batch refused files zoomdream did not make
        return Outcome(spec.name, "skipped")
    out.parent.mkdir(parents=True, exist_ok=True)
    resume = (sdir / CHECKPOINT).is_file() and not overwrite
    if threads:
        torch.set_num_threads(threads)
    options = {"device": spec.device, "resume": resume, "overwrite": not resume, "progress": False,
               **spec.render_options}
    with open(spec.log, "a", encoding="utf-8") as log:

        def write(msg: str) -> None:
            log.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
            log.flush()

        write(f"{'resuming' if resume else 'starting'} {spec.name}: {spec.preset} {spec.overrides}")
        t0 = time.perf_counter()
        try:
            job = RenderJob.from_request(out, spec.preset, spec.input, audio=spec.audio, source=spec.where,
                                         options=options, **spec.preset_keys)
            res = render(job, write)
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
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    check_jobs(specs)
    check_media(specs, here=ray is None)
    check_finished(specs, overwrite)
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
    for s in specs:
        remove([state_dir(Path(s.output)), Path(s.output), s.log])


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
    registry = ray.remote(num_cpus=0)(Registry).remote()
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
