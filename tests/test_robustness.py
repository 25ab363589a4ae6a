"""Faults a long render must survive, and the validation layer under fuzzing.

Where the exit status and the printed line matter, the real CLI runs in a subprocess."""

import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, assert_user_error, decoded_hashes, interrupted, run_cli, run_main, wait_for_checkpoint
from zoomdream.base.errors import UserError
from zoomdream.engine.images import load_image
from zoomdream.timeline.presets import EXTRA_KEYS, Preset, load_preset, parse_preset
from zoomdream.base.settings import declared, keyframeable, parse_size
from zoomdream.run.jobs import RenderJob
from zoomdream.run.render import render
from zoomdream.run.state import CHECKPOINT, CHECKPOINT_VERSION, StateLock, load_checkpoint, save_checkpoint, state_dir
from zoomdream.media.clip import read_frames
from zoomdream.media.clip import probe

# CI runs the floor; ZOOMDREAM_FUZZ_EXAMPLES=100000 make test fuzzes for longer.
FUZZ = int(os.environ.get("ZOOMDREAM_FUZZ_EXAMPLES", "2000"))
SMALL = ["--size", "64x64", "--device", "cpu", "-q"]


def _one_line_or_fine(fn, *args, **kw):
    """Call a validator: it may accept, or refuse with one UserError line; anything else (a
    TypeError, a KeyError, a multi-line message) fails the test."""
    try:
        return fn(*args, **kw)
    except UserError as e:
        msg = str(e)
        assert msg.strip() and "\n" not in msg and "Traceback" not in msg, msg
        return None


# ------------------------------------------------------------------------------------ fuzzing

_names = st.sampled_from(["features.4", "features.13", "features.18", "features.99", "logits", "inception4c",
                          "conv1", "", " ", "features.", "Features.13"]) | st.text(max_size=12)
_channels = st.lists(st.integers(-3, 2000), max_size=3).map(lambda c: ",".join(map(str, c))) | st.text(max_size=6)
_term = st.one_of(
    _names,
    st.builds(lambda n, c: f"{n}:{c}", _names, _channels),
    st.builds(lambda c: f"class:{c}", st.sampled_from(["banana", "bananna", "tabby_cat", "0", "999", "1000", "-1", ""])
              | st.text(max_size=10)),
    st.builds(lambda p, n: f"guide:{p}@{n}", st.text(max_size=8), _names),
)
_weight = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30) | st.text(max_size=4)
_objective = st.one_of(
    st.lists(st.one_of(_term, st.builds(lambda w, t: f"{w}*{t}", _weight, _term)), min_size=1, max_size=3)
    .map(" + ".join),
    st.text(max_size=40),
)
_number = st.integers(-(10**20), 10**20) | st.floats(allow_nan=True, allow_infinity=True)
_scalar = st.none() | st.booleans() | _number | st.text(max_size=10)
_anything = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
_keyframes = st.lists(st.tuples(_number, _number).map(list), min_size=1, max_size=3)
_span = st.tuples(_number, _number).map(list)
_size = st.one_of(st.builds(lambda w, h: f"{w}x{h}", st.integers(-64, 10000), st.integers(-64, 10000)),
                  st.tuples(st.integers(-64, 10000), st.integers(-64, 10000)).map(list),
                  st.integers(-64, 10000), st.text(max_size=12))


def _segment_value(key: str) -> st.SearchStrategy:
    if key in keyframeable():
        return st.one_of(_number, _keyframes, _anything)
    return {"objective": _objective | _anything, "seconds": _span | _anything, "frames": _span | _anything,
            "blend": _number | _anything, "ease": st.sampled_from(["linear", "smooth", "cubic"]) | _anything,
            }.get(key, _anything)


_SEGMENT_KEYS = [*keyframeable(), "seconds", "frames", "objective", "blend", "ease"]
_TOP_KEYS = [*declared(Preset), *EXTRA_KEYS, "segments"]
_segment = st.dictionaries(st.sampled_from(sorted(_SEGMENT_KEYS) + ["zooom"]), st.none(), max_size=5).flatmap(
    lambda d: st.fixed_dictionaries({k: _segment_value(k) for k in d}))
_TOP = {
    "model": st.sampled_from(["mobilenet_v2", "googlenet", "googlenett", ""]) | _anything,
    "size": _size | _anything, "fps": _number | _anything, "seconds": _number | _anything,
    "frames": _number | _anything, "seed": _number | _anything, "crf": _number | _anything,
    "start": st.sampled_from(["noise", "photo", "#204060", "#zzzzzz", "red"]) | _anything,
    "loop": st.booleans() | _anything, "loop_seconds": _number | _anything, "warmup": st.booleans() | _anything,
    "color": st.sampled_from(["match", "off", "on"]) | _anything, "color_strength": _number | _anything,
    "precision": st.sampled_from(["fp32", "bf16", "fp16", "fp8"]) | _anything,
    "name": _scalar, "description": _scalar,
    "segments": st.lists(_segment, max_size=3) | _anything,
}
_preset = st.dictionaries(st.sampled_from(sorted(_TOP_KEYS) + ["colour"]), st.none(), max_size=6).flatmap(
    lambda d: st.fixed_dictionaries({k: _TOP.get(k, _anything) for k in d}))

_fuzz = settings(max_examples=FUZZ, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@_fuzz
@given(_preset)
def test_fuzzed_presets_validate_or_give_one_line(data):
    preset = _one_line_or_fine(parse_preset, data, "fuzz.toml")
    if preset is not None:  # what validates must also schedule every frame
        schedule = preset.schedule()
        for n in {0, preset.frames // 2, preset.frames - 1}:
            schedule.at(n)


def _in_range(r) -> st.SearchStrategy:
    """Values a Range accepts, its ends included (where extremes break things)."""
    lo = r.lo if r.lo is not None else -1e6
    if r.kind is int:
        return st.sampled_from([int(lo), int(r.hi)]) | st.integers(int(lo), int(r.hi))
    lo = lo + 1e-6 if r.open_lo else lo
    return st.sampled_from([lo, r.hi]) | st.floats(lo, r.hi)


_VALID_SEGMENT = st.fixed_dictionaries({}, optional={
    k: _in_range(f.metadata["check"]) if k != "steps" else st.integers(0, 6)  # more steps: only slower
    for k, f in keyframeable().items()})
_VALID_PRESET = st.fixed_dictionaries({"size": st.sampled_from(["32x32", "48x32"]), "frames": st.integers(1, 3)}, optional={
    "fps": _in_range(declared(Preset)["fps"].metadata["check"]), "seed": st.sampled_from([0, 2**63 - 1]),
    "crf": st.sampled_from([0, 51]), "loop": st.booleans(), "loop_seconds": st.sampled_from([1e-3, 3600.0]),
    "color": st.sampled_from(["match", "off"]), "color_strength": st.sampled_from([0.0, 1.0]),
    "warmup": st.booleans(), "start": st.sampled_from(["noise", "#000000", "#ffffff"]),
    "precision": st.sampled_from(["fp32", "bf16", "fp16"]),
    "segments": st.lists(_VALID_SEGMENT, min_size=1, max_size=1),
})


@settings(max_examples=max(FUZZ // 80, 10), deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(_VALID_PRESET)
def test_fuzzed_valid_presets_render_or_give_one_line(fuzz_place, data):
    # What validates must render: extreme but valid numbers (blur 5 on a 32 px frame, a 1024 px
    # jitter, zoom 0.01, pan 100 frames a second) end in a video or a one-line error.
    preset = parse_preset(data, "fuzz.toml")
    out = fuzz_place / "valid.mp4"
    try:
        res = render(RenderJob(preset=preset, output=out, device="cpu", progress=False, overwrite=True),
                     log=lambda m: None)
    except UserError as e:
        assert "\n" not in str(e) and "fp16" in str(e), str(e)  # the one value refused at render time
        return
    assert res.frames == preset.frames and probe(out).frames == preset.frames


@_fuzz
@given(_objective)
def test_fuzzed_objectives_validate_or_give_one_line(text):
    _one_line_or_fine(parse_preset, {"segments": [{"objective": text}]}, "fuzz.toml")


@_fuzz
@given(_size, st.fixed_dictionaries({}, optional={k: _number | _anything for k in
                                                  ("seconds", "frames", "fps", "seed", "crf", "loop_seconds")}))
def test_fuzzed_size_and_time_flags_validate_or_give_one_line(size, flags):
    _one_line_or_fine(parse_size, size, "--size")
    _one_line_or_fine(load_preset("default").with_overrides, **flags)


def test_fuzzed_flags_through_the_cli_give_one_line(tmp_path):
    # A few of the same shapes end to end: the CLI prints the line and exits 2, no traceback,
    # and a refused render leaves nothing behind.
    for args in (["--size", "0x0"], ["--size", "nan"], ["--fps", "inf"], ["--seconds", "-1"], ["--crf", "99"],
                 ["--frames", "0"], ["--size", "99999x99999"], ["--size", "32x100000"],
                 ["--seed", "1180591620717411303424"]):
        assert_user_error(run_main("render", "-o", tmp_path / "v.mp4", *args))
        assert list(tmp_path.iterdir()) == []


# Whole command lines, run in-process (a subprocess per case would cost 3 s of imports).
# Values are either small enough to render in a blink or likely wrong, so that every
# generated command finishes quickly: it must exit 0 or 2 with at most two lines on stderr.
_junk = st.text(max_size=8) | st.sampled_from(["", "-1", "nan", "inf", "1e400", "0x10", str(2**64), "1" * 30])
_far = st.integers(-(10**25), -(10**7)) | st.integers(10**7, 10**25)  # outside every valid range


def _small_int(lo: int, hi: int) -> st.SearchStrategy:
    return st.integers(lo, hi).map(str) | _far.map(str) | _junk


def _small_float(lo: float, hi: float) -> st.SearchStrategy:
    return st.floats(lo, hi).map(repr) | _far.map(float).map(repr) | st.sampled_from(["nan", "-inf"]) | _junk

_COMMON = {
    "--seed": _small_int(0, 9), "--device": st.sampled_from(["cpu", "cuda", "quantum"]),
    "--precision": st.sampled_from(["fp32", "bf16", "fp16", "fp8"]),
    "--model": st.sampled_from(["mobilenet_v2", "googlenett", ""]),
}
_DREAM_FLAGS = {
    **_COMMON, "--size": st.sampled_from(["0", "16", "40"]) | _small_int(-5, 15), "--octaves": _small_int(0, 3),
    "--octave-scale": _small_float(0.5, 3), "--steps": _small_int(-1, 2), "--step-size": _small_float(-0.1, 2),
    "--jitter": _small_int(-1, 40), "--tile": _small_int(-1, 64), "--objective": _objective,
}
_RENDER_FLAGS = {
    **_COMMON, "--size": st.sampled_from(["32x32", "48x32", "32x48", "32", "32×32"]) | _junk
    | st.sampled_from(["33x32", "0x32", "20000x32", "16384x16384", "-32x32", "1e3x32", "32x32x32", "x", "0x0"]),
    "--frames": _small_int(0, 3), "--seconds": _small_float(-0.1, 0.1), "--fps": _small_float(-1, 30),
    "--preset": st.sampled_from(["default", "loop", "journey", "spiral", "nope", "x.toml"]),
    "--crf": _small_int(-1, 60), "--checkpoint-every": _small_int(0, 2),
}


def _argv(flags: dict, switches: list[str]) -> st.SearchStrategy:
    """Up to five of the command's flags with values, and now and then a switch or a wrong flag."""
    chosen = st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=5)
    extra = st.sampled_from([[]] * 6 + [[x] for x in [*switches, "--bogus", "--resume"]])
    return st.tuples(chosen, extra).flatmap(lambda ne: st.tuples(
        *[flags[n].map(lambda v, n=n: [n, v]) for n in ne[0]], st.just(ne[1])))


@pytest.fixture(scope="module")
def fuzz_place(tmp_path_factory, photo):
    from zoomdream.engine.images import save_image

    d = tmp_path_factory.mktemp("cli-fuzz")
    save_image(d / "in.png", photo[:48, :64])
    return d


def _check_cli_case(argv: list[str]) -> None:
    r = run_main(*argv)
    code, err = r.returncode, r.stderr
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("frame ")]
    assert code in (0, 2), (argv, code, err)
    assert len(lines) <= 2 and "Traceback" not in err, (argv, err)
    if code == 2:
        assert lines and lines[-1].startswith("zoomdream: error:"), (argv, err)


CLI_FUZZ = max(FUZZ // 10, 20)


@settings(max_examples=CLI_FUZZ, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(_argv(_DREAM_FLAGS, []))
def test_fuzzed_dream_command_lines_exit_0_or_2(fuzz_place, flags):
    argv = [x for f in flags for x in f]
    if "--size" not in argv:
        argv += ["--size", "40"]  # the default 512 would take seconds
    _check_cli_case(["dream", str(fuzz_place / "in.png"), "-o", str(fuzz_place / "out.png"), "--overwrite", *argv])


@settings(max_examples=CLI_FUZZ, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(_argv(_RENDER_FLAGS, ["--loop", "--no-loop", "-q"]))
def test_fuzzed_render_command_lines_exit_0_or_2(fuzz_place, flags):
    argv = [x for f in flags for x in f]
    if "--size" not in argv:
        argv += ["--size", "32x32"]  # the presets' 512² would take seconds a frame
    if "--frames" not in argv and "--seconds" not in argv:
        argv += ["--frames", "2"]
    _check_cli_case(["render", "-o", str(fuzz_place / "v.mp4"), "--overwrite", *argv])


_DELIVERY_FLAGS = {
    "--codec": st.sampled_from(["h264", "h265", "av1", "vp9", "prores", "ffv1", "mpeg2", ""]),
    "--pix-fmt": st.sampled_from(["auto", "yuv420p", "yuv444p", "yuv420p10le", "yuv422p10le", "rgb", "nv12"]),
    "--crf": _small_int(-1, 64),
}


@settings(max_examples=CLI_FUZZ, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(_argv({**_RENDER_FLAGS, **_DELIVERY_FLAGS}, ["--loop"]),
       st.sampled_from([".mp4", ".mov", ".mkv", ".webm", ".avi", ""]))
def test_fuzzed_codec_command_lines_exit_0_or_2(fuzz_place, flags, ext):
    argv = [x for f in flags for x in f]
    argv += [] if "--size" in argv else ["--size", "32x32"]
    argv += [] if "--frames" in argv or "--seconds" in argv else ["--frames", "1"]
    _check_cli_case(["render", "-o", str(fuzz_place / f"c{ext}"), "--overwrite", *argv])


@pytest.fixture(scope="module")
def media_place(fuzz_place):
    """A tiny clip, a song, a zoomdream video and files that only look like media."""
    from clips import camera_path, song, write_audio, write_clip

    write_clip(fuzz_place / "clip.mp4", camera_path(3, 32, 32), fps=6, tone=440)
    write_audio(fuzz_place / "song.wav", song(1.0))
    (fuzz_place / "junk.mp4").write_bytes(b"\x00junk" * 64)
    (fuzz_place / "deep.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    (fuzz_place / "job.toml").write_text('[[jobs]]\noutput = "j.mp4"\nsize = "32x32"\nframes = 1\n')
    (fuzz_place / "folder").mkdir(exist_ok=True)
    r = run_main("render", "-o", fuzz_place / "made.mp4", "--size", "32x32", "--frames", "1", "--overwrite", "-q")
    assert r.returncode == 0, r.stderr
    return fuzz_place


_FILES = ["clip.mp4", "song.wav", "junk.mp4", "in.png", "deep.toml", "job.toml", "missing.mp4", "folder", "made.mp4",
          "/dev/null"]
_file = st.sampled_from(_FILES)
_COMMANDS = {
    "video": ({"--size": st.sampled_from(["32x32", "0x0", "31x32"]) | _junk, "--flow": st.sampled_from(
               ["dis", "farneback", "off", "lk"]), "--blend": _small_float(-0.1, 1), "--start": _small_float(-1, 2),
               "--end": _small_float(-1, 2), "--seed": _small_int(0, 9), "--preset": st.sampled_from(
               ["footage", "loop", "nope"]), "--objective": _objective, **_DELIVERY_FLAGS},
              lambda d, f: [d / f, "-o", d / "v.mp4", "--overwrite"], ["--size", "32x32"]),
    "audio": ({"--fps": _small_float(-1, 60), "--json": st.sampled_from(["f.json", "f.txt", "folder", ""]),
               "-o": st.sampled_from(["p.png", "p.jpg", "folder", ""])},
              lambda d, f: [d / f, "--overwrite"], []),
    "batch": ({"--jobs": _small_int(0, 2), "--device": st.sampled_from(["cpu", "quantum"]),
               "--sheet": st.sampled_from(["s.png", "s.gif", "folder"])}, lambda d, f: [d / f, "--overwrite"], []),
    "sweep": ({"--seeds": st.sampled_from(["0", "0-1", "3-1", "a", "0-99999999", ""]) | _junk,
               "--vary": st.sampled_from(["zoom=1.1,1.2", "codec=h264,prores", "zoom", "nope=1", "seed=1"]) | _junk,
               "--seconds": _small_float(0.01, 0.05), "--size": st.sampled_from(["32x32", "0x0"]),
               "--jobs": _small_int(0, 2)}, lambda d, f: ["-o", d / "sweep", "--overwrite"],
              ["--seconds", "0.04", "--size", "32x32"]),
    "atlas": ({"--size": _small_int(31, 40), "--layers": st.sampled_from(["features.1", "all,", "features.99", ""])
               | _junk, "--channels": st.sampled_from(["features.1:1", "features.1:0", "x:1"]) | _junk,
               "--precondition": st.sampled_from(["none", "laplacian", "bogus"]), "--seed": _small_int(0, 9)},
              lambda d, f: [d / "in.png", "-o", d / "a.png", "--overwrite"], ["--layers", "features.1", "--size", "32"]),
    "info": ({"--json": st.just("")}, lambda d, f: [d / f], []),
}


@settings(max_examples=max(FUZZ // 40, 12), deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(st.sampled_from(sorted(_COMMANDS)), _file, st.data())
def test_fuzzed_other_command_lines_exit_0_or_2(media_place, command, file, data):
    # video, audio, batch, sweep, atlas and info, with real and fake media: each ends 0 or 2,
    # in at most two lines. Defaults that would take long (a big size, every layer) are
    # replaced by small ones unless the case sets them.
    flags, head, small = _COMMANDS[command]
    chosen = [x for f in data.draw(_argv(flags, ["--bogus"])) for x in f]
    chosen = [x for x in chosen if x != ""] if command == "info" else chosen
    extra = [x for i in range(0, len(small), 2) if small[i] not in chosen for x in small[i:i + 2]]
    _check_cli_case([command, *map(str, head(media_place, file)), *chosen, *extra])


def test_any_length_or_depth_is_one_line(tmp_path):
    # The expression reader, the objective parser and the TOML reader: megabytes and nesting
    # thousands deep are refused in one line, never a RecursionError or a hang.
    deep, long = "(" * 100_000 + "1" + ")" * 100_000, "+".join(["t"] * 300_000)
    for text in (deep, long, "-" * 200_000 + "1", "sin(" * 3000 + "t" + ")" * 3000):
        _one_line_or_fine(load_preset("default").with_overrides, zoom=text)
        with pytest.raises(UserError):
            load_preset("default").with_overrides(zoom=text)
    with pytest.raises(UserError, match="too long"):
        load_preset("default").with_overrides(objective=" + ".join(["features.3"] * 10_000))
    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000)
    assert_user_error(run_main("render", "-o", tmp_path / "v.mp4", "--preset", tmp_path / "deep.toml"), "deep")
    assert_user_error(run_main("batch", tmp_path / "deep.toml"), "deep")
    r = run_main("render", "-o", tmp_path / "v.mp4", "--objective", " + ".join(["features.3"] * 100_000))
    assert r.returncode == 2 and len(r.stderr) < 400, r.stderr[:400]


def test_numbers_past_a_float_are_one_line_and_a_dream_never_writes_nan(tmp_path, monkeypatch, photo):
    # an objective weight of 1e39 overflowed float32 and `dream` wrote a white PNG with exit 0;
    # a 400-digit integer in an expression was an internal OverflowError
    (tmp_path / "in.png").write_bytes(cv2.imencode(".png", (photo[:64, :64] * 255).astype(np.uint8))[1].tobytes())
    assert_user_error(run_main("dream", tmp_path / "in.png", "-o", tmp_path / "o.png", "--objective", "1e39*features.13"),
                      "has the weight 1e39", "from -1e6 to 1e6")
    with pytest.raises(UserError, match="too large for a float"):
        load_preset("default").with_overrides(zoom="1 + n*" + "9" * 400)
    with pytest.raises(UserError, match="too large for a float"):
        load_preset("default").with_overrides(zoom="*".join(["99999999"] * 60)).check_expressions(None)
    # small integers keep numpy's integer arithmetic: 1//0 is 0, as it always was
    assert load_preset("default").with_overrides(zoom="1.5 + (1//0)").check_expressions(None) is not None
    with pytest.raises(UserError, match="cannot read size"):  # the third side was dropped
        parse_size("64x64x64")
    import zoomdream
    from zoomdream.engine.dream import Dreamer

    monkeypatch.setattr(Dreamer, "__call__", lambda self, x, *a, **k: x * float("nan"))
    with pytest.raises(FloatingPointError, match="the dream has NaN"):
        zoomdream.dream(photo[:64, :64], output=tmp_path / "nan.png")
    assert not (tmp_path / "nan.png").exists()


def test_a_failed_allocation_is_one_line():
    from zoomdream.base.errors import out_of_memory

    for e in (MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:127] . DefaultCPUAllocator: can't allocate "
                                          "memory: you tried to allocate 3221225472 bytes"),
              cv2.error("OpenCV(5.1.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 2142633984 bytes")):
        assert "smaller --size" in str(out_of_memory(e))
    assert out_of_memory(RuntimeError("shape mismatch")) is None


# ------------------------------------------------------------------------------------ inputs


def test_odd_image_formats_load_as_rgb(tmp_path, photo):
    from PIL import Image

    rgb = (photo * 255).astype(np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "deep.png"), (photo[..., ::-1] * 65535).astype(np.uint16))
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "alpha.png")
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    for name, tol in [("grey.png", 0.02), ("deep.png", 0.01), ("cmyk.jpg", 0.06), ("alpha.png", 0.01),
                      ("anim.gif", 0.12)]:  # GIF: 256 colours; the first frame is the one used
        img = load_image(tmp_path / name)
        assert img.shape == photo.shape and img.dtype == np.float32, name
        ref = np.repeat(grey[..., None] / 255.0, 3, 2) if name == "grey.png" else photo
        assert np.abs(img - ref).mean() < tol, (name, np.abs(img - ref).mean())


def test_animated_input_renders_through_the_cli(tmp_path, photo):
    from PIL import Image

    rgb = (photo * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.gif", save_all=True, append_images=[Image.fromarray(255 - rgb)])
    r = run_main("render", tmp_path / "a.gif", "-o", tmp_path / "v.mp4", "--preset", "photo", "--frames", "2", *SMALL)
    assert r.returncode == 0, r.stderr
    assert probe(tmp_path / "v.mp4").frames == 2


def test_bad_preset_file_through_the_cli(tmp_path):
    (tmp_path / "bad.toml").write_text("fps = [unclosed\n")
    assert_user_error(run_main("render", "-o", tmp_path / "v.mp4", "--preset", tmp_path / "bad.toml"), "bad.toml")
    (tmp_path / "nan.toml").write_text("fps = nan\n")
    assert_user_error(run_main("render", "-o", tmp_path / "v.mp4", "--preset", tmp_path / "nan.toml"), "finite")


def test_debug_shows_the_traceback(tmp_path):
    r = run_cli("dream", tmp_path / "missing.png", "-o", tmp_path / "o.png", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "UserError" in r.stderr


# ------------------------------------------------------------------------------------ ffmpeg


def test_ffmpeg_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOMDREAM_FFMPEG", str(tmp_path / "no-ffmpeg"))
    assert_user_error(run_main("render", "-o", tmp_path / "v.mp4", *SMALL), "ffmpeg", "missing")
    assert not (tmp_path / "v.mp4").exists()


def test_ffmpeg_failing_mid_render(tmp_path, monkeypatch):
    # A real ffmpeg behind a wrapper that dies after the first few frames (as a crashing or
    # killed encoder would): the render stops with one line and exit 2.
    import imageio_ffmpeg

    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$*" in *rawvideo*) head -c 40000 >/dev/null; echo "encoder crashed" >&2; exit 1;; esac
        exec "{imageio_ffmpeg.get_ffmpeg_exe()}" "$@"
        """))
    wrapper.chmod(0o755)
    monkeypatch.setenv("ZOOMDREAM_FFMPEG", str(wrapper))
    r = run_main("render", "-o", tmp_path / "v.mp4", "--frames", "40", *SMALL)
    assert_user_error(r, "ffmpeg failed", "encoder crashed")


# ------------------------------------------------------------------------------------ faults

# A render that sends itself SIGKILL when it starts dreaming its {at}th frame.
_KILL_AT = """
import os, signal, sys
from zoomdream.engine.dream import Dreamer
real, calls = Dreamer.__call__, [0]
def faulty(self, *a, **k):
    calls[0] += 1
    if calls[0] == {at}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *a, **k)
Dreamer.__call__ = faulty
from zoomdream.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("kind,code,words", [("nan", 1, ["NaN", "frame 5", "5 finished frames"]),
                                             ("crash", 1, ["internal error", "injected fault"])])
def test_nan_or_crash_mid_render_keeps_the_good_frames(tmp_path, monkeypatch, kind, code, words):
    from zoomdream.engine.dream import Dreamer

    real, calls = Dreamer.__call__, [0]

    def faulty(self, *a, **k):
        calls[0] += 1
        if calls[0] == 6:
            if kind == "nan":
                return real(self, *a, **k) * float("nan")
            raise RuntimeError("injected fault")
        return real(self, *a, **k)

    monkeypatch.setattr(Dreamer, "__call__", faulty)
    out = tmp_path / "v.mp4"
    r = run_main("render", "-o", out, "--frames", "20", "--checkpoint-every", "3", *SMALL)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    frames = probe(out).frames
    assert frames == 5  # frames 0–4 are finished and play
    assert np.isfinite(np.stack(read_frames(out))).all()


def _limited(nbytes: int):
    # RLIMIT_FSIZE makes every write past the limit fail with EFBIG, as a full disk fails with
    # ENOSPC; the render's ffmpeg children inherit it. It is per file, so its size decides which
    # file fills up first.
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def _disk_full_then_resume(tmp_path, args: list[str], limit: int) -> dict:
    """Render with a file-size limit: it must stop mid-render with the one-line disk-full error;
    then --resume without the limit must give the same video as a render that never failed."""
    cmd = [sys.executable, "-m", "zoomdream", "render", *args, "--size", "64x64", "--device", "cpu", "-q"]
    ref = tmp_path / "ref.mp4"
    assert run_main(*cmd[3:], "-o", ref).returncode == 0
    out = tmp_path / "v.mp4"
    r = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, cwd=ROOT, preexec_fn=_limited(limit))
    assert_user_error(r, "disk full", "--resume")
    ck = load_checkpoint(state_dir(out) / CHECKPOINT)
    r = run_main(*cmd[3:], "-o", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resuming {out} at frame {ck['index']}" in r.stderr
    assert decoded_hashes(out) == decoded_hashes(ref)
    return ck


def test_disk_full_in_the_encoder_mid_render(tmp_path):
    # A lossless 32-frame part is ~110 kB (ffmpeg reports the failed write when the part is
    # closed); a checkpoint is ~100 kB. At 105 kB the first part cannot be finished. Its frames
    # are kept losslessly, so the checkpoint written after the failure stands at frame 32.
    # (Sizes of the classic step's frames: the Laplacian step's have less fine grain and pack smaller.)
    ck = _disk_full_then_resume(tmp_path, ["--frames", "60", "--crf", "0", "--checkpoint-every", "32",
                                           "--precondition", "none"], 105_000)
    assert (ck["index"], ck["parts"], ck["pending"]) == (32, [], 32)


def test_disk_full_writing_a_checkpoint_mid_render(tmp_path):
    # A loop's checkpoints hold its held-back frames, ~12 kB each at 64x64, beside ~100 kB:
    # 198, 297, then 395 kB at frames 8, 16, 24. At 350 kB the third fails; the second stands.
    ck = _disk_full_then_resume(tmp_path, ["--preset", "loop", "--frames", "48", "--checkpoint-every", "8"], 350_000)
    assert ck["index"] == 16


def test_full_disk_on_a_tiny_filesystem(tmp_path):
    # A real ENOSPC: a 320 kB tmpfs fills up mid-render (parts plus two 100 kB checkpoints
    # during the atomic replace). Then space is freed and --resume finishes the video.
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = mnt / "v.mp4"
        cmd = [sys.executable, "-m", "zoomdream", "render", "-o", str(out), "--frames", "200", "--checkpoint-every",
               "8", *SMALL]
        r = run_main(*cmd[3:])
        assert_user_error(r, "disk full", "--resume")
        kept = load_checkpoint(state_dir(out) / CHECKPOINT)["index"]
        assert 8 <= kept < 200
        subprocess.run(["mount", "-o", "remount,size=20m", str(mnt)], check=True)  # space freed
        r = run_main(*cmd[3:], "--resume")
        assert r.returncode == 0, r.stderr
        assert f"at frame {kept}" in r.stderr and probe(out).frames == 200
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    save_checkpoint({"version": CHECKPOINT_VERSION, "index": 3}, path)

    def dies_halfway(fd):
        raise KeyboardInterrupt  # a kill while the new checkpoint is on its way to the disk

    monkeypatch.setattr(os, "fsync", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"version": CHECKPOINT_VERSION, "index": 9}, path)
    assert load_checkpoint(path)["index"] == 3  # the old one is whole
    assert list(tmp_path.iterdir()) == [path]  # and no temp file is left


def test_sigkill_loses_at_most_the_frames_since_the_last_boundary(tmp_path):
    # SIGKILL sent by the render to itself while it dreams frame 10, with parts of 4 frames:
    # the checkpoint must stand at frame 8 exactly (by construction, not by timing), and the
    # resumed video must be the uninterrupted one, decoded frame for frame.
    args = ["render", "--preset", "journey", "--frames", "30", "--checkpoint-every", "4", *SMALL]
    ref = tmp_path / "ref.mp4"
    assert run_main(*args, "-o", ref, "--frames-dir", tmp_path / "ref").returncode == 0
    out = tmp_path / "k.mp4"
    r = subprocess.run([sys.executable, "-c", _KILL_AT.format(at=11), *args, "-o", str(out),
                        "--frames-dir", str(tmp_path / "k")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert len(list((tmp_path / "k").glob("*.png"))) == 10  # frames 0–9 were finished…
    assert load_checkpoint(state_dir(out) / CHECKPOINT)["index"] == 8  # …8 of them are safe
    r = run_main(*args, "-o", out, "--frames-dir", tmp_path / "k", "--resume")
    assert r.returncode == 0, r.stderr
    assert decoded_hashes(out) == decoded_hashes(ref)
    a, b = sorted((tmp_path / "ref").glob("*.png")), sorted((tmp_path / "k").glob("*.png"))
    assert len(a) == len(b) == 30 and all(np.array_equal(load_image(x), load_image(y)) for x, y in zip(a, b))


def test_checkpoint_rename_is_made_durable(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    save_checkpoint({"version": CHECKPOINT_VERSION, "index": 1}, tmp_path / CHECKPOINT)
    assert synced == [False, True]  # the file's data, then the folder holding the rename


def test_sigterm_leaves_a_playable_mp4(tmp_path):
    out = tmp_path / "t.mp4"
    cmd = [sys.executable, "-m", "zoomdream", "render", "-o", str(out), "--frames", "400", "--checkpoint-every", "3",
           *SMALL]
    r = interrupted(cmd, out, 3, signal.SIGTERM)
    assert r.returncode == 143, r.stderr
    assert "Traceback" not in r.stderr and "--resume" in r.stderr
    n = probe(out).frames
    assert 3 <= n < 400 and len(read_frames(out)) == n


def test_damaged_checkpoint_is_refused_in_one_line(tmp_path):
    out = tmp_path / "d.mp4"
    p = load_preset("default").with_overrides(width=64, height=64, frames=12)
    render(RenderJob(preset=p, output=out, device="cpu", progress=False, checkpoint_every=4, stop_after=6), log=lambda m: None)
    ck = state_dir(out) / CHECKPOINT
    good = ck.read_bytes()
    assert load_checkpoint(ck)["index"] == 6
    cmd = ["render", "-o", out, "--frames", "12", "--size", "64x64", "--device", "cpu", "--resume", "-q"]
    for damaged in (good[: len(good) // 2], good[:-1] + bytes([good[-1] ^ 1]), good[:100] + b"\0" + good[101:]):
        ck.write_bytes(damaged)
        with pytest.raises(UserError, match="damaged"):
            load_checkpoint(ck)
    assert_user_error(run_main(*cmd), "checkpoint", "damaged", "--overwrite")
    ck.write_bytes(b"")
    assert_user_error(run_main(*cmd), "checkpoint", "--overwrite")
    ck.write_bytes(good)
    r = run_main(*cmd)
    assert r.returncode == 0 and probe(out).frames == 12, r.stderr


def test_progress_lines_when_stderr_is_a_log(tmp_path, monkeypatch):
    # stderr is not a terminal here, as under nohup or in CI: plain lines with frame, speed and ETA
    monkeypatch.setenv("ZOOMDREAM_LOG_SECONDS", "0")
    r = run_main("render", "-o", tmp_path / "p.mp4", "--frames", "3", "--size", "32x32", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["frame 1/3", "frame 2/3", "frame 3/3"], lines
    assert all("s/frame, ETA " in ln for ln in lines), lines


def test_one_render_per_output(tmp_path):
    out = tmp_path / "o.mp4"
    cmd = [sys.executable, "-m", "zoomdream", "render", "-o", str(out), "--frames", "100000", "--size", "32x32",
           "--checkpoint-every", "2", "--device", "cpu", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for_checkpoint(out, proc, 2)
        for flag in ("--resume", "--overwrite"):  # a second render of the same output is refused
            assert_user_error(run_main(*cmd[3:], flag),
                              "being rendered right now", f"pid {proc.pid}")
        assert proc.poll() is None and load_checkpoint(state_dir(out) / CHECKPOINT)["index"] >= 2  # untouched
    finally:
        proc.kill()  # SIGKILL: no handler runs, and the kernel drops the lock with the process
        proc.wait()
    StateLock(state_dir(out), out).release()  # not stale: the next render can take it
