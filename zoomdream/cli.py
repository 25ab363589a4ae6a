"""The `zoomdream` command. Every user error ends as one line on stderr and exit status 2;
internal errors exit 1 with a short line; `--debug` shows the traceback."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

try:  # typer ≥ 0.25 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException

from .errors import UserError
from .paths import check_dream_paths, check_render_paths

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  rich_markup_mode=None, help="DeepDream infinite-zoom videos.")
presets_app = typer.Typer(help="List shipped presets, or show one.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")

def _echo(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@app.command()
def dream(
    image: Path = typer.Argument(..., help="Photo to dream on."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the dreamed image (.png, .jpg…)."),
    model: str = typer.Option(None, help="Backbone (see `zoomdream layers`). Default: mobilenet_v2."),
    objective: str = typer.Option(None, help="Layer, LAYER:CH,…, class:NAME, guide:IMG@LAYER or weighted sums."),
    octaves: int = typer.Option(None, help="Number of octaves (scales)."),
    octave_scale: float = typer.Option(None, help="Size ratio between octaves (classic: 1.4)."),
    steps: int = typer.Option(None, help="Gradient steps per octave."),
    step_size: float = typer.Option(None, help="Mean pixel change per step, in 0–1 units."),
    jitter: int = typer.Option(None, help="Random roll per step, in pixels."),
    tile: int = typer.Option(None, help="Largest side sent through the network at once (0: never tile)."),
    size: int = typer.Option(512, help="Long side of the image to dream, in pixels (0: keep the photo's size)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same image."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    weights: Optional[Path] = typer.Option(None, help="A torchvision state_dict file for the model."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (GPU)."),
    overwrite: bool = typer.Option(False, help="Replace the output if it exists."),
) -> None:
    """Dream a single image."""
    check_dream_paths(image, output, weights, overwrite)  # in a blink, before torch loads
    from . import images
    from .dream import Dreamer, DreamStats
    from .models import DEFAULT_MODEL, load_network
    from .objectives import DEFAULT_OBJECTIVE, parse_objective
    from .presets import SEED, check_number, dream_settings

    if size != 0 and not images.MIN_SIDE <= size <= images.MAX_SIDE:
        raise UserError(f"--size {size} is out of range", f"use {images.MIN_SIDE}–{images.MAX_SIDE}, or 0 to keep "
                        "the photo's size")
    check_number(seed, "--seed", SEED, "command line")
    given = dict(octaves=octaves, octave_scale=octave_scale, steps=steps, step_size=step_size, jitter=jitter, tile=tile)
    settings = dream_settings({k: v for k, v in given.items() if v is not None})
    obj = parse_objective(objective or DEFAULT_OBJECTIVE)
    img = images.load_image(image)
    images.check_min_size(img, f"input image {image}")
    if size:
        img = images.resize_long_side(img, size)
    net = load_network(model or DEFAULT_MODEL, weights, device)
    dreamer = Dreamer(net, precision)
    dreamer.bound(obj)
    x = images.to_tensor(img, net.device)
    before = dreamer.evaluate(x, obj)
    stats = DreamStats()
    import torch

    out = dreamer(x, obj, settings, torch.Generator().manual_seed(seed), stats)
    after = dreamer.evaluate(out, obj)
    images.save_image(output, out)
    h, w = img.shape[:2]
    print(f"model      {net.backbone.name} (weights: {net.source.kind} {net.source.entry}) on {net.device}")
    print(f"objective  {obj}")
    print(f"image      {w}x{h}, {stats.steps} steps in {stats.seconds:.1f} s = {stats.seconds_per_step:.3f} s/step")
    gain = f"{after / before:.2f}x" if before > 0 else "n/a"
    print(f"objective  {before:.4g} -> {after:.4g} (gain {gain})")
    print(f"wrote      {output}")


@app.command()
def render(
    input: Optional[Path] = typer.Argument(None, help="Start photo (optional; presets start from noise otherwise)."),
    output: Path = typer.Option(..., "-o", "--output", help="Video to write (.mp4)."),
    preset: str = typer.Option("default", help="Preset name (see `zoomdream presets`) or a .toml file."),
    seconds: Optional[float] = typer.Option(None, help="Video length in seconds (stretches the preset's timeline)."),
    frames: Optional[int] = typer.Option(None, help="Video length in frames (instead of --seconds)."),
    fps: Optional[float] = typer.Option(None, help="Frames per second (motion is per second, so it looks the same)."),
    size: Optional[str] = typer.Option(None, help="Frame size WIDTHxHEIGHT, e.g. 1280x720 (even numbers)."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    model: Optional[str] = typer.Option(None, help="Override the preset's backbone."),
    weights: Optional[Path] = typer.Option(None, help="A torchvision state_dict file for the model."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16 (GPU)."),
    crf: Optional[int] = typer.Option(None, help="H.264 quality, 0–51 (lower is better; default 18)."),
    loop: Optional[bool] = typer.Option(None, "--loop/--no-loop", help="Make the video loop seamlessly."),
    resume: bool = typer.Option(False, help="Continue an interrupted render of the same output."),
    overwrite: bool = typer.Option(False, help="Replace the output (and any unfinished render of it)."),
    frames_dir: Optional[Path] = typer.Option(None, help="Also keep every frame as a lossless PNG here."),
    gif: Optional[Path] = typer.Option(None, help="Also write a short GIF preview."),
    checkpoint_every: int = typer.Option(24, help="Frames between checkpoints."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Render an infinite-zoom dream video."""
    check_render_paths(output, input, preset, weights, frames_dir, gif, overwrite or resume)
    from .presets import load_preset, parse_size
    from .render import RenderJob
    from .render import render as do_render

    p = load_preset(preset)
    if frames is not None and seconds is not None:
        raise UserError("both --frames and --seconds given", "keep one of them")
    w, h = parse_size(size, "--size") if size else (None, None)
    p = p.with_overrides(seconds=seconds, frames=frames, fps=fps, width=w, height=h, seed=seed, model=model,
                         precision=precision, crf=crf, loop=loop)
    if checkpoint_every < 1:
        raise UserError("--checkpoint-every must be at least 1", "use e.g. 24")
    job = RenderJob(p, output, str(input) if input else None, device, str(weights) if weights else None,
                    frames_dir, gif, resume, overwrite, checkpoint_every, progress=not quiet)
    t0 = time.perf_counter()
    res = do_render(job)
    wall = time.perf_counter() - t0
    if res.interrupted:
        _echo(f"interrupted: {res.frames} of {res.total} frames are in {res.output}; "
              f"continue with the same command plus --resume")
        raise typer.Exit(143 if res.signal == "SIGTERM" else 130)
    print(f"frames     {res.frames} at {p.fps:g} fps ({res.frames / p.fps:.1f} s of video), {p.width}x{p.height}")
    print(f"time       {wall:.1f} s wall, {res.seconds_per_frame:.2f} s/frame")
    print(f"stability  {res.stability:.2f} (mean |frame[n+1] - move(frame[n])|, 0-255)")
    print(f"wrote      {res.output}")


@app.command()
def layers(model: str = typer.Argument("mobilenet_v2", help="Backbone name.")) -> None:
    """List a model's dreamable layers with channels and stride."""
    from .models import BACKBONES, describe_layers, get_backbone

    backbone = get_backbone(model)
    print(f"{backbone.name}: layers (channels, stride at the input); models: {', '.join(BACKBONES)}")
    for info in describe_layers(backbone):
        stride = "global" if info.name == "logits" else f"/{info.stride}"
        print(f"  {info.name:<14} {info.channels:>5} ch  {stride:<7} {info.kind}")


@presets_app.callback()
def presets_list(ctx: typer.Context) -> None:
    """List the shipped presets."""
    if ctx.invoked_subcommand is not None:
        return
    from .presets import load_preset, preset_paths

    for name in preset_paths():
        p = load_preset(name)
        print(f"{name:<16} {p.frames:>4} frames {p.width}x{p.height} {p.model:<13} {p.description}")


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., help="Preset name or file.")) -> None:
    """Print one preset's TOML."""
    from .presets import load_preset, preset_paths

    p = load_preset(name)
    path = preset_paths().get(name, Path(p.source))
    print(path.read_text(encoding="utf-8"), end="")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        rv = app(args=args, prog_name="zoomdream", standalone_mode=False)
        if isinstance(rv, int) and rv:  # typer returns Exit codes when not standalone
            sys.exit(rv)
    except typer.Exit as e:
        sys.exit(getattr(e, "exit_code", 0))
    except typer.Abort:
        _echo("zoomdream: aborted")
        sys.exit(130)
    except ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            print(e.ctx.get_help() if getattr(e, "ctx", None) else "zoomdream --help")
            sys.exit(0)
        if debug:
            raise
        hint = f" (see: zoomdream {e.ctx.command.name if getattr(e, 'ctx', None) and e.ctx else ''} --help)"
        _echo(f"zoomdream: error: {e.format_message()}{hint.replace('  ', ' ')}")
        sys.exit(2)
    except UserError as e:
        if debug:
            raise
        _echo(f"zoomdream: error: {e}")
        sys.exit(2)
    except FloatingPointError as e:
        if debug:
            raise
        _echo(f"zoomdream: numerical failure: {e}; try a smaller --step-size")
        sys.exit(1)
    except KeyboardInterrupt:
        _echo("zoomdream: interrupted")
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        _echo(f"zoomdream: internal error: {type(e).__name__}: {msg} (run with --debug for the traceback)")
        sys.exit(1)
