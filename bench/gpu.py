"""zoomdream on a GPU: is it correct there, and how fast? Prints Markdown tables, in about 5
minutes on an H100 (`make bench-gpu`, which runs bench/gpu.sh). Runs on the CPU too
(`--device cpu --quick`), which is how this script is checked where no GPU is lent.

    correctness  a default-preset render's frames on the GPU against the CPU's; resume on the
                 GPU gives the identical video; the dream step's gradient on both
    tests        the device-independent test files with every "cpu" run on the GPU
    overhead     the dream step against the bare forward+backward (bench.py's table)
    speed        the default preset's seconds per frame at 512², 1920×1080 and 3840×2160: the
                 whole render, the dreaming alone, and the encoder's share
    precision    fp32, TF32, bf16 and fp16 per step, with their gradient cosine against fp32
                 on the real weights (bench.py's table, plus TF32)"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the CPU benchmark's helpers: timing, test images, tables)

import zoomdream  # noqa: E402
from zoomdream.dream import Dreamer  # noqa: E402
from zoomdream.models import load_network, resolve_device  # noqa: E402
from zoomdream.objectives import parse_objective  # noqa: E402
from zoomdream.presets import load_preset  # noqa: E402
from zoomdream.render import RenderJob, render  # noqa: E402
from zoomdream.video import read_frames  # noqa: E402


def correctness(device: torch.device, quick: bool) -> list[str]:
    size, frames = (128, 6) if quick else (256, 12)
    preset = load_preset("default").with_overrides(size=f"{size}x{size}", frames=frames)
    cpu = list(zoomdream.frames(preset, device="cpu"))
    dev = list(zoomdream.frames(preset, device=str(device)))
    diffs = [float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()) for a, b in zip(cpu, dev)]
    rows = [f"| check ({device}, default preset, {size}², {frames} frames) | result |", "|---|---|",
            f"| frames against the CPU's: mean abs difference (0-255), frame 0 / last / mean | "
            f"{diffs[0]:.2f} / {diffs[-1]:.2f} / {statistics.mean(diffs):.2f} |"]
    with tempfile.TemporaryDirectory() as tmp:
        whole, cut = Path(tmp) / "whole.mp4", Path(tmp) / "cut.mp4"
        job = RenderJob(preset=preset, output=whole, device=str(device), progress=False, checkpoint_every=3)
        render(job, log=lambda m: None)
        render(replace(job, output=cut, stop_after=frames // 2 + 1), log=lambda m: None)
        render(replace(job, output=cut, resume=True), log=lambda m: None)
        same = [hashlib.sha256(f.tobytes()).digest() for f in read_frames(whole)] == \
               [hashlib.sha256(f.tobytes()).digest() for f in read_frames(cut)]
    rows.append(f"| interrupted at frame {frames // 2 + 1}, resumed: decoded frames identical to an uninterrupted "
                f"render on {device} | {'yes' if same else 'NO'} |")
    net = {d: load_network("mobilenet_v2", device=d) for d in ("cpu", str(device))}
    img = bench.photo(384, torch.device("cpu"))
    objective = parse_objective("features.13")
    g = {d: Dreamer(n).gradient(img.to(n.device), objective)[0].cpu().flatten() for d, n in net.items()}
    rows.append(f"| dream step gradient, real weights, 384²: cosine {device} against CPU | "
                f"{float(F.cosine_similarity(g['cpu'], g[str(device)], dim=0)):.6f} |")
    return rows


def speed(device: torch.device, quick: bool) -> list[str]:
    sizes = [(512, 512), (960, 540)] if quick else [(512, 512), (1920, 1080), (3840, 2160)]
    rows = [f"| default preset on {device} | frames | render s/frame | dreaming alone s/frame | render ÷ dreaming "
            "| encoder's share of the wall time |", "|---|---|---|---|---|---|"]
    for w, h in sizes:
        frames = 6 if quick else 24 if w * h <= 2_100_000 else 10
        # Frame 0's warm-up dream is a still's full octave stack: the steady state is the question.
        preset = replace(load_preset("default").with_overrides(width=w, height=h, frames=frames), warmup=False)
        stamps: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            render(RenderJob(preset=preset, output=Path(tmp) / "s.mp4", device=str(device), progress=False,
                             on_frame=lambda n: stamps.append(time.perf_counter())), log=lambda m: None)
        per_render = statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:]))
        dreamed = [time.perf_counter() for _ in zoomdream.frames(preset, device=str(device))]
        per_dream = statistics.median(b - a for a, b in zip(dreamed[1:], dreamed[2:]))
        rows.append(f"| {w}×{h} | {frames} | {per_render:.4f} | {per_dream:.4f} | {per_render / per_dream:.3f} "
                    f"| {max(0.0, 1 - per_dream / per_render):.1%} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


TEST_FILES = ["tests/test_dream.py", "tests/test_motion.py", "tests/test_render.py", "tests/test_smoothness.py",
              "tests/test_style_content.py", "tests/test_footage.py"]


def tests(device: torch.device, quick: bool) -> list[str]:
    """The tests that do not depend on the device, with every "cpu" in them run on `device`
    (ZOOMDREAM_FORCE_DEVICE, subprocesses included). Those that compare against the CPU's own
    numbers may fail there for that reason alone: the failures are listed, not hidden."""
    import os
    import re
    import subprocess

    root = Path(__file__).resolve().parents[1]
    files = TEST_FILES[:2] if quick else TEST_FILES
    env = dict(os.environ, ZOOMDREAM_FORCE_DEVICE=str(device))
    t0 = time.perf_counter()
    try:
        timeout = ["--timeout=120"] if _has_timeout() else []
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-o", "addopts=",
                            *timeout, *files], cwd=root, env=env, capture_output=True, text=True, timeout=330)
        out = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + "\n(stopped after 330 s)"
    summary = next((ln for ln in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed)", ln)), "no summary")
    failed = sorted(set(re.findall(r"^FAILED (\S+)", out, re.M)))
    rows = [f"| tests on {device} ({', '.join(Path(f).stem for f in files)}) | result |", "|---|---|",
            f"| pytest, {time.perf_counter() - t0:.0f} s | {summary.strip('= ')} |"]
    rows += [f"| failed | {name} |" for name in failed]
    return rows


def _has_timeout() -> bool:
    import importlib.util

    return importlib.util.find_spec("pytest_timeout") is not None


def precision(device: torch.device, quick: bool) -> list[str]:
    rows = bench.section_precision(device, quick)
    if device.type == "cuda":  # TF32: fp32 storage, tensor-core matmuls and convolutions
        img = bench.photo(512, device)
        objective = parse_objective("features.13")
        dreamer = Dreamer(load_network("mobilenet_v2", device=device, channels_last=True))
        ref = dreamer.gradient(img, objective)[0].flatten()
        fp32 = bench.median_seconds(lambda: dreamer.gradient(img, objective), device, 2, 7)
        with _tf32():
            g = dreamer.gradient(img, objective)[0].flatten()
            t = bench.median_seconds(lambda: dreamer.gradient(img, objective), device, 2, 7)
        cos = float(F.cosine_similarity(g, ref, dim=0))
        sign = float((torch.sign(g) == torch.sign(ref)).float().mean())
        rows.append(f"| mobilenet_v2 features.13 | 512 | TF32 + channels_last | {t * 1e3:.0f} | {fp32 / t:.2f}× "
                    f"(vs fp32 + channels_last) | {cos:.4f} | {sign:.1%} |")
    return rows


@contextlib.contextmanager
def _tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to check the script itself")
    ap.add_argument("--quick", action="store_true", help="small sizes and few repetitions (a smoke run)")
    ap.add_argument("--only", nargs="+", choices=["correctness", "tests", "overhead", "speed", "precision"])
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"# zoomdream on {device}\n\nmachine: {bench.machine(device)}\n", flush=True)
    sections = {"correctness": correctness, "tests": tests,
                "overhead": lambda d, q: bench.section_overhead(d, [512, 1024], q), "speed": speed,
                "precision": precision}
    t_all = time.perf_counter()
    for name in args.only or list(sections):
        t0 = time.perf_counter()
        rows = sections[name](device, args.quick)
        print(f"## {name}  ({time.perf_counter() - t0:.0f} s)\n\n" + "\n".join(rows) + "\n", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
