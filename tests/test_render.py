import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import wait_for_checkpoint
from zoomdream.images import load_image
from zoomdream.presets import load_preset
from zoomdream.render import RenderJob, render, state_dir
from zoomdream.video import probe, read_frames

ROOT = Path(__file__).resolve().parents[1]


def small(name="default", **kw):
    kw.setdefault("width", 64)
    kw.setdefault("height", 64)
    return load_preset(name).with_overrides(**kw)


def test_frame_count_and_duration(tmp_path):
    out = tmp_path / "a.mp4"
    res = render(RenderJob(preset=small(frames=12, fps=8), output=out, device="cpu", progress=False, checkpoint_every=5),
                 log=lambda m: None)
    assert res.frames == 12
    frames, secs = probe(out)
    assert frames == 12 and secs == pytest.approx(1.5, abs=0.13)
    assert not state_dir(out).exists()  # cleaned up after a finished render
    decoded = read_frames(out)
    assert decoded[0].shape == (64, 64, 3)
    assert np.std(decoded[-1]) > 5  # something is there


def test_odd_and_1080_sizes_are_kept_exact(tmp_path):
    out = tmp_path / "wide.mp4"
    render(RenderJob(preset=small(frames=1, width=96, height=54), output=out, device="cpu", progress=False), log=lambda m: None)
    assert read_frames(out)[0].shape == (54, 96, 3)  # no macro-block rescale (1080 stays 1080)


def _png_frames(d: Path) -> list[np.ndarray]:
    return [load_image(p) for p in sorted(d.glob("frame_*.png"))]


def test_loop_seam_is_no_larger_than_a_frame_step(tmp_path):
    p = small("loop", frames=36, width=96, height=96, loop_seconds=0.5)
    render(RenderJob(preset=p, output=tmp_path / "l.mp4", device="cpu", progress=False, frames_dir=tmp_path / "f"), log=lambda m: None)
    frames = _png_frames(tmp_path / "f")
    assert len(frames) == 36
    steps = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]
    seam = np.abs(frames[0] - frames[-1]).mean()
    assert seam <= np.percentile(steps, 90), (seam, np.median(steps))
    # without the loop the same wrap is a visible jump
    q = small("loop", frames=36, width=96, height=96, loop=False)
    render(RenderJob(preset=q, output=tmp_path / "n.mp4", device="cpu", progress=False, frames_dir=tmp_path / "g"), log=lambda m: None)
    g = _png_frames(tmp_path / "g")
    assert np.abs(g[0] - g[-1]).mean() > 2 * np.median(steps)


def test_interrupt_and_resume_give_identical_frames(tmp_path):
    p = small("journey", frames=14, width=64, height=64)
    ref = tmp_path / "ref"
    render(RenderJob(preset=p, output=tmp_path / "ref.mp4", device="cpu", progress=False, frames_dir=ref), log=lambda m: None)
    out = tmp_path / "r.mp4"
    part = render(RenderJob(preset=p, output=out, device="cpu", progress=False, frames_dir=tmp_path / "r", checkpoint_every=4,
                            stop_after=9), log=lambda m: None)
    assert part.interrupted and probe(out)[0] == 9  # the partial file plays and holds every finished frame
    with pytest.raises(Exception, match="settings changed"):
        render(RenderJob(preset=p.with_overrides(seed=5), output=out, device="cpu", progress=False, resume=True), log=lambda m: None)
    res = render(RenderJob(preset=p, output=out, device="cpu", progress=False, frames_dir=tmp_path / "r", resume=True),
                 log=lambda m: None)
    assert res.frames == 14 and probe(out)[0] == 14
    a, b = _png_frames(ref), _png_frames(tmp_path / "r")
    assert len(a) == len(b) == 14
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_sigint_leaves_playable_mp4_and_resume_finishes(tmp_path):
    out = tmp_path / "s.mp4"
    cmd = [sys.executable, "-m", "zoomdream", "render", "-o", str(out), "--frames", "400", "--size", "64x64",
           "--device", "cpu", "--checkpoint-every", "3", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for_checkpoint(out, proc, 3, timeout=120)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    n, _ = probe(out)
    assert 3 <= n < 400
    assert len(read_frames(out)) == n
    r = subprocess.run(cmd[:7] + ["8", *cmd[8:], "--resume"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "settings changed" in r.stderr  # a different length is refused
