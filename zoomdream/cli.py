"""The `zoomdream` command: a thin adapter over the Python API (api.py). Its flags, their help
and their ranges come from the settings' declarations (base/settings.py, timeline/presets.py),
and every flag defaults to "not given", so the declaration's default is the only one. Paths
and values are checked before torch is imported: everything imported here at the top is
torch-free, and each command imports the API only once its arguments are checked. Every user
error ends as one line on stderr and exit status 2; internal errors exit 1 with a short line;
`--debug` shows the traceback."""

from __future__ import annotations

import inspect
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import typer

try:  # typer ≥ 0.25 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException

from .base.errors import UserError, out_of_memory
from .base.paths import check_dream_paths, check_render_paths, input_file, output_file, output_folder
from .base.settings import (COMMAND_LINE, SHAPE, AtlasOptions, DreamSettings, FootageOptions, LiveOptions, Range,
                            RenderOptions, StillOptions, build, declared, help_text)
from .engine.catalog import BACKBONES, DEFAULT_MODEL, LAYERS, LOGITS, get_backbone
from .engine.objectives import DEFAULT_OBJECTIVE, KINDS, parse_objective
from .media.codecs import check_container
from .media import audio as soundtrack
from .run.batch import JobSpec, read_jobs, sweep_jobs
from .timeline.presets import Preset, check_objective_files, load_preset, preset_paths

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  rich_markup_mode=None, help="DeepDream infinite-zoom videos.")
presets_app = typer.Typer(help="List shipped presets, or show one.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")

OBJECTIVE_HELP = ("What to maximise: " + ", ".join(k.syntax for k in KINDS.values())
                  + ", or weighted sums like '0.6*features.10 + 0.4*features.14:5'")


def _echo(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def with_settings(*groups: tuple[type, tuple[str, ...], str | None]) -> Callable:
    """Give a command a --flag for each named setting, with the help, range and default its
    dataclass declares; a group's third item replaces the default shown (e.g. "the preset's")."""

    def decorate(fn: Callable) -> Callable:
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind != p.VAR_KEYWORD]
        for cls, names, default in groups:
            fields = declared(cls)
            for name in names:
                kind = fields[name].metadata["check"].kind
                dashed, given = name.replace("_", "-"), fields[name].metadata["flag"]
                decls = [f"--{dashed}/--no-{dashed}"] if kind is bool else [f"--{dashed}"]
                decls = list(given) if isinstance(given, tuple) else [given] if given else decls
                shown = help_text(cls, name, default) if default is not None else help_text(cls, name)
                option = typer.Option(None, *decls, help=shown + ".")
                params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                                annotation=Optional[kind]))
                fn.__annotations__[name] = Optional[kind]
        fn.__signature__ = inspect.Signature(params)
        return fn

    return decorate


DREAM_FLAGS = (DreamSettings, tuple(declared(DreamSettings)), None)
STILL_FLAGS = (StillOptions, tuple(declared(StillOptions)), None)
DELIVERY = ("codec", "pix_fmt", "crf")  # how the video is written (media/codecs.py)
PRESET_FLAGS = (Preset, ("seconds", "fps", "seed", "model", "precision", *DELIVERY, "loop", "cadence", "momentum"),
                "the preset's")
RENDER_FLAGS = (RenderOptions, tuple(declared(RenderOptions)), None)
# The dream's choices and their numbers, for every segment of the preset.
SHAPE_FLAGS = (DreamSettings, SHAPE, "the preset's")
NETWORK_FLAGS = (RenderOptions, ("device", "weights"), None)
ATLAS_FLAGS = (RenderOptions, ("device", "weights", "progress"), None)


def _popped(settings: dict[str, Any], cls: type, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The flags of `cls`'s settings (all, or `names`), taken out of `settings` and checked."""
    given = {k: settings.pop(k) for k in (names or declared(cls)) if k in settings}
    build(cls, given, COMMAND_LINE)
    return given


@app.command()
@with_settings(DREAM_FLAGS, STILL_FLAGS, NETWORK_FLAGS)
def dream(
    image: Path = typer.Argument(..., help="Photo to dream on."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the dreamed image (.png, .jpg…)."),
    model: Optional[str] = typer.Option(None, help=f"Backbone (see `zoomdream layers`; default {DEFAULT_MODEL})."),
    objective: Optional[str] = typer.Option(None, help=OBJECTIVE_HELP + f" (default {DEFAULT_OBJECTIVE})."),
    overwrite: bool = typer.Option(False, help="Replace the output if it exists."),
    **settings: Any,
) -> None:
    """Dream a single image."""
    # Everything that can be checked without torch is checked first, in a blink.
    run = build(RenderOptions, _popped(settings, RenderOptions, NETWORK_FLAGS[1]), COMMAND_LINE)
    check_dream_paths(image, output, run.weights, overwrite)
    still = _popped(settings, StillOptions)
    build(DreamSettings, settings, COMMAND_LINE)
    if objective is not None:
        check_objective_files(parse_objective(objective), has_input=True)

    from . import api

    net = api.network(model, run.weights, run.device, COMMAND_LINE)
    stats = api.DreamStats()
    out = api.dream(image, objective, net, output=output, stats=stats, source=COMMAND_LINE, **still, **settings)
    h, w = out.shape[:2]
    print(f"model      {net.backbone.name} (weights: {net.source.kind} {net.source.entry}) on {net.device}")
    print(f"objective  {parse_objective(objective or DEFAULT_OBJECTIVE)}")
    print(f"image      {w}x{h}, {stats.steps} steps in {stats.seconds:.1f} s = {stats.seconds_per_step:.3f} s/step")
    gain = f"{stats.after / stats.before:.2f}x" if stats.before and stats.before > 0 else "n/a"
    print(f"objective  {stats.before:.4g} -> {stats.after:.4g} (gain {gain})")
    print(f"wrote      {output}")


@app.command()
@with_settings(PRESET_FLAGS, SHAPE_FLAGS, RENDER_FLAGS)
def render(
    input: Optional[Path] = typer.Argument(None, help="Start photo (optional; presets start from noise otherwise)."),
    output: Path = typer.Option(..., "-o", "--output", help="Video to write (.mp4; .mov, .mkv, .webm for --codec)."),
    like: Optional[Path] = typer.Option(None, help="Make this video again (one zoomdream wrote): its preset, seed, "
                                                   "model and inputs as it stores them (see `zoomdream info`)."),
    audio: Optional[Path] = typer.Option(None, help="Soundtrack (MP3, WAV, FLAC…): the MP4 carries it, the video lasts "
                                                    "as long (unless --seconds/--frames), expressions follow it."),
    preset: str = typer.Option("default", help="Preset name (see `zoomdream presets`) or a .toml file."),
    objective: Optional[str] = typer.Option(None, help=OBJECTIVE_HELP + " (default: the preset's)."),
    size: Optional[str] = typer.Option(None, help="Frame size WIDTHxHEIGHT, e.g. 1280x720 (even sides, 32–16384)."),
    frames: Optional[int] = typer.Option(None, help="Video length in frames (instead of --seconds)."),
    draft: bool = typer.Option(False, help="A quick look: half the width and height, cadence 6, one octave."),
    **settings: Any,
) -> None:
    """Render an infinite-zoom dream video."""
    options = _render_options(settings, output, input, preset)
    if like is not None:
        return _render_like(like, output, options, dict(input=input, audio=audio, objective=objective, size=size,
                                                        frames=frames, draft=draft or None,
                                                        preset=None if preset == "default" else preset, **settings))
    if audio is not None:
        input_file(audio, "audio file", "check the --audio path")
    # The whole preset with every override, checked here (no torch) before the API loads.
    p = load_preset(preset).with_overrides(COMMAND_LINE, size=size, frames=frames, objective=objective, **settings)
    check_container(p.codec, output)

    from . import api

    t0 = time.perf_counter()
    res = api.render(output, preset, input, audio=audio, draft=draft, source=COMMAND_LINE, size=size, frames=frames,
                     objective=objective, **options, **settings)
    _report(res, time.perf_counter() - t0)


def _render_like(like: Path, output: Path, options: dict[str, Any], given: dict[str, Any]) -> None:
    """render --like: the video's own settings, so nothing that changes them is taken."""
    changed = [k for k, v in given.items() if v is not None]
    if changed:
        raise UserError(f"--like makes {like} again with its own settings, and --{changed[0].replace('_', '-')} "
                        "would change them", f"drop --{changed[0].replace('_', '-')}, or render from the preset "
                        f"`zoomdream info {like}` prints")
    input_file(like, "video", "check the --like path")

    from . import api

    t0 = time.perf_counter()
    _report(api.render_like(like, output, source=COMMAND_LINE, **options), time.perf_counter() - t0)


def _render_options(settings: dict[str, Any], output: Path, input: Path | None, preset: str) -> dict[str, Any]:
    """The RenderOptions flags taken out of `settings`, checked with every path they name."""
    options = _popped(settings, RenderOptions)
    check_render_paths(output, input, preset, options["weights"], options["frames_dir"], options["gif"],
                       bool(options["overwrite"] or options["resume"]))
    return options


def _report(res: Any, wall: float) -> None:
    """A render's closing lines: what was written, how fast, and how smoothly it moves."""
    if res.interrupted:
        _echo(f"interrupted: {res.frames} of {res.total} frames are in {res.output}; "
              f"continue with the same command plus --resume")
        raise typer.Exit(143 if res.signal == "SIGTERM" else 130)
    draft = " - DRAFT (half size, cadence 6, one octave)" if res.draft else ""
    print(f"frames     {res.frames} at {res.fps:g} fps ({res.frames / res.fps:.1f} s of video), {res.width}x{res.height}"
          + draft)
    print(f"time       {wall:.1f} s wall, {res.seconds_per_frame:.2f} s/frame")
    if res.stability is not None:
        print(f"stability  {res.stability:.2f} (mean |frame[n+1] - move(frame[n])|, 0-255)")
    co = res.coherence
    if co is not None and co.output.pairs:
        print(f"flicker    warping error {co.output.value:.5f} (source video {co.source.value:.5f}; "
              "mean squared change along the source's flow, pixels 0-1)")
    sm = res.smoothness
    if sm is not None and sm.nk:
        print(f"smoothness P {sm.persistence:.2f} = E8 {sm.E8:.2f} / (8 x E1 {sm.E1:.2f}) "
              f"(1: the dream grows, 0.125: it boils)")
    print(f"wrote      {res.output}")


FOOTAGE_PRESET_FLAGS = (Preset, ("seed", "model", "precision", *DELIVERY), "the preset's")


@app.command()
@with_settings((FootageOptions, tuple(declared(FootageOptions)), None), FOOTAGE_PRESET_FLAGS, SHAPE_FLAGS,
               RENDER_FLAGS)
def video(
    input: Path = typer.Argument(..., help="Video to dream (MP4, MOV, WebM, GIF… anything ffmpeg decodes)."),
    output: Path = typer.Option(..., "-o", "--output", help="Video to write (.mp4), with the input's audio."),
    preset: str = typer.Option("footage", help="Preset name (see `zoomdream presets`) or a .toml file."),
    objective: Optional[str] = typer.Option(None, help=OBJECTIVE_HELP + " (default: the preset's)."),
    size: Optional[str] = typer.Option(None, help="Frame size WIDTHxHEIGHT, cropped to fill (default: the "
                                                  "input's shape inside the preset's size)."),
    **settings: Any,
) -> None:
    """Dream your own footage: each frame dreamed, the dream carried along its motion."""
    options = _render_options(settings, output, None, preset)
    input_file(input, "input video")
    footage = _popped(settings, FootageOptions)
    p = load_preset(preset).with_overrides(COMMAND_LINE, size=size, objective=objective, **settings)
    check_container(p.codec, output)

    from . import api

    t0 = time.perf_counter()
    res = api.dream_video(input, output, preset, objective=objective, size=size, source=COMMAND_LINE, **footage,
                          **options, **settings)
    _report(res, time.perf_counter() - t0)


@app.command()
@with_settings((AtlasOptions, tuple(declared(AtlasOptions)), None), (DreamSettings, ("precondition",), None),
               ATLAS_FLAGS)
def atlas(
    image: Path = typer.Argument(..., help="Photo to dream on."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the atlas (.png)."),
    model: Optional[str] = typer.Option(None, help=f"Backbone (see `zoomdream layers`; default {DEFAULT_MODEL})."),
    overwrite: bool = typer.Option(False, help="Replace the output if it exists."),
    **options: Any,
) -> None:
    """One labelled grid of the photo dreamed at every layer: pick an objective at a glance."""
    run = build(RenderOptions, _popped(options, RenderOptions, ATLAS_FLAGS[1]), COMMAND_LINE)
    check_dream_paths(image, output, run.weights, overwrite)
    options.update(_popped(options, DreamSettings, ("precondition",)))  # checked; api.atlas takes it
    build(AtlasOptions, {k: v for k, v in options.items() if k != "precondition"}, COMMAND_LINE)

    from . import api

    t0 = time.perf_counter()
    grid = api.atlas(image, output, model, device=run.device, weights=run.weights, progress=run.progress,
                     source=COMMAND_LINE, **options)
    print(f"atlas      {grid.shape[1]}x{grid.shape[0]} in {time.perf_counter() - t0:.1f} s")
    print(f"wrote      {output}")


LIVE_PRESET_FLAGS = (Preset, ("seed", "model", "precision", "fps", "cadence", "momentum"), "the preset's")


@app.command()
@with_settings((LiveOptions, tuple(declared(LiveOptions)), None), LIVE_PRESET_FLAGS, SHAPE_FLAGS, NETWORK_FLAGS)
def live(
    photo: Optional[Path] = typer.Argument(None, help="Start image (optional; the preset's start otherwise)."),
    preset: str = typer.Option("default", help="Preset to start from (see `zoomdream presets`) or a .toml file."),
    objective: Optional[str] = typer.Option(None, help=OBJECTIVE_HELP + " (default: the preset's)."),
    size: Optional[str] = typer.Option(None, help="Size of the live dream WIDTHxHEIGHT (default: the preset's "
                                                  "shape in 256x256 on a CPU, 1280x720 on a GPU)."),
    **settings: Any,
) -> None:
    """Watch the dream grow in a web page and steer it (sliders, objective, OSC); record it, save
    it as a preset, render it at full size."""
    from .live import serve_live  # torch-free until every value is checked and the ports are bound

    given = {k: v for k, v in settings.items() if v is not None}
    serve_live(photo, preset, size=size, objective=objective, source=COMMAND_LINE, **given)


BATCH_HELP = {
    "jobs": "Jobs to run at once on this machine, each in its own process (default 1).",
    "ray": "Run each job as a task on a Ray cluster: auto (the cluster this machine is in), HOST:PORT, or "
           "local (a Ray on this machine). Outputs and inputs must be on a path every node sees.",
    "overwrite": "Render every job again (finished ones are otherwise skipped).",
}
# Every job's device; the batch's own progress (one bar counting the jobs).
BATCH_FLAGS = (RenderOptions, ("device", "progress"), None)


def _run_batch(run: Callable[[], list], total: int, sheet: Optional[Path]) -> None:
    """The batch and sweep commands' common end: run, summary, exit status."""
    t0 = time.perf_counter()
    try:
        outcomes = run()
    except KeyboardInterrupt:
        _echo("interrupted: finished jobs are kept and unfinished ones checkpointed; "
              "run the same command again to continue")
        raise typer.Exit(130) from None
    counts = {k: sum(o.status == k for o in outcomes) for k in ("done", "skipped", "interrupted", "failed")}
    print(f"jobs       {counts['done']} rendered, {counts['skipped']} already finished, {counts['failed']} failed"
          f"{', ' + str(counts['interrupted']) + ' interrupted' if counts['interrupted'] else ''} "
          f"of {total} in {time.perf_counter() - t0:.1f} s")
    if sheet is not None:
        print(f"sheet      {sheet}")
    if counts["interrupted"] or len(outcomes) < total:
        _echo("interrupted: run the same command again to continue")
        raise typer.Exit(130)
    if counts["failed"]:
        for o in outcomes:
            if o.status == "failed":
                _echo(f"failed: {o.name}: {o.error}")
        raise typer.Exit(1)


@app.command()
@with_settings(BATCH_FLAGS)
def batch(
    jobs_file: Path = typer.Argument(..., help="A TOML file: [defaults], then [[jobs]] with output, preset, input, "
                                               "audio and any preset key."),
    jobs: int = typer.Option(1, "--jobs", help=BATCH_HELP["jobs"]),
    ray: Optional[str] = typer.Option(None, help=BATCH_HELP["ray"]),
    sheet: Optional[Path] = typer.Option(None, help="Also write a contact sheet: one labelled cell per job (.png)."),
    overwrite: bool = typer.Option(False, help=BATCH_HELP["overwrite"]),
    **options: Any,
) -> None:
    """Many renders from a jobs file: finished ones are skipped, unfinished ones resumed."""
    run = build(RenderOptions, options, COMMAND_LINE)
    _check_jobs_flag(jobs)
    if sheet is not None:
        output_file(sheet, (".png",), overwrite=True, what="--sheet")
    total = len(read_jobs(jobs_file, run.device))

    from . import api

    _run_batch(lambda: api.batch(jobs_file, jobs=jobs, ray=ray, sheet=sheet, device=run.device, overwrite=overwrite,
                                 progress=run.progress), total, sheet)


@app.command()
@with_settings(BATCH_FLAGS)
def sweep(
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the videos, their logs and sheet.png."),
    preset: str = typer.Option("default", help="Preset name or .toml file."),
    seeds: Optional[str] = typer.Option(None, help="Seeds to render, e.g. 0-7 or 1,4,9."),
    vary: list[str] = typer.Option([], help="KEY=V1,V2,…: a preset key or segment number to vary (repeatable), "
                                            "e.g. objective=features.7,features.13 or zoom=1.1,1.3."),
    input: Optional[Path] = typer.Option(None, "--input", help="Start photo for every job."),
    audio: Optional[Path] = typer.Option(None, help="Soundtrack for every job."),
    seconds: Optional[float] = typer.Option(None, help="Length of every video, seconds."),
    size: Optional[str] = typer.Option(None, help="Frame size WIDTHxHEIGHT of every video."),
    objective: Optional[str] = typer.Option(None, help="Objective of every job (unless varied)."),
    jobs: int = typer.Option(1, "--jobs", help=BATCH_HELP["jobs"]),
    ray: Optional[str] = typer.Option(None, help=BATCH_HELP["ray"]),
    overwrite: bool = typer.Option(False, help=BATCH_HELP["overwrite"]),
    **options: Any,
) -> None:
    """A grid of renders (seeds × each --vary), named after what varies, with a contact sheet."""
    run = build(RenderOptions, options, COMMAND_LINE)
    _check_jobs_flag(jobs)
    output_folder(output, "-o")
    given = {"seconds": seconds, "size": size, "objective": objective}
    total = len(sweep_jobs(output, preset, seeds, vary, **given))

    from . import api

    _run_batch(lambda: api.sweep(output, preset, seeds=seeds, vary=vary, input=input, audio=audio, jobs=jobs,
                                 ray=ray, device=run.device, overwrite=overwrite, progress=run.progress, **given),
               total, Path(output) / "sheet.png")


def _check_jobs_flag(jobs: int) -> None:
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}", "use --jobs 1 or more")


@app.command("job", hidden=True)
def job_command(spec: str = typer.Argument(...), threads: int = typer.Option(0),
                overwrite: bool = typer.Option(False)) -> None:
    """One job of a batch, in its own process (`batch --jobs N`): prints its outcome as JSON."""
    from .run.runners import run_one

    outcome = run_one(JobSpec(**json.loads(spec)), overwrite, threads or None)
    print(json.dumps(asdict(outcome)))
    if outcome.status == "interrupted":
        raise typer.Exit(130)


@app.command("audio")
def audio_command(
    file: Path = typer.Argument(..., help="Sound file (MP3, WAV, FLAC, AAC, or a video with sound)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Plot of the features over time (.png)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="The features per frame, the beats and the tempo "
                                                                 "(.json)."),
    fps: float = typer.Option(24.0, help="Frame rate of the video the features are for."),
    overwrite: bool = typer.Option(False, help="Replace the outputs if they exist."),
) -> None:
    """What a soundtrack gives expressions (beat, onset, rms, bass, mid, treble), per frame."""
    input_file(file, "audio file", "check the path")
    Range(float, 1, 240).check(fps, "--fps", COMMAND_LINE)
    if output is None and json_out is None:
        raise UserError("nothing to write", "give -o plot.png and/or --json features.json")
    if output is not None:
        output_file(output, (".png",), overwrite)
    if json_out is not None:
        output_file(json_out, (".json",), overwrite, what="--json")

    t0 = time.perf_counter()
    f = soundtrack.features(file, fps)
    took = time.perf_counter() - t0
    if output is not None:
        soundtrack.plot(f, output)
    if json_out is not None:
        soundtrack.write_json(f, json_out)
    print(f"audio      {f.seconds:.1f} s, {len(f.beats)} beats, about {f.tempo:.0f} BPM, analysed in {took:.1f} s")
    print(f"frames     {f.frames} at {fps:g} fps")
    for path in (output, json_out):
        if path is not None:
            print(f"wrote      {path}")


@app.command()
def info(
    file: Path = typer.Argument(..., help="A video zoomdream wrote."),
    json_out: bool = typer.Option(False, "--json", help="Print the whole record as JSON."),
) -> None:
    """How a video was made: the preset with every override, seed, model, the weights' and
    inputs' hashes, codec and versions, as the file carries them."""
    input_file(file, "video")
    from .run.provenance import describe, read_record  # torch loads here, after the path is checked

    rec = read_record(file)
    if json_out:
        print(json.dumps(rec, indent=2, ensure_ascii=False))
        return
    print("\n".join(describe(rec)))
    print(f"again      zoomdream render --like {file} -o again{Path(file).suffix}\n")
    print(rec["preset"], end="")


@app.command()
def layers(model: str = typer.Argument(DEFAULT_MODEL, help="Backbone name.")) -> None:
    """List a model's dreamable layers with channels and stride."""
    backbone = get_backbone(model)
    print(f"{backbone.name}: layers (channels, stride at the input); models: {', '.join(BACKBONES)}")
    for info in LAYERS[backbone.name]:
        stride = "global" if info.name == LOGITS else f"/{info.stride}"
        print(f"  {info.name:<14} {info.channels:>5} ch  {stride:<7} {info.kind}")


@presets_app.callback()
def presets_list(ctx: typer.Context) -> None:
    """List the shipped presets."""
    if ctx.invoked_subcommand is not None:
        return
    for name in preset_paths():
        p = load_preset(name)
        print(f"{name:<16} {p.frames:>4} frames {p.width}x{p.height} {p.model:<13} {p.description}")


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., help="Preset name or file.")) -> None:
    """Print one preset's TOML."""
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
        if oom := out_of_memory(e):
            _echo(f"zoomdream: error: {oom}")
            sys.exit(2)
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        _echo(f"zoomdream: internal error: {type(e).__name__}: {msg} (run with --debug for the traceback)")
        sys.exit(1)
