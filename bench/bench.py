"""zoomdream benchmark: `make bench` prints one Markdown table per question, all measured in
one run on this machine. Every timing is a median after warm-up; ratios compare runs made
side by side, so they mean more than the absolute seconds.

    overhead   zoomdream's dream step ÷ the bare forward-to-layer + backward-to-input
    port       a frame of the default preset the ways DeepDream repositories do it, one
               optimisation at a time, against zoomdream
    overlap    render wall time ÷ (dream + move) time for the same frames (alternating, medians)
    scaling    seconds per frame (median after the first) and peak memory, 256 px to 4K
    precision  seconds per step and gradient agreement with fp32
    soak       10,000 frames at 96²: brightness, saturation, contrast, s/frame, RSS every 500
    smoothness persistence P = E8 / (8·E1) of every shipped preset, before and with momentum
    cadence    seconds per output frame and P at cadence 1 and 3 (alternating)
    draft      the default preset rendered in full and with --draft
    video      `zoomdream video` at 512 px: s/frame, the optical flow's share, warping error
    audio      analysing a 3-minute soundtrack, in a fresh process and warm
    live       `zoomdream live`: frames/s shown and control-to-frame latency (256² CPU, 720p GPU)
    look       the step's preconditioning modes: objective rise, fine-grain share, colour, P and E8
    codecs     each codec and pixel format at 512²: PSNR, SSIM, MB per minute, encode ms/frame
    traffic    bytes a frame moves through memory, op by op, and the floor that sets on a GPU

Run `python bench/bench.py --help` for options (--only, --device, --quick)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import zoomdream
from zoomdream.base.settings import FRAME_DREAM, DreamSettings
from zoomdream.engine.dream import Dreamer
from zoomdream.timeline.expressions import Expr, parse
from zoomdream.loops.zoom import LoopState, dream_frames, frame_generator, start_frame
from zoomdream.engine.images import fit, to_tensor
from zoomdream.engine.models import IMAGENET_MEAN, IMAGENET_STD, Network, load_network
from zoomdream.loops.smoothness import Smoothness, frames_smoothness
from zoomdream.engine.motion import move
from zoomdream.engine.objectives import parse_objective
from zoomdream.engine.images import save_image
from zoomdream.timeline.presets import Preset, load_preset, preset_paths
from zoomdream.timeline.schedule import Param
from zoomdream.run.jobs import RenderJob
from zoomdream.run.render import first_input, loop_settings, render

import ops  # noqa: E402  (bench/ops.py: the dream op by op)

# The layers the presets use: mobilenet_v2's default, and GoogLeNet's classic inception4c.
LAYERS = {"mobilenet_v2": "features.13", "googlenet": "inception4c"}


@contextlib.contextmanager
def scoped_env(**values: str) -> Iterator[None]:
    """Environment variables set for the block (ZOOMDREAM_CUDA_GRAPHS=0: eager on a GPU)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, reps: int) -> float:
    return interleaved_medians({"fn": fn}, device, warmup, reps)["fn"]


def interleaved_medians(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int,
                        reps: int) -> dict[str, float]:
    """Alternate the candidates rep by rep, so a slow spell on a shared machine hits them all."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def made_up():
    """tests/clips.py, where the tests make their media (clips, songs): the bench makes the same."""
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import clips

    return clips


def test_image(size: int, device: torch.device) -> torch.Tensor:
    """A photo-like start (smooth noise at several scales), reproducible and needing no file."""
    preset = load_preset("default")
    return start_frame(size, size, preset.start, preset.seed, device)


def photo(size: int, device: torch.device) -> torch.Tensor:
    from skimage import data  # dev dependency; a real photo makes gradient agreement meaningful

    return to_tensor(fit(data.chelsea().astype(np.float32) / 255, size, size), device)


# ---------------------------------------------------------------------------------------------
# overhead: the dream step against the network's own cost


def bare_pass(network: Network, layer: str, img: torch.Tensor) -> Callable[[], object]:
    """The floor: forward to the layer, backward to the input, nothing else. The gradient of
    ½‖a‖² at the layer is a itself, hence backward(a)."""
    net = network.truncated([layer])
    x = img.contiguous(memory_format=torch.channels_last) if network.channels_last else img.clone()
    x.requires_grad_(True)

    def run():
        a = net(x)[layer]
        (g,) = torch.autograd.grad(a, x, a)
        return g

    return run


def dream_step(network: Network, layer: str, img: torch.Tensor, settings: DreamSettings) -> Callable[[], object]:
    dreamer = Dreamer(network)
    objective = parse_objective(layer)
    gen = torch.Generator().manual_seed(0)
    return lambda: dreamer.step(img, objective, settings, gen)


def section_overhead(device: torch.device, sizes: list[int], quick: bool) -> list[str]:
    rows = ["| model | layer | size | bare fwd+bwd (ms) | dream step (ms) | overhead |", "|---|---|---|---|---|---|"]
    for model, layer in LAYERS.items():
        network = load_network(model, device=device, pretrained=False)
        for size in sizes:
            img = test_image(size, device)
            # tile=0: the step is compared with one pass over the same pixels (tiling is the
            # scaling section's business).
            settings = replace(FRAME_DREAM, tile=0)
            # Enough repetitions for about 4 s per candidate: a shared machine's noise is ±5%.
            reps = 3 if quick else max(5, min(21, round(4 / (0.3e-6 * size * size * (3 if model == "googlenet" else 1)))))
            t = interleaved_medians({"bare": bare_pass(network, layer, img),
                                     "step": dream_step(network, layer, img, settings)}, device, 2, reps)
            rows.append(f"| {model} | {layer} | {size} | {t['bare'] * 1e3:.0f} | {t['step'] * 1e3:.0f} "
                        f"| {t['step'] / t['bare']:.3f} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# port: a frame of the default preset the way DeepDream repositories do it, one optimisation at
# a time. Each way is one configuration of the loop below (it is here to be measured against,
# not used), run on the same mobilenet_v2 and the same frame as zoomdream.


@dataclass(frozen=True)
class Port:
    truncated: bool = False  # stop the forward pass at the layer (else: the whole net, a hook reads it)
    no_param_grads: bool = False  # frozen weights (else backward() also fills every weight's .grad)
    on_device: bool = False  # the image stays a tensor (else a numpy round trip every step)
    channels_last: bool = False  # NHWC, what oneDNN and tensor cores want (else NCHW)
    fold_bn: bool = False  # BatchNorm folded into the conv before it
    allocator: bool = False  # glibc keeps freed activations (else it unmaps and re-faults them)

    def without(self, name: str) -> Port:
        return replace(self, **{name: False})


ALL = Port(True, True, True, True, True, True)
PORTS: dict[str, tuple[Port, str]] = {
    "naive": (Port(), "whole net + hook, weight gradients, numpy every step (the common tutorial port)"),
    "google": (Port(truncated=True), "like google/deepdream: forward(end=layer), Caffe's backward fills "
               "weight diffs, numpy every step"),
    "lindernoren": (Port(truncated=True, on_device=True), "like eriklindernoren/PyTorch-Deep-Dream: truncated "
                    "Sequential, weight gradients on, tensors within an octave"),
    "gordic": (Port(truncated=True, no_param_grads=True, on_device=True), "like gordicaleksa/pytorch-deepdream: "
               "truncated wrapper, frozen weights, tensors within an octave"),
    **{f"all-but-{k}": (ALL.without(k), f"every optimisation but {what}") for k, what in {
        "truncated": "the cut forward pass", "no_param_grads": "frozen weights", "on_device": "tensors throughout",
        "channels_last": "channels_last", "fold_bn": "BatchNorm folding", "allocator": "the allocator setting"}.items()},
    "all": (ALL, "every optimisation, in this loop"),
}


class _Reached(Exception):
    pass


def port_model(name: str, pretrained: bool, cfg: Port) -> torch.nn.Module:
    import torchvision

    from zoomdream.engine.catalog import get_backbone
    from zoomdream.engine.models import fold_batchnorm
    from zoomdream.engine.weights import load_state_dict, resolve_weights

    model = torchvision.models.get_model(name, weights=None, **({"aux_logits": False, "init_weights": False}
                                                                if name in ("googlenet", "inception_v3") else {}))
    if pretrained:
        backbone = get_backbone(name)
        model.load_state_dict(load_state_dict(backbone, resolve_weights(backbone, None)), strict=False)
    model.eval()
    if cfg.fold_bn:
        fold_batchnorm(model)
    if cfg.no_param_grads:
        model.requires_grad_(False)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def port_frame(model: torch.nn.Module, layer: str, img: torch.Tensor, s: DreamSettings, cfg: Port,
               rng: np.random.Generator) -> torch.Tensor:
    """One frame's dream (octaves carrying detail, jitter, normalised steps), as configured."""
    captured: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        captured["a"] = output
        if cfg.truncated:
            raise _Reached  # the rest of the network never runs

    handle = model.get_submodule(layer).register_forward_hook(hook)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def gradient(x: torch.Tensor) -> torch.Tensor:
        t = ((x - mean) / std).detach()
        t = t.contiguous(memory_format=torch.channels_last) if cfg.channels_last else t
        t.requires_grad_(True)
        try:
            model(t)
        except _Reached:
            pass
        loss = 0.5 * captured["a"].pow(2).sum()
        if cfg.no_param_grads:
            return torch.autograd.grad(loss, t)[0] / std
        model.zero_grad()
        loss.backward()
        return t.grad / std

    h, w = img.shape[-2:]
    shapes = [(round(h / s.octave_scale**i), round(w / s.octave_scale**i)) for i in range(s.octaves)][::-1]
    detail = torch.zeros(1, 3, *shapes[0])
    for shape in shapes:
        base = F.interpolate(img, size=shape, mode="bilinear", antialias=True)
        x = (base + F.interpolate(detail, size=shape, mode="bilinear")).clamp(0, 1)
        for _ in range(s.steps):
            dy, dx = (int(v) for v in rng.integers(-s.jitter, s.jitter + 1, 2))
            if cfg.on_device:
                g = torch.roll(gradient(torch.roll(x, (dy, dx), (2, 3))), (-dy, -dx), (2, 3))
                x = (x + g * (s.step_size / (g.abs().mean() + 1e-8))).clamp(0, 1)
            else:  # the image lives in numpy and crosses over for every gradient
                xn = np.roll(x[0].numpy().transpose(1, 2, 0), (dy, dx), (0, 1))
                g = gradient(torch.from_numpy(np.ascontiguousarray(xn.transpose(2, 0, 1)))[None])
                gn = np.roll(g[0].numpy().transpose(1, 2, 0), (-dy, -dx), (0, 1))
                xn = np.clip(x[0].numpy().transpose(1, 2, 0) + gn * (s.step_size / (np.abs(gn).mean() + 1e-8)), 0, 1)
                x = torch.from_numpy(np.ascontiguousarray(xn.transpose(2, 0, 1)))[None]
        detail = x - base
    handle.remove()
    return x


def port_child(which: str, model_name: str, reps: int) -> None:
    """Seconds per frame of the default preset's dream + zoom, one way, in a fresh process: the
    allocator setting is process-wide, and no way may inherit another's."""
    from zoomdream.engine.models import keep_freed_memory

    preset = load_preset("default")
    spec = preset.schedule().at(1)
    s, motion, fps = spec.dream, spec.motion, preset.fps
    layer = LAYERS[model_name]
    pretrained = model_name == "mobilenet_v2"  # the weights that are here; timing is the same
    device = torch.device("cpu")
    img = test_image(preset.width, device)
    torch.manual_seed(0)
    if which.startswith("zoomdream"):
        network = load_network(model_name, device=device, pretrained=pretrained)
        dreamer, objective = Dreamer(network, "bf16" if which.endswith("bf16") else "fp32"), parse_objective(layer)

        def frame():
            return move(dreamer(img, objective, s, frame_generator(0, 1)), motion, fps)
    else:
        cfg = PORTS[which][0]
        if cfg.allocator:
            keep_freed_memory()
        model, rng = port_model(model_name, pretrained, cfg), np.random.default_rng(0)

        def frame():
            return move(port_frame(model, layer, img, s, cfg, rng), motion, fps)
    print(json.dumps({"seconds": median_seconds(frame, device, 1, reps)}))


def _alternating(ways: list[str], model_name: str, reps: str, rounds: int) -> dict[str, float]:
    """Each way in a fresh process, the ways alternating round by round so a slow spell on a
    shared machine hits them all; the median of each way's rounds (each a median itself)."""
    times: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(rounds):
        for w in ways:
            times[w].append(child(["--port-child", w, model_name, reps])["seconds"])
    return {w: statistics.median(t) for w, t in times.items()}


def section_port(device: torch.device, quick: bool) -> list[str]:
    """One frame of the default preset (its dream settings and zoom) at 512 px, every way."""
    reps, rounds = ("2", 1) if quick else ("3", 2)
    ways = [*PORTS, "zoomdream", "zoomdream-bf16"]
    t = _alternating(ways, "mobilenet_v2", reps, rounds)
    rows = ["| way (mobilenet_v2, features.13, 512², one frame) | s/frame | zoomdream is faster by |", "|---|---|---|"]
    for w in ways:
        what = PORTS[w][1] if w in PORTS else ("zoomdream, bf16 autocast" if w.endswith("bf16") else "zoomdream")
        rows.append(f"| {what} | {t[w]:.3f} | {t[w] / t['zoomdream']:.2f}× |")
    g = _alternating(["naive", "zoomdream", "zoomdream-bf16"], "googlenet", reps, max(1, rounds - 1))
    rows.append(f"| googlenet inception4c: naive port / zoomdream fp32 / bf16 | {g['naive']:.3f} / "
                f"{g['zoomdream']:.3f} / {g['zoomdream-bf16']:.3f} | {g['naive'] / g['zoomdream']:.2f}× / "
                f"{g['naive'] / g['zoomdream-bf16']:.2f}× |")
    return rows


def child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench child {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# encode overlap: does writing the video hide behind dreaming?


def section_overlap(device: torch.device, quick: bool) -> list[str]:
    """A real render ÷ the same frames dreamed and moved without writing, alternating the two
    three times and taking each one's median."""
    frames = 12 if quick else 36
    preset = load_preset("default").with_overrides(frames=frames)
    network = load_network(preset.model, device=device)
    dreamer = Dreamer(network, preset.precision)
    loops, walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            state = LoopState(0, first_input(preset, None, device))
            for fr in dream_frames(dreamer, preset.schedule(), state, loop_settings(preset)):
                fr.image.cpu()  # the render reads every frame back too
            sync(device)
            loops.append(time.perf_counter() - t0)
            result = render(RenderJob(preset=preset, output=Path(tmp) / "overlap.mp4", device=str(device),
                                      overwrite=True, progress=False), log=lambda m: None)
            walls.append(result.seconds)
    loop_s, wall_s = statistics.median(loops), statistics.median(walls)
    return ["| frames | dream + move (s) | render wall (s) | overlap | default preset s/frame |", "|---|---|---|---|---|",
            f"| {frames} at {preset.width}×{preset.height} | {loop_s:.1f} | {wall_s:.1f} | {wall_s / loop_s:.3f} "
            f"| {wall_s / frames:.3f} |"]


# ---------------------------------------------------------------------------------------------
# scaling: each size in its own process, so peak memory is that size's alone


SCALES = [(256, 256), (512, 512), (1024, 1024), (2048, 2048), (3840, 2160)]


def _status_field(pid: str, key: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split()[1]
    except OSError:
        pass
    return None


def watch_children_peak(stop: threading.Event, peak_mb: list[float]) -> None:
    """The encoder's peak memory, read from /proc while it runs (RUSAGE_CHILDREN would report
    the Python parent's size, which a forked child carries until it execs)."""
    me = str(os.getpid())
    while not stop.wait(0.05):
        for proc in Path("/proc").iterdir():
            # Only once it is ffmpeg: before its exec a child is a copy of this process.
            if proc.name.isdigit() and _status_field(proc.name, "PPid") == me \
                    and "ffmpeg" in (_status_field(proc.name, "Name") or ""):
                hwm = _status_field(proc.name, "VmHWM")
                if hwm is not None:
                    peak_mb[0] = max(peak_mb[0], int(hwm) / 1024)


def scaling_child(width: int, height: int, frames: int, device: str) -> None:
    """One size's render in its own process (so peak memory is that size's alone); s/frame is
    the median of the frames after the first (the first builds kernels for the new sizes)."""
    preset = load_preset("default").with_overrides(width=width, height=height, frames=frames)
    # Frame 0's warm-up dream is a still's full octave stack; steady-state frames are the
    # question here, so it is left out.
    preset = replace(preset, warmup=False)
    peak_ffmpeg, stop = [0.0], threading.Event()
    watcher = threading.Thread(target=watch_children_peak, args=(stop, peak_ffmpeg), daemon=True)
    watcher.start()
    stamps = [time.perf_counter()]
    with tempfile.TemporaryDirectory() as tmp:
        render(RenderJob(preset=preset, output=Path(tmp) / "scale.mp4", device=device, progress=False,
                         on_frame=lambda n: stamps.append(time.perf_counter())), log=lambda m: None)
    stop.set()
    watcher.join()
    per_frame = [b - a for a, b in zip(stamps, stamps[1:])][1:]
    out = {"seconds_per_frame": statistics.median(per_frame),
           # VmHWM, not ru_maxrss: the latter counts this process's pre-exec life as a fork of
           # the (large) benchmark parent.
           "python_rss_mb": int(_status_field(str(os.getpid()), "VmHWM") or 0) / 1024,
           "ffmpeg_rss_mb": peak_ffmpeg[0]}
    if torch.cuda.is_available() and device != "cpu":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def section_scaling(device: torch.device, quick: bool) -> list[str]:
    rows = ["| size | megapixels | s/frame | s per megapixel | peak RAM, python (MB) | peak RAM, ffmpeg (MB) |"
            + (" GPU peak (MB) |" if device.type == "cuda" else ""),
            "|---|---|---|---|---|---|" + ("---|" if device.type == "cuda" else "")]
    scales = SCALES[:3] if quick else SCALES
    for w, h in scales:
        frames = 3 if w * h >= 2048 * 2048 else 5 if w * h >= 1024 * 1024 else 9
        r = child(["--scaling-child", str(w), str(h), str(frames), str(device)])
        mp = w * h / 1e6
        rows.append(f"| {w}×{h} | {mp:.2f} | {r['seconds_per_frame']:.2f} | {r['seconds_per_frame'] / mp:.2f} "
                    f"| {r['python_rss_mb']:.0f} | {r['ffmpeg_rss_mb']:.0f} |"
                    + (f" {r['gpu_peak_mb']:.0f} |" if "gpu_peak_mb" in r else ""))
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# soak: do 10,000 frames stay true (colour, speed, memory), and does the file hold them all?

SOAK_EVERY = 500  # a row every 500 frames; the first row is the reference
SOAK_WINDOW = 100  # colour figures: the mean over the 100 frames up to the row (one frame jumps with content)
# Speed: the 10th percentile of the row's frame times. A shared VM only ever adds time to a
# frame, so the fast end of 500 frames is what a frame costs; a run that slows itself (a leak,
# a growing list) moves it, and a busy neighbour does not. Medians moved ±20% from row to row
# with nothing else running, CPU seconds per frame by up to 43%, and the median ÷ a probe of
# the same dream work by ±10%; all three are shown beside it.
SOAK_FAST = 10


def dream_probe(preset: Preset, device: torch.device) -> Callable[[], float]:
    """A stopwatch for the machine's speed right now: seconds for one frame's dream (the
    preset's model, objective and steps) on a fixed picture, the median of three. A shared VM's
    speed changes by ±20% from minute to minute (measured), and a fixed convolution did not
    follow it (wall ÷ that probe moved ±20% too); the frame's own work does."""
    dreamer = Dreamer(load_network(preset.model, None, device), preset.precision)
    spec = preset.schedule().at(1)
    x = start_frame(preset.width, preset.height, "noise", 0, device)

    def probe() -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            dreamer(x, spec.objective, spec.dream, frame_generator(0, 1))
            times.append(time.perf_counter() - t0)
        return float(np.median(times))
    return probe


def soak_child(frames: int, size: int, device: str, output: str) -> None:
    """A long render of the default preset at a small size into `output`; the process's RSS at
    each row, every frame's wall time (from the end of the last frame's bookkeeping to this
    frame's end, so the probe is not counted) and, every 25 frames, the speed probe."""
    preset = load_preset("default").with_overrides(width=size, height=size, frames=frames)
    speed_probe = dream_probe(preset, torch.device(device))
    rss: dict[int, float] = {}
    seconds: list[float] = []
    probes: list[float] = []
    last = [time.perf_counter()]

    def sample(n: int) -> None:
        seconds.append(time.perf_counter() - last[0])
        if (n + 1) % 25 == 0:
            probes.append(speed_probe())
        if (n + 1) % SOAK_EVERY == 0:
            rss[n + 1] = int(_status_field("self", "VmRSS") or 0) / 1024
        last[0] = time.perf_counter()

    t0 = time.perf_counter()
    render(RenderJob(preset=preset, output=Path(output), device=device, progress=False, overwrite=True,
                     on_frame=sample), log=lambda m: None)
    rows = {}
    for f in rss:
        row = seconds[f - SOAK_EVERY:f]
        frame_s = float(np.median(row))
        probe_s = float(np.median(probes[(f - SOAK_EVERY) // 25:f // 25]))
        rows[f] = (frame_s, frame_s / probe_s, float(np.percentile(row, SOAK_FAST)))
    print(json.dumps({"rss": rss, "wall": {f: w for f, (w, _, _) in rows.items()},
                      "relative": {f: r for f, (_, r, _) in rows.items()},
                      "fast": {f: c for f, (_, _, c) in rows.items()}, "seconds": time.perf_counter() - t0}))


def frame_figures(frame: np.ndarray) -> tuple[float, float, float]:
    """Mean brightness (Rec. 709 luma, 0–255), mean HSV saturation (0–1) and contrast (the
    luma's standard deviation) of one frame."""
    rgb = frame.astype(np.float64)
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722])
    hi, lo = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0.0)
    return float(luma.mean()), float(saturation.mean()), float(luma.std())


def section_soak(device: torch.device, quick: bool) -> list[str]:
    """The default preset for 10,000 frames at 96²: every 500 frames its brightness,
    saturation, contrast, s/frame and RSS, each against its value at frame 500 (±5%)."""
    from zoomdream.media.clip import probe, read_frames

    frames, size = (1000, 96) if quick else (10_000, 96)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "soak.mp4"
        r = child(["--soak-child", str(frames), str(size), str(device), str(out)])
        decoded = probe(out).frames
        figures = np.array([frame_figures(f) for f in read_frames(out)])
        finite = bool(np.isfinite(figures).all())
    rows = sorted(int(f) for f in r["rss"])
    table = {f: [*figures[max(0, f - SOAK_WINDOW):f].mean(axis=0), r["fast"][str(f)], r["rss"][str(f)]]
             for f in rows}
    names = ["brightness", "saturation", "contrast", f"s/frame (p{SOAK_FAST})", "RSS MB"]
    ref = table[rows[0]]
    worst = [max(abs(table[f][i] / ref[i] - 1) for f in rows) for i in range(len(names))]
    # Speed counts one way: a long run must not make a frame cost more; a faster row is the
    # shared machine (over one 10,000-frame run every row was 8–33% faster than frame 500's).
    slowest = max(table[f][3] / ref[3] - 1 for f in rows)
    out_rows = ["| frame | " + " | ".join(names) + " | median s/frame | median ÷ probe |",
                "|---" * (len(names) + 3) + "|"]
    for f in rows:
        out_rows.append(f"| {f} | " + " | ".join(f"{v:.4g} ({v / ref[i] - 1:+.1%})" if f != rows[0] else f"{v:.4g}"
                                                   for i, v in enumerate(table[f]))
                        + f" | {r['wall'][str(f)]:.3f} | {r['relative'][str(f)]:.3g} |")
    held = max(worst[:3] + worst[4:]) <= 0.05 and slowest <= 0.05
    verdict = "colour and memory within ±5%, no row slower than +5%" if held else "OUT OF ±5%"
    # The same colour figures over each row's whole 500 frames: wandering with the content
    # averages out there, a drift does not.
    whole = {f: figures[f - SOAK_EVERY:f].mean(axis=0) for f in rows}
    drift = [max(abs(whole[f][i] / whole[rows[0]][i] - 1) for f in rows) for i in range(3)]
    out_rows += ["", f"largest deviation from frame {rows[0]}: " + ", ".join(f"{n} {w:.1%}" for n, w in zip(names, worst))
                 + f"; slowest row {slowest:+.1%} ({verdict}); {decoded} frames decoded of {frames}"
                 + f"; NaN/inf: {'none' if finite else 'FOUND'} (the loop stops on any); "
                 f"{r['seconds'] / 60:.1f} min in all",
                 "", "over each row's 500 frames: largest deviation " + ", ".join(
                     f"{n} {w:.1%}" for n, w in zip(names, drift))]
    return out_rows


# ---------------------------------------------------------------------------------------------
# codecs: what each codec and pixel format keeps of a dream, at what size and encode time

CODEC_CASES = [("h264", "yuv420p"), ("h264", "yuv444p"), ("h264", "yuv420p10le"), ("h265", "yuv420p"),
               ("h265", "yuv420p10le"), ("av1", "yuv420p"), ("av1", "yuv420p10le"), ("vp9", "yuv420p"),
               ("vp9", "yuv444p"), ("prores", "yuv422p10le"), ("prores", "yuv444p10le"), ("ffv1", "rgb")]


def section_codecs(device: torch.device, quick: bool) -> list[str]:
    """The default preset's frames at 512² (lossless, in memory), encoded by each codec and
    pixel format at its default quality as a render does on this CPU, then decoded: PSNR and
    SSIM against the lossless frames, MB per minute of video, encode ms per frame."""
    from skimage.metrics import structural_similarity

    from zoomdream.media.clip import read_frames
    from zoomdream.media.codecs import CODECS, resolved_crf
    from zoomdream.media.writer import Encoder

    n = 12 if quick else 48
    frames = list(zoomdream.frames("default", frames=n, device=str(device)))
    fps = load_preset("default").fps
    rows = ["| codec | pixel format | crf | PSNR (dB) | SSIM | MB per minute | encode ms/frame |",
            "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, pix_fmt in CODEC_CASES[:4] if quick else CODEC_CASES:
            codec, crf = CODECS[name], resolved_crf(name, None)
            out = Path(tmp) / f"{name}-{pix_fmt}{codec.containers[0]}"
            t0 = time.perf_counter()
            enc = Encoder(out, 512, 512, fps, codec.args(pix_fmt, crf, "medium", out.suffix))
            for f in frames:
                enc.write(f)
            enc.close()
            ms = (time.perf_counter() - t0) / n * 1000
            decoded = read_frames(out)
            mse = np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(frames, decoded)])
            psnr = "lossless" if mse == 0 else f"{10 * np.log10(255 ** 2 / mse):.1f}"
            ssim = np.mean([structural_similarity(a, b, channel_axis=2) for a, b in zip(frames[::4], decoded[::4])])
            mb_min = out.stat().st_size / 1e6 / (n / fps) * 60
            rows.append(f"| {name} | {pix_fmt} | {crf if crf is not None else '-'} | {psnr} | {ssim:.4f} | "
                        f"{mb_min:.1f} | {ms:.0f} |")
    return rows


# ---------------------------------------------------------------------------------------------
# precision: is a faster format still the same dream?


def section_precision(device: torch.device, quick: bool) -> list[str]:
    """mobilenet_v2 with its real weights on a real photo, where gradient agreement says
    something about the dreams; googlenet with random weights, for the timings."""
    # (precision, channels_last, float32 head, label): half precision keeps the layers at stride
    # ≤ 2 in float32 (catalog.float32_layers); the "every layer" rows show what that buys.
    variants = [("fp32", False, True, "fp32"), ("fp32", True, True, "fp32 + channels_last")]
    for half in ("bf16", "fp16") if device.type == "cuda" else ("bf16",):
        variants += [(half, False, True, f"{half} autocast"), (half, True, True, f"{half} autocast + channels_last"),
                     (half, True, False, f"{half} autocast + channels_last, every layer {half}")]
    rows = ["| model | size | format | ms/step | vs fp32 | gradient cosine | sign agreement |",
            "|---|---|---|---|---|---|---|"]
    size = 512
    img = photo(size, device)
    for model_name, layer in LAYERS.items():
        pretrained = model_name == "mobilenet_v2"
        objective = parse_objective(layer)
        dreamers, random_state = {}, None
        for precision, cl, head, label in variants:
            network = load_network(model_name, device=device, pretrained=pretrained, channels_last=cl)
            network.float32_head = head
            if not pretrained:  # the same random weights for every variant
                random_state = random_state or network.module.state_dict()
                network.module.load_state_dict(random_state)
            dreamers[label] = Dreamer(network, precision)
        grads = {label: d.gradient(img, objective)[0].flatten() for label, d in dreamers.items()}
        # the variants alternate rep by rep: a slow spell hits them all alike
        t = interleaved_medians({label: (lambda d=d: d.gradient(img, objective)) for label, d in dreamers.items()},
                                device, 2, 3 if quick else 7)
        reference, fp32_t = grads["fp32"], t["fp32"]
        for label, g in grads.items():
            cos = float(F.cosine_similarity(g, reference, dim=0))
            sign = float((torch.sign(g) == torch.sign(reference)).float().mean())
            what = f"{model_name} {layer}" + ("" if pretrained else " (random weights)")
            rows.append(f"| {what} | {size} | {label} | {t[label] * 1e3:.0f} | {fp32_t / t[label]:.2f}× | {cos:.4f} "
                        f"| {sign:.1%} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# smoothness, cadence, draft: how the video moves, and what cadence and drafts buy


def before_momentum(preset):
    """A preset as it was before momentum: no momentum, steps 2.5× smaller (presets' step sizes
    grew by 2.5× with it: each frame now steps (1 - 0.9) of them)."""
    def smaller(v):  # a number, or an expression (music: "0.02 + 0.04*bass")
        return parse(f"({v}) / 2.5", "step_size") if isinstance(v, Expr) else v / 2.5

    def older(key: str, p: Param) -> tuple[str, Param]:
        return key, Param(tuple((t, smaller(v)) for t, v in p.keys), p.ease) if key == "step_size" else p

    segs = tuple(replace(seg, params=tuple(older(k, p) for k, p in seg.params)) for seg in preset.segments)
    return replace(preset.with_overrides(momentum=0), segments=segs)


def section_smoothness(device: torch.device, quick: bool) -> list[str]:
    """Every shipped preset: a photo for those that start from one, the made-up song of
    tests/clips.py for those that listen to one (music)."""
    media = made_up()
    from zoomdream.media.audio import features as audio_features

    size, frames = (128, 24) if quick else (256, 72)
    with tempfile.TemporaryDirectory() as tmp:
        photo = str(Path(tmp) / "chelsea.png")
        from skimage import data

        save_image(photo, data.chelsea())
        rows = [f"| preset ({size}², {frames} frames) | P before | E8 before | P | E8 | E1 |", "|---|---|---|---|---|---|"]
        for name in preset_paths():
            p = load_preset(name).with_overrides(size=f"{size}x{size}", frames=frames)
            sound = media.write_audio(Path(tmp) / "song.wav", media.song(frames / p.fps + 1)) if p.reads_audio else None
            feats = None if sound is None else audio_features(sound, p.fps, frames).per_frame
            old, new = (frames_smoothness(zoomdream.frames(q, photo, audio=sound, device=str(device), frames=frames),
                                          q.check_expressions(feats), q.fps) for q in (before_momentum(p), p))
            rows.append(f"| {name} | {old.persistence:.2f} | {old.E8:.1f} | {new.persistence:.2f} | {new.E8:.1f} "
                        f"| {new.E1:.1f} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def render_rate(preset, device: torch.device) -> tuple[Smoothness, float]:
    """A real render's smoothness and seconds per output frame after frame 0 (whose warm-up
    dream is a fixed cost, not a rate)."""
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        res = render(RenderJob(preset=preset, output=Path(tmp) / "c.mp4", device=str(device), progress=False,
                               on_frame=lambda n: stamps.append(time.perf_counter())), log=lambda m: None)
    return res.smoothness, (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def loop_rate(preset, device: torch.device) -> float:
    """Seconds per frame of the frame loop alone (no encoder beside it), after frame 0."""
    stamps = [time.perf_counter() for _ in zoomdream.frames(preset, device=str(device))]
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def section_cadence(device: torch.device, quick: bool) -> list[str]:
    # 1 + 48 frames: the rate is timed after frame 0, over whole cadence periods. With 48, the
    # last two frames at cadence 3 wait for a 17th dream (frame 48, never shown): 16 dreams
    # for 47 frames, which caps the ratio at 2.94 instead of 3.
    size, frames, rounds = (256, 25, 1) if quick else (512, 49, 3)
    base = load_preset("default").with_overrides(size=f"{size}x{size}", frames=frames)
    runs: dict[int, list[tuple[Smoothness, float]]] = {1: [], 3: []}
    loops: dict[int, list[float]] = {1: [], 3: []}
    for _ in range(rounds):  # alternating, so that both see the same machine
        for k in runs:
            runs[k].append(render_rate(base.with_overrides(cadence=k), device))
            loops[k].append(loop_rate(base.with_overrides(cadence=k), device))
    rows = [f"| cadence ({size}², {frames} frames) | render: s/output frame (median of {rounds}) | frame loop alone "
            "(no encoder) | P | E8 |", "|---|---|---|---|---|"]
    per = {k: statistics.median(s for _, s in r) for k, r in runs.items()}
    alone = {k: statistics.median(r) for k, r in loops.items()}
    for k, r in runs.items():
        sm = r[0][0]
        rows.append(f"| {k} | {per[k]:.3f} | {alone[k]:.3f} | {sm.persistence:.2f} | {sm.E8:.1f} |")
    rows.append(f"| 3 vs 1 | {per[1] / per[3]:.2f}× fewer | {alone[1] / alone[3]:.2f}× fewer | | |")
    return rows


def section_draft(device: torch.device, quick: bool) -> list[str]:
    preset = load_preset("default").with_overrides(**({"seconds": 2} if quick else {}))
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for draft in (False, True):
            t0 = time.perf_counter()
            zoomdream.render(Path(tmp) / f"{draft}.mp4", preset, device=str(device), draft=draft)
            seconds[draft] = time.perf_counter() - t0
    return ["| default preset | full | --draft | ratio |", "|---|---|---|---|",
            f"| {preset.frames} frames, {preset.width}x{preset.height} | {seconds[False]:.1f} s | {seconds[True]:.1f} s "
            f"| {seconds[False] / seconds[True]:.1f}× |"]


def section_video(device: torch.device, quick: bool) -> list[str]:
    """`zoomdream video` on a generated 512×384 clip (tests/clips.py): seconds per frame,
    the share of it the optical flow takes, and the flicker of each way to carry the dream."""
    media = made_up()
    from zoomdream.media import clip as clips
    from zoomdream.engine.images import grey
    from zoomdream.loops.flow import FlowMethod, consistent, pair, soft, warp_flow
    from zoomdream.run.jobs import FootageJob, footage_preset
    from zoomdream.run.render import render_footage

    w, h, n = (256, 192, 12) if quick else (512, 384, 24)
    ways = {"dis (default)": {}, "farneback": {"flow": "farneback"}, "off (carried in place)": {"flow": "off"},
            "each frame alone (blend 0)": {"blend": 0.0}}
    rows = [f"| {w}×{h}, {n} frames, footage preset | s/frame | warping error | source's |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        clip = clips.probe(media.write_clip(Path(tmp) / "in.mp4", media.camera_path(n, w, h)))
        preset = footage_preset(load_preset("footage"), clip)
        per = {}
        for name, kw in ways.items():
            stamps: list[float] = []
            job = FootageJob(preset=preset, clip=clip, output=Path(tmp) / "o.mp4", input=clip.path,
                             device=str(device), progress=False, overwrite=True,
                             on_frame=lambda _: stamps.append(time.perf_counter()), **kw)
            res = render_footage(job, log=lambda m: None)
            per[name] = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
            co = res.coherence
            rows.append(f"| {name} | {per[name]:.3f} | {co.output.value:.5f} | {co.source.value:.5f} |")
            print(rows[-1], file=sys.stderr, flush=True)
        frames = list(clips.read(clip, w, h))
        dis = FlowMethod("dis")
        residual = torch.rand(1, 3, h, w) - 0.5

        def flow_work() -> None:  # what a frame spends on flow: both ways, both masks, the carry
            for a, b in zip(frames, frames[1:]):
                f = pair(dis, grey(a), grey(b))
                soft(consistent(f.backward, f.forward))
                consistent(f.forward, f.backward)
                warp_flow(residual, f.backward)

        flow = median_seconds(flow_work, device, 1, 3) / (len(frames) - 1)
    share = flow / per["dis (default)"]
    rows += ["", "| flow per frame (DIS both ways, consistency masks, carry) | share of the frame |", "|---|---|",
             f"| {flow * 1000:.1f} ms | {share:.1%} |"]
    return rows


def section_audio(device: torch.device, quick: bool) -> list[str]:
    """Analysing a 3-minute soundtrack (tests/clips.song: a 120 BPM kick, a bass line, hi-hats,
    a noise bed, as MP3): decoding, librosa's analysis and resampling to 24 fps, in a fresh
    process as a render does it (librosa's import and its cached numba kernels included), and
    again warm."""
    media = made_up()
    secs = 60 if quick else 180
    with tempfile.TemporaryDirectory() as tmp:
        song = media.write_audio(Path(tmp) / "song.mp3", media.song(secs))
        code = ("import time, sys; t0 = time.perf_counter(); from zoomdream import audio; "
                "f = audio.features(sys.argv[1], 24); print(time.perf_counter() - t0, len(f.beats), f.tempo)")
        cold = subprocess.run([sys.executable, "-c", code, str(song)], capture_output=True, text=True, check=True)
        first, beats, tempo = cold.stdout.split()
        from zoomdream.media import audio

        audio.features(song, 24)
        warm = median_seconds(lambda: audio.features(song, 24), device, 0, 3)
    return [f"| {secs} s track (MP3) | fresh process (import + decode + analysis) | warm | beats found | tempo |",
            "|---|---|---|---|---|",
            f"| 120 BPM, 24 fps | {float(first):.1f} s | {warm:.2f} s | {beats} (of {secs * 2}) | {float(tempo):.0f} |"]


def look_figures(dreamer: Dreamer, img: torch.Tensor, objective: str, settings: DreamSettings) -> dict[str, float]:
    """One dream of `img`: the objective's rise per second of dreaming, the share of the added
    detail's energy above half the Nyquist frequency, colourfulness and clipped pixels."""
    from zoomdream.engine.dream import DreamStats
    from zoomdream.engine.measure import clipped_share, colourfulness, high_frequency_share

    obj = parse_objective(objective)
    before = dreamer.evaluate(img, obj)
    stats = DreamStats()
    out = dreamer(img, obj, settings, torch.Generator().manual_seed(0), stats)
    rise = dreamer.evaluate(out, obj) - before
    return {"rise": rise / stats.seconds, "per_step": rise / stats.steps, "hf": high_frequency_share(out - img),
            "colour": colourfulness(out), "clipped": clipped_share(out)}


def section_look(device: torch.device, quick: bool) -> list[str]:
    """Each preconditioning mode on four photos and the default preset's noise, at `zoomdream
    dream`'s settings and at the default preset's: the objective's rise per second, the added
    detail's share above half Nyquist, colourfulness (Hasler–Süsstrunk), clipped pixels; and
    the default preset rendered (256², 72 frames): persistence P and E8. Means over the
    inputs; rise per second as a ratio to `none`'s on the same input."""
    from zoomdream.base.settings import PRECONDITIONS

    clips = made_up()
    size = 256 if quick else 512
    inputs = {k: to_tensor(v, device) for k, v in clips.look_inputs(size).items()}
    dreamer = Dreamer(load_network("mobilenet_v2", device=device))
    frame = load_preset("default").schedule().at(1).dream
    cases = {"dream defaults": DreamSettings(), "default preset": replace(frame, step_size=0.03)}
    rows = ["| settings | mode | rise/s vs none | rise/step vs none | HF share | colourfulness | clipped | P | E8 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for label, settings in cases.items():
        figures: dict[str, dict[str, dict[str, float]]] = {m: {} for m in PRECONDITIONS}
        for k, img in inputs.items():  # the modes alternate, so a slow spell hits them all
            for m in PRECONDITIONS:
                figures[m][k] = look_figures(dreamer, img, "features.13", replace(settings, precondition=m))
        for m in PRECONDITIONS:
            f = figures[m]
            rise = statistics.mean(f[k]["rise"] / figures["none"][k]["rise"] for k in inputs)
            per_step = statistics.mean(f[k]["per_step"] / figures["none"][k]["per_step"] for k in inputs)
            mean = {q: statistics.mean(f[k][q] for k in inputs) for q in ("hf", "colour", "clipped")}
            moved = ""
            if label == "default preset":
                preset = load_preset("default").with_overrides(size="256x256", frames=48 if quick else 72,
                                                                precondition=m)
                sm, _ = render_rate(preset, device)
                moved = f" {sm.persistence:.2f} | {sm.E8:.1f} |"
            rows.append(f"| {label} | {m} | {rise:.2f} | {per_step:.2f} | {mean['hf']:.3f} | {mean['colour']:.1f} | "
                        f"{100 * mean['clipped']:.2f}% |" + (moved or " | |"))
    return rows


def live_figures(page, trials: int, seconds: float) -> dict[str, float]:
    """Frames shown per second over `seconds`, then `trials` zoom changes each timed from the
    message sent to the arrival of the first frame that shows it (a random moment of the
    dream each time: the page keeps receiving in between)."""
    import random

    rng = random.Random(0)
    arrivals: list[tuple[int, float]] = []

    def watch(until: float, stop_at: int | None = None) -> None:
        while (left := until - time.perf_counter()) > 0:
            try:
                m = page.next(lambda m: m["type"] in ("frame", "set"), timeout=left)
            except TimeoutError:
                return
            if m["type"] == "frame":
                arrivals.append((m["n"], time.perf_counter()))
                if stop_at is not None and m["n"] >= stop_at:
                    return

    t0 = time.perf_counter()
    watch(t0 + seconds)
    shown = [a for a in arrivals if a[1] >= t0 + 1]
    rate = (len(shown) - 1) / (shown[-1][1] - shown[0][1])
    latencies = []
    for i in range(trials):
        watch(time.perf_counter() + rng.uniform(0.2, 0.8))
        sent = time.perf_counter()
        page.send({"type": "set", "key": "zoom", "value": 1.5 if i % 2 == 0 else 1.25})
        ack = page.next(lambda m: m["type"] in ("set", "error"), timeout=120)
        assert ack["type"] == "set", ack
        watch(time.perf_counter() + 120, stop_at=ack["frame"])
        latencies.append(next(t for n, t in arrivals if n >= ack["frame"] and t >= sent) - sent)
    lat = sorted(latencies)
    return {"fps": rate, "median": statistics.median(lat), "p90": lat[int(0.9 * (len(lat) - 1))], "max": lat[-1]}


def section_live(device: torch.device, quick: bool) -> list[str]:
    """`zoomdream live` as a user runs it (its own process, a page's WebSocket): frames shown
    per second and control-to-frame latency, at 256² on a CPU and 1280×720 on a GPU, with the
    re-dreaming of a frame a change arrives for (the default) and without."""
    made_up()
    from livepage import LiveServer, Page

    size = "256x256" if device.type == "cpu" else "1280x720"
    rows = ["| size | cadence | re-dream on change | frames/s shown | s/frame | latency median | p90 | max |",
            "|---|---|---|---|---|---|---|---|"]
    cases = [(2 if device.type == "cpu" else 1, "1"), (1, "1"), (2 if device.type == "cpu" else 1, "0")]
    for cadence, again in cases[:1] if quick else cases:
        with tempfile.TemporaryDirectory() as d:
            with LiveServer("--size", size, "--cadence", str(cadence), "--device", device.type, "--out", d, "--no-osc",
                            cwd=Path(d), env={"ZOOMDREAM_LIVE_AGAIN": again}) as server:
                page = Page(server.ws_url)
                page.frame_at_least(24, timeout=600)  # past the warm-up dream of frame 0
                f = live_figures(page, 6 if quick else 24, 4 if quick else 10)
                page.close()
        rows.append(f"| {size} | {cadence} | {'yes' if again == '1' else 'no'} | {f['fps']:.1f} | {1 / f['fps']:.3f} | "
                    f"{f['median']:.2f} s | {f['p90']:.2f} s | {f['max']:.2f} s |")
    return rows


# Peak memory bandwidth of the GPUs the docs quote (the vendors' figures for the SXM parts).
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12}


M = TypeVar("M", bound=TorchDispatchMode)


def watched_frames(mode: M, preset: Preset, device: torch.device, skip: int, count: int) -> M:
    """`mode` (bench/ops.py) over `count` frames of a preset's frame loop, after `skip` frames
    that set it up (the network loaded, CUDA graphs captured)."""
    frames = zoomdream.frames(replace(preset.with_overrides(frames=skip + count), warmup=False), device=str(device))
    for _ in range(skip):
        next(frames)
    with mode:
        for _ in range(count):
            next(frames)
    return mode


def frame_traffic(preset: Preset, device: torch.device) -> ops.Traffic:
    """Bytes one frame of a preset's zoom moves through memory (the third frame: the first two
    set up), op by op, the frame dreamed whole as on a GPU and eager (a CUDA graph replays the
    same kernels, so it moves the same bytes)."""
    with scoped_env(ZOOMDREAM_CUDA_GRAPHS="0"):
        return watched_frames(ops.Traffic(), preset.with_overrides(tile=16384), device, 2, 1)


def section_traffic(device: torch.device, quick: bool) -> list[str]:
    """The default preset's memory traffic per frame (bench/ops.py counts each operation's
    reads and writes), and the time that traffic takes at a GPU's full memory bandwidth: the
    floor that unfused kernels cannot beat. The same count on any device."""
    sizes = [(256, 256), (512, 512)] if quick else [(512, 512), (1920, 1080), (3840, 2160)]
    floors = " | ".join(f"floor on an {gpu} ({bw / 1e12:.2f} TB/s), ms" for gpu, bw in BANDWIDTH.items())
    rows = [f"| default preset, one frame | GB moved | ops | {floors} |", "|---|---|---|" + "---|" * len(BANDWIDTH)]
    largest = None
    for w, h in sizes:
        t = frame_traffic(load_preset("default").with_overrides(width=w, height=h), device)
        cells = " | ".join(f"{t.total / bw * 1e3:.2f}" for bw in BANDWIDTH.values())
        rows.append(f"| {w}×{h} | {t.total / 1e9:.3f} | {sum(t.calls.values())} | {cells} |")
        print(rows[-1], file=sys.stderr, flush=True)
        largest = (w, h, t)
    w, h, t = largest
    rows += ["", f"| operation ({w}×{h}) | calls per frame | GB | share |", "|---|---|---|---|"]
    for name, moved in t.by_op.most_common(10):
        rows.append(f"| {name} | {t.calls[name]} | {moved / 1e9:.3f} | {moved / t.total:.1%} |")
    return rows


SECTIONS = {"overhead": None, "port": section_port, "overlap": section_overlap, "scaling": section_scaling,
            "precision": section_precision, "soak": section_soak, "smoothness": section_smoothness,
            "cadence": section_cadence, "draft": section_draft, "video": section_video, "audio": section_audio,
            "live": section_live, "look": section_look, "codecs": section_codecs, "traffic": section_traffic}


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu}, {torch.get_num_threads()} threads"
    return f"{where}; torch {torch.__version__}, {platform.python_implementation()} {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a smoke run)")
    ap.add_argument("--scaling-child", nargs=4, metavar=("W", "H", "FRAMES", "DEVICE"), help=argparse.SUPPRESS)
    ap.add_argument("--port-child", nargs=3, metavar=("WHICH", "MODEL", "REPS"), help=argparse.SUPPRESS)
    ap.add_argument("--soak-child", nargs=4, metavar=("FRAMES", "SIZE", "DEVICE", "OUTPUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.soak_child:
        frames, size, dev, output = args.soak_child
        return soak_child(int(frames), int(size), dev, output)
    if args.port_child:
        which, model, reps = args.port_child
        return port_child(which, model, int(reps))
    if args.scaling_child:
        w, h, n, dev = args.scaling_child
        return scaling_child(int(w), int(h), int(n), dev)

    from zoomdream.engine.models import resolve_device

    device = resolve_device(args.device)
    print(f"# zoomdream benchmark\n\nmachine: {machine(device)}\n", flush=True)
    t_all = time.perf_counter()
    sizes = [256, 512] if args.quick else [256, 512, 1024]
    for name in args.only or list(SECTIONS):
        t0 = time.perf_counter()
        rows = section_overhead(device, sizes, args.quick) if name == "overhead" else SECTIONS[name](device, args.quick)
        print(f"## {name}  ({time.perf_counter() - t0:.0f} s)\n\n" + "\n".join(rows) + "\n", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    main()
