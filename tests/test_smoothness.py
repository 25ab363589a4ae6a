"""How the video moves: the persistence figure, momentum (frames that grow instead of boil),
cadence (in-between frames made from the camera move) and draft renders."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import zoomdream
from conftest import assert_user_error, run_main
from zoomdream.loops.smoothness import Smoothness, frames_smoothness
from zoomdream.engine.motion import IDENTITY, resample, theta
from zoomdream.timeline.presets import load_preset
from zoomdream.media.clip import read_frames
from zoomdream.timeline.schedule import Param


def _smoothness(preset) -> Smoothness:
    return frames_smoothness(zoomdream.frames(preset, device="cpu"), preset.schedule(), preset.fps)


def test_persistence_tells_growth_from_boil():
    g = torch.Generator().manual_seed(0)
    base, pattern = torch.rand(1, 3, 64, 64, generator=g) * 0.5, torch.rand(1, 3, 64, 64, generator=g) * 0.02
    grows, boils = Smoothness(), Smoothness()
    for n in range(24):
        grows.add(base + n * pattern, IDENTITY)  # every change persists
        boils.add(base + (n % 2) * pattern * 8, IDENTITY)  # every change is undone the next frame
    assert grows.persistence == pytest.approx(1, abs=0.02)
    assert boils.persistence < 0.01  # 8 frames on, the frame is back where it was
    # the camera move is taken out exactly: a pure zoom of a smooth picture has no motion error
    zoom, still = Smoothness(), theta(1.02, 0.01, 0, 0, 64, 64)
    x = torch.nn.functional.interpolate(base, scale_factor=0.25, mode="bilinear")
    img = torch.nn.functional.interpolate(x, size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)
    zoom.add(img, still)
    zoom.add(resample(img, still), still)
    assert zoom.E1 < 0.05


def test_the_default_preset_grows_instead_of_boiling():
    p = load_preset("default").with_overrides(size="128x128", frames=48)
    # as it was: no momentum, each frame stepping 0.012 (now 0.03, of which 10% per frame)
    old = replace(p.with_overrides(momentum=0),
                  segments=tuple(replace(s, params=tuple(x for x in s.params if x[0] != "step_size")
                                         + (("step_size", Param(((0.0, 0.012),))),)) for s in p.segments))
    now, before = _smoothness(p), _smoothness(old)
    # measured at 128 px, 24 frames: P 0.77 against 0.32; at 256 px, 72 frames: 0.67 against 0.28
    assert now.persistence >= 0.5 > before.persistence, (now.persistence, before.persistence)
    assert now.E8 >= 0.8 * before.E8, (now.E8, before.E8)  # and the dream moves as much: 22 against 18


def test_cadence_frames_between_follow_the_camera_exactly(tmp_path):
    # With no dream (and no colour pull), a frame between two dreamed ones is the same picture
    # moved: cadence 3 shows what cadence 1 shows, up to resampling.
    still = dict(size="96x96", frames=13, momentum=0, color="off", warmup=False)
    p = load_preset("spiral").with_overrides(**still)
    p = replace(p, segments=tuple(replace(s, params=s.params + (("steps", Param(((0.0, 0.0),))),))
                                  for s in p.segments))
    one = list(zoomdream.frames(p, device="cpu"))
    three = list(zoomdream.frames(p.with_overrides(cadence=3), device="cpu"))
    diff = [np.abs(a.astype(float) - b.astype(float))[10:-10, 10:-10].mean() for a, b in zip(one, three)]
    assert len(one) == len(three) == 13
    assert diff[0] == 0 and diff[3] < 2 and max(diff) < 3, diff  # 0–255; the frames move ~5 px each


def test_cadence_renders_and_says_so(tmp_path):
    r = run_main("render", "-o", tmp_path / "c.mp4", "--frames", "10", "--size", "64x64", "--cadence", "3",
                 "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert "smoothness P" in r.stdout and "stability" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--cadence", "0"], ["--cadence", "from 1 to 64"]),
    (["--cadence", "2.5"], ["--cadence", "integer"]),
    (["--preset", "journey", "--cadence", "40", "--seconds", "3"], ["cadence 40", "segments[", "at most"]),
])
def test_bad_cadence_is_one_line(tmp_path, args, words):
    r = run_main("render", "-o", tmp_path / "c.mp4", *args)
    assert_user_error(r, *words)
    assert not (tmp_path / "c.mp4").exists()


def test_bad_cadence_in_a_preset_file(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('fps = 10\nseconds = 2\ncadence = 6\n[[segments]]\nseconds = [0, 0.5]\n[[segments]]\nseconds = [0.5, 2]\n')
    r = run_main("render", "-o", tmp_path / "c.mp4", "--preset", f)
    assert_user_error(r, "cadence 6", "segments[0]", "5 frames")


def test_draft_is_half_size_and_labelled(tmp_path):
    r = run_main("render", "-o", tmp_path / "d.mp4", "--frames", "12", "--size", "128x96", "--draft", "--device", "cpu",
                 "-q")
    assert r.returncode == 0, r.stderr
    assert "64x48" in r.stdout and "DRAFT" in r.stdout
    assert read_frames(tmp_path / "d.mp4")[0].shape == (48, 64, 3)
    d = load_preset("default").drafted()
    assert (d.width, d.height, d.cadence) == (256, 256, 6)
    assert all(dict(s.params)["octaves"].keys == ((0.0, 1.0),) for s in d.segments)


def test_make_bench_takes_every_shipped_preset_back_to_before_momentum():
    # bench's smoothness table covers every shipped preset; an expression step size (music)
    # crashed it, and with it `make bench`
    import sys
    from pathlib import Path

    from zoomdream.timeline.expressions import Expr
    from zoomdream.timeline.presets import preset_paths

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench import before_momentum

    kinds = set()
    for name in preset_paths():
        p = load_preset(name)
        old = before_momentum(p)
        assert old.momentum == 0
        for new_seg, old_seg in zip(p.segments, old.segments):
            new, was = dict(new_seg.params), dict(old_seg.params)
            if "step_size" not in new:  # its objective's default step, which stays as it is
                continue
            for (_, v), (_, w) in zip(new["step_size"].keys, was["step_size"].keys):
                kinds.add(type(v))
                assert str(w) == f"({v}) / 2.5" if isinstance(v, Expr) else w == pytest.approx(v / 2.5)
    assert Expr in kinds and float in kinds
