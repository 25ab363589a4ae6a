"""zoomdream on a GPU: is it correct there, and how fast? Prints Markdown tables, in about 6
minutes on an H100/H200 (`make bench-gpu`, which runs bench/gpu.sh). Runs on the CPU too
(`--device cpu --quick`), which is how this script is checked where no GPU is lent.

    bisect       which operation makes two runs on the device differ: each op of a gradient and
                 of the frame loop run twice on the same inputs, under each cuDNN setting, and
                 where two whole gradients first part (bench/ops.py)
    tuning       what the GPU defaults are chosen from: CUDA graphs, tiling, bf16/fp16, strict
                 fp32, cudnn.benchmark, each a whole frame loop at 512², 1080p and 4K, and
                 whether its frames are identical to eager's; x264 presets' speed at 1080p
    speed        the default preset's seconds per frame at 512², 1920×1080 and 3840×2160: the
                 whole render, the dreaming alone, the encoder's share, the bytes a frame moves
                 and the share of the device's copy bandwidth that makes
    correctness  a default-preset render's frames on the GPU against the CPU's; resume on the
                 GPU gives the identical video; the dream step's gradient on both
    precision    fp32, bf16 and fp16 per step, with their gradient cosine against fp32 on the
                 real weights (bench.py's table), and TF32 against strict IEEE fp32
    overhead     the dream step against the bare forward+backward (bench.py's table)
    tests        the device-independent test files with every "cpu" run on the GPU, each test timed
    roundtrips   where a frame waits for the device: each number read and copy to the host"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the CPU benchmark's helpers: timing, test images, tables)
import ops  # noqa: E402  (the dream op by op: repeats, traffic, round trips)

import zoomdream  # noqa: E402
from zoomdream.engine.dream import Dreamer  # noqa: E402
from zoomdream.engine.models import load_network, resolve_device  # noqa: E402
from zoomdream.engine.objectives import parse_objective  # noqa: E402
from zoomdream.timeline.presets import load_preset  # noqa: E402
from zoomdream.media.clip import read_frames  # noqa: E402
from zoomdream.run.jobs import RenderJob  # noqa: E402
from zoomdream.run.render import render  # noqa: E402


def correctness(device: torch.device, quick: bool) -> list[str]:
    size, frames = (128, 6) if quick else (256, 12)
    preset = load_preset("default").with_overrides(size=f"{size}x{size}", frames=frames)
    cpu = list(zoomdream.frames(preset, device="cpu"))
    dev = list(zoomdream.frames(preset, device=str(device)))
    diffs = [float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()) for a, b in zip(cpu, dev)]
    rows = [f"| check ({device}, default preset, {size}², {frames} frames) | result |", "|---|---|",
            f"| frames against the CPU's: mean abs difference (0-255), frame 0 / last / mean | "
            f"{diffs[0]:.2f} / {diffs[-1]:.2f} / {statistics.mean(diffs):.2f} |"]
    rows.append(f"| interrupted at frame {frames // 2 + 1}, resumed: decoded frames identical to an uninterrupted "
                f"render on {device} | {'yes' if _resumes_identically(preset, device) else 'NO'} |")
    net = {d: load_network("mobilenet_v2", device=d) for d in ("cpu", str(device))}
    img = bench.photo(384, torch.device("cpu"))
    objective = parse_objective("features.13")
    g = {d: Dreamer(n).gradient(img.to(n.device), objective)[0].cpu().flatten() for d, n in net.items()}
    rows.append(f"| dream step gradient, real weights, 384²: cosine {device} against CPU | "
                f"{float(F.cosine_similarity(g['cpu'], g[str(device)], dim=0)):.6f} |")
    return rows


def _resumes_identically(preset, device: torch.device) -> bool:
    """Render whole; render again, stopped after frame N/2 and resumed: the same decoded frames?"""
    with tempfile.TemporaryDirectory() as tmp:
        whole, cut = Path(tmp) / "whole.mp4", Path(tmp) / "cut.mp4"
        job = RenderJob(preset=preset, output=whole, device=str(device), progress=False, checkpoint_every=3)
        render(job, log=lambda m: None)
        render(replace(job, output=cut, stop_after=preset.frames // 2 + 1), log=lambda m: None)
        render(replace(job, output=cut, resume=True), log=lambda m: None)
        return [hashlib.sha256(f.tobytes()).digest() for f in read_frames(whole)] == \
               [hashlib.sha256(f.tobytes()).digest() for f in read_frames(cut)]


def determinism(device: torch.device, quick: bool) -> list[str]:
    """Same seed, settings and device, the same frames? The same gradient twice; two frame loops
    in a row; a render stopped and resumed; with CUDA graphs on and off, and what each costs at
    1920×1080. (On an H200 with torch 2.11 none of these held, with cuDNN's deterministic flag
    too: the cause is still open, see docs/performance.md.)"""
    preset = load_preset("default").with_overrides(size="128x128" if quick else "256x256", frames=12)
    hd = replace(load_preset("default").with_overrides(width=960 if quick else 1920, height=540 if quick else 1080,
                                                       frames=6 if quick else 14), warmup=False)
    img = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)).to(device)
    net = load_network("mobilenet_v2", device=device)
    rows = [f"| {device} | gradient twice: max difference | two runs identical | resumed identical "
            f"| s/frame at {hd.width}×{hd.height} |", "|---|---|---|---|---|"]
    for label, graphs in [("CUDA graphs (default)", "1"), ("eager", "0")]:
        with bench.scoped_env(ZOOMDREAM_CUDA_GRAPHS=graphs):
            d = Dreamer(net)
            g1, g2 = (d.gradient(img, "features.13")[0] for _ in range(2))
            a, b = (list(zoomdream.frames(preset, device=str(device))) for _ in range(2))
            same = all(np.array_equal(x, y) for x, y in zip(a, b))
            resumed = _resumes_identically(preset, device)
            t, _ = _dream_rate(hd, device)
        rows.append(f"| {label} | {float((g1 - g2).abs().max()):.2e} (of mean |g| {float(g1.abs().mean()):.2e}) "
                    f"| {'yes' if same else 'NO'} | {'yes' if resumed else 'NO'} | {t:.4f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def bisect(device: torch.device, quick: bool) -> list[str]:
    """Which operation makes two runs on this device differ (bench/ops.py)? Under each cuDNN
    setting: every op of one dream-step gradient (eager, real weights) run twice on the same
    inputs, and two whole gradients recorded op by op to find where they first part; then the
    default preset's frame loop with every op run twice. On the CPU all of it repeats."""
    img = bench.test_image(128 if quick else 256, device)  # any picture: it needs no scikit-image
    objective = parse_objective("features.13")
    net = load_network("mobilenet_v2", device=device)
    settings = [("cuDNN defaults (TF32 convolutions)", {})]
    if device.type == "cuda":
        settings += [("cudnn.deterministic", dict(deterministic=True)), ("strict fp32 (no TF32)", dict(tf32=False)),
                     ("cudnn.deterministic, strict fp32", dict(deterministic=True, tf32=False))]
    rows = [f"| gradient on {device}, {img.shape[-1]}² | ops | ops that differ when run again (over two gradients) "
            "| two gradients part at |", "|---|---|---|---|"]
    for label, cudnn in settings:
        with _cudnn(**cudnn):
            dreamer = Dreamer(net, graphs=False)
            dreamer.gradient(img, objective)  # binds the objective: the runs below are alike
            runs = []
            for _ in range(2):
                with ops.Repeats(record=True) as r:
                    dreamer.gradient(img, objective)
                runs.append(r)
        parted = "; ".join(ops.parting(runs[0].calls, runs[1].calls)) or "nowhere: identical"
        rows.append(f"| {label} | {runs[0].ops} | {_findings(runs[0].findings + runs[1].findings)} | {parted} |")
        print(rows[-1], file=sys.stderr, flush=True)
    size, n = 96 if quick else 192, 4
    with bench.scoped_env(ZOOMDREAM_CUDA_GRAPHS="0"):
        r = bench.watched_frames(ops.Repeats(), load_preset("default").with_overrides(width=size, height=size),
                                 device, 0, n)
    rows += ["", f"| default preset's frame loop on {device}, {size}², {n} frames, eager | result |",
             "|---|---|", f"| ops run | {r.ops} |", f"| ops that differ when run again | {_findings(r.findings)} |"]
    return rows


def _findings(found: list) -> str:
    """Findings grouped by op: how often, the largest difference, the backward node, where."""
    if not found:
        return "none"
    groups: dict[tuple[str, str, str], list[float]] = {}
    for f in found:
        groups.setdefault((f.op, f.node, f.where), []).append(f.difference)
    parts = [f"{op}{' in ' + node if node else ''}{' at ' + where if where else ''}: {len(d)}×, up to {max(d):.1e}"
             for (op, node, where), d in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    return f"{len(found)}: " + "; ".join(parts[:6]) + (f"; and {len(parts) - 6} more" if len(parts) > 6 else "")


def roundtrips(device: torch.device, quick: bool) -> list[str]:
    """Where a frame of the default preset waits for the device: each read of a number and
    each copy to the host, by the line of zoomdream that asks (bench/ops.py), over frames 3–5
    of a render's frame loop (CUDA graphs as rendered). On the CPU the list is every such read;
    there they cost nothing."""
    n, size = 3, 128 if quick else 512
    trips = bench.watched_frames(ops.RoundTrips(), load_preset("default").with_overrides(width=size, height=size),
                                 device, 3, n)
    return ops.table(trips.trips.items(), n, f"{device}, {size}²")


def speed(device: torch.device, quick: bool) -> list[str]:
    sizes = [(512, 512), (960, 540)] if quick else [(512, 512), (1920, 1080), (3840, 2160)]
    bandwidth = copy_bandwidth(device, quick)
    rows = [f"| default preset on {device} | frames | render s/frame | dreaming alone s/frame | render ÷ dreaming "
            "| encoder's share of the wall time | GB per frame (bench/ops.py) | share of the copy bandwidth "
            f"({bandwidth / 1e12:.2f} TB/s) |", "|---|---|---|---|---|---|---|---|"]
    for w, h in sizes:
        # Long enough that the encoder's queue (8 frames) has filled: the steady state.
        frames = 6 if quick else 24 if w * h <= 300_000 else 72 if w * h <= 2_100_000 else 20
        # Frame 0's warm-up dream is a still's full octave stack: the steady state is the question.
        preset = replace(load_preset("default").with_overrides(width=w, height=h, frames=frames), warmup=False)
        stamps: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            render(RenderJob(preset=preset, output=Path(tmp) / "s.mp4", device=str(device), progress=False,
                             on_frame=lambda n: stamps.append(time.perf_counter())), log=lambda m: None)
        per_render = statistics.median(b - a for a, b in zip(stamps[2:], stamps[3:]))
        per_dream, _ = _dream_rate(preset, device)
        moved = bench.frame_traffic(preset, device).total
        rows.append(f"| {w}×{h} | {frames} | {per_render:.4f} | {per_dream:.4f} | {per_render / per_dream:.3f} "
                    f"| {max(0.0, 1 - per_dream / per_render):.1%} | {moved / 1e9:.2f} "
                    f"| {moved / per_dream / bandwidth:.0%} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def copy_bandwidth(device: torch.device, quick: bool) -> float:
    """Bytes per second that copying a large tensor on the device moves (read and write): the
    memory bandwidth the chip delivers in practice, the yardstick for the dream's traffic."""
    x = torch.ones(2**24 if quick else 2**29, device=device)  # 2 GB: far past any cache
    y = torch.empty_like(x)
    seconds = bench.median_seconds(lambda: y.copy_(x), device, 2, 5 if quick else 10)
    return 2 * x.nbytes / seconds


@contextlib.contextmanager
def _cudnn(benchmark: bool = False, tf32: bool | None = None, deterministic: bool = False):
    cudnn = torch.backends.cudnn
    old = cudnn.benchmark, cudnn.allow_tf32, cudnn.deterministic
    cudnn.benchmark, cudnn.deterministic = benchmark, deterministic
    if tf32 is not None:
        cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.allow_tf32, cudnn.deterministic = old


def _dream_rate(preset, device: torch.device) -> tuple[float, list[np.ndarray]]:
    """Median seconds per dreamed frame (frames 2…: frame 0 is the warm-up, 1 the graph capture)
    and the frames."""
    stamps, out = [], []
    for f in zoomdream.frames(preset, device=str(device)):
        stamps.append(time.perf_counter())
        out.append(f)
    return statistics.median(b - a for a, b in zip(stamps[2:], stamps[3:])), out


def tuning(device: torch.device, quick: bool) -> list[str]:
    """The choices the defaults on a GPU are made from, one change at a time from the defaults
    before any GPU work (eager, tiles of 1024, fp32 with cuDNN's TF32 convolutions,
    channels_last), each a whole default-preset frame loop; and whether a CUDA graph replay is
    bit-identical to the eager gradient it replaces (the dream is chaotic: frames of two
    variants part ways within a few frames, so they are not compared here)."""
    rows = [f"| variant ({device}) | size | s/frame (dreaming) | vs the first row |", "|---|---|---|---|"]
    sizes = [(512, 512), (960, 540)] if quick else [(512, 512), (1920, 1080), (3840, 2160)]
    variants = [("eager, tiles of 1024 (before)", dict(graphs="0"), dict(tile=1024), {}),
                ("CUDA graphs, tiles of 1024", dict(graphs="1"), dict(tile=1024), {}),
                ("eager, whole frames", dict(graphs="0"), {}, {}),
                ("graphs, whole frames (default)", dict(graphs="1"), {}, {}),
                ("graphs, whole frames, bf16", dict(graphs="1"), dict(precision="bf16"), {}),
                ("graphs, whole frames, fp16", dict(graphs="1"), dict(precision="fp16"), {}),
                ("graphs, whole frames, strict fp32 (no TF32)", dict(graphs="1"), {}, dict(tf32=False)),
                ("graphs, whole frames, cudnn.benchmark", dict(graphs="1"), {}, dict(benchmark=True))]
    if device.type != "cuda":
        variants = variants[:4]
    for w, h in sizes:
        frames = 6 if quick else 14 if w * h <= 2_100_000 else 7
        base = replace(load_preset("default").with_overrides(width=w, height=h, frames=frames), warmup=False)
        first = None
        for label, env, over, cudnn in variants:
            try:
                with bench.scoped_env(ZOOMDREAM_CUDA_GRAPHS=env["graphs"]), _cudnn(**cudnn):
                    t, _ = _dream_rate(base.with_overrides(**over) if over else base, device)
            except Exception as e:  # a variant that fails is a finding, not the end of the run
                rows.append(f"| {label} | {w}×{h} | failed: {type(e).__name__}: {str(e)[:120]} | |")
                continue
            first = first or t
            rows.append(f"| {label} | {w}×{h} | {t:.4f} | {first / t:.2f}× |")
            print(rows[-1], file=sys.stderr, flush=True)
    img = bench.photo(512, device)
    objective = parse_objective("features.13")
    net = load_network("mobilenet_v2", device=device)
    eager = Dreamer(net, graphs=False).gradient(img, objective)[0]
    d = Dreamer(net, graphs=True)
    replayed = [d.gradient(img, objective)[0] for _ in range(3)]
    rows.append(f"| gradient, graph replay against eager (512², real weights): bit-identical | "
                f"{'yes' if all(torch.equal(r, eager) for r in replayed) else 'no'} "
                f"(max diff {max(float((r - eager).abs().max()) for r in replayed):.2e}) | | |")
    return rows + encoder(quick)


def encoder(quick: bool) -> list[str]:
    """x264 presets at 1920×1080 on this machine's CPU: frames per second through the Encoder
    the renders use (crf 18), on real dreamed frames (noise would be slower than any video)."""
    from zoomdream.media.codecs import CODECS
    from zoomdream.media.writer import Encoder

    base = replace(load_preset("default").with_overrides(width=480, height=270, frames=8), warmup=False)
    frames = [cv2_resize(f, 1920, 1080) for f in zoomdream.frames(base, device="cpu")]
    rows = ["", f"| x264 preset | fps at 1920×1080 ({len(frames) * 6} frames, crf 18, this machine's CPU) |",
            "|---|---|"]
    for preset in (["medium", "veryfast"] if quick else ["medium", "faster", "veryfast", "superfast"]):
        with tempfile.TemporaryDirectory() as tmp:
            enc = Encoder(Path(tmp) / "e.mp4", 1920, 1080, 24, codec=CODECS["h264"].args("yuv420p", 18, preset, ".mp4"))
            t0 = time.perf_counter()
            for _ in range(6):
                for f in frames:
                    enc.write(f)
            enc.close()
            rows.append(f"| {preset} | {len(frames) * 6 / (time.perf_counter() - t0):.0f} |")
    return rows


def cv2_resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)


TEST_FILES = ["tests/test_dream.py", "tests/test_motion.py", "tests/test_render.py", "tests/test_smoothness.py",
              "tests/test_style_content.py", "tests/test_footage.py"]


def tests(device: torch.device, quick: bool, budget: float = 240.0) -> list[str]:
    """The tests that do not depend on the device, with every "cpu" in them run on `device`
    (ZOOMDREAM_FORCE_DEVICE, subprocesses included). Those that compare against the CPU's own
    numbers may fail there for that reason alone: the failures are listed, not hidden. Each
    test's time is taken as its result line arrives, so a run stopped at `budget` seconds still
    says which tests took it (on an H200 the files did not finish in 200 s; 152 s on a 2-core
    CPU)."""
    import os
    import signal
    import subprocess

    root = Path(__file__).resolve().parents[1]
    files = TEST_FILES[:2] if quick else TEST_FILES
    env = dict(os.environ, ZOOMDREAM_FORCE_DEVICE=str(device), PYTHONUNBUFFERED="1")
    timeout = ["--timeout=120"] if _has_timeout() else []
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the memory earlier sections cached, for the tests' processes
    # A session of its own, so that stopping it stops the renders and encoders it started too.
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-v", "-rf", "-p", "no:cacheprovider", "-o", "addopts=",
                             *timeout, *files], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    t0 = last = time.perf_counter()
    took: list[tuple[float, str]] = []
    outcome: dict[str, int] = {}
    lines: list[str] = []
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(budget, stop)
    timer.start()
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        m = re.match(r"(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", line)
        if m:
            now = time.perf_counter()
            took.append((now - last, m[1]))
            outcome[m[2]] = outcome.get(m[2], 0) + 1
            last = now
    proc.wait()
    timer.cancel()
    cut = stopped.is_set()
    seconds = time.perf_counter() - t0
    counts = ", ".join(f"{n} {k.lower()}" for k, n in outcome.items()) or "no results"
    rows = [f"| tests on {device} ({', '.join(Path(f).stem for f in files)}) | result |", "|---|---|",
            f"| pytest, {seconds:.0f} s{f' (stopped at {budget:.0f} s)' if cut else ''} | {counts} |"]
    rows += [f"| failed | {name} |" for name in sorted(set(re.findall(r"^FAILED (\S+)", "".join(lines), re.M)))]
    rows += [f"| slowest: {t:.1f} s | {name}{' (with pytest starting)' if took and name == took[0][1] else ''} |"
             for t, name in sorted(took, reverse=True)[:10]]
    if cut:  # with -v a test's name is printed when it starts, its result when it ends
        running = lines[-1].split()[0] if lines and "::" in lines[-1] and not lines[-1].endswith("\n") else "?"
        rows.append(f"| running when stopped, for {t0 + seconds - last:.0f} s | {running} |")
    return rows


def _has_timeout() -> bool:
    import importlib.util

    return importlib.util.find_spec("pytest_timeout") is not None


def precision(device: torch.device, quick: bool) -> list[str]:
    rows = bench.section_precision(device, quick)
    if device.type == "cuda":
        # PyTorch lets cuDNN run float32 convolutions as TF32 by default, so the "fp32" rows
        # above are TF32 already: here they are against strict IEEE float32.
        img = bench.photo(512, device)
        objective = parse_objective("features.13")
        dreamer = Dreamer(load_network("mobilenet_v2", device=device, channels_last=True), graphs=False)
        ref = {}
        for label, tf32 in (("strict fp32 (no TF32)", False), ("fp32 as PyTorch runs it (TF32 convolutions)", True)):
            with _cudnn(tf32=tf32):
                ref[label] = dreamer.gradient(img, objective)[0].flatten()
                t = bench.median_seconds(lambda: dreamer.gradient(img, objective), device, 2, 7)
            strict = next(iter(ref.values()))
            cos = float(F.cosine_similarity(ref[label], strict, dim=0))
            sign = float((torch.sign(ref[label]) == torch.sign(strict)).float().mean())
            rows.append(f"| mobilenet_v2 features.13 | 512 | {label}, channels_last | {t * 1e3:.1f} | | "
                        f"{cos:.6f} (vs strict) | {sign:.1%} |")
    return rows


SECTIONS = {"bisect": bisect, "tuning": tuning, "determinism": determinism, "speed": speed, "correctness": correctness,
            "precision": precision, "overhead": lambda d, q: bench.section_overhead(d, [512, 1024], q), "tests": tests,
            "roundtrips": roundtrips}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to check the script itself")
    ap.add_argument("--quick", action="store_true", help="small sizes and few repetitions (a smoke run)")
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS))
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"# zoomdream on {device}\n\nmachine: {bench.machine(device)}\n", flush=True)
    t_all = time.perf_counter()
    # Most telling first: if the lease runs out, the sections printed so far stand.
    for name in args.only or list(SECTIONS):
        t0 = time.perf_counter()
        rows = SECTIONS[name](device, args.quick)
        print(f"## {name}  ({time.perf_counter() - t0:.0f} s)\n\n" + "\n".join(rows) + "\n", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
