import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import zoomdream
from conftest import ROOT, assert_user_error, decoded_hashes, interrupted, run_cli, run_main, wait_for_checkpoint
from zoomdream.base.errors import UserError
from zoomdream.engine.images import load_image
from zoomdream.timeline.presets import load_preset
from zoomdream.run.jobs import RenderJob
from zoomdream.run.render import render
from zoomdream.run.state import state_dir
from zoomdream.media.clip import read_frames
from zoomdream.media.clip import probe


def small(name="default", **kw):
    kw.setdefault("width", 64)
    kw.setdefault("height", 64)
    return load_preset(name).with_overrides(**kw)


def quiet_render(preset, output, **kw):
    return render(RenderJob(preset=preset, output=output, device="cpu", progress=False, **kw), log=lambda m: None)


def test_frame_count_and_duration(tmp_path):
    out = tmp_path / "a.mp4"
    res = quiet_render(small(frames=12, fps=8), out, checkpoint_every=5)
    assert res.frames == 12
    clip = probe(out)
    frames, secs = clip.frames, clip.duration
    assert frames == 12 and secs == pytest.approx(1.5, abs=0.13)
    assert not state_dir(out).exists()  # cleaned up after a finished render
    decoded = read_frames(out)
    assert decoded[0].shape == (64, 64, 3)
    assert np.std(decoded[-1]) > 5  # something is there


def test_odd_and_1080_sizes_are_kept_exact(tmp_path):
    out = tmp_path / "wide.mp4"
    quiet_render(small(frames=1, width=96, height=54), out)
    assert read_frames(out)[0].shape == (54, 96, 3)  # no macro-block rescale (1080 stays 1080)


def _png_frames(d: Path) -> list[np.ndarray]:
    return [load_image(p) for p in sorted(d.glob("frame_*.png"))]


def test_loop_seam_is_an_ordinary_frame_step(tmp_path):
    p = small("loop", frames=36, width=96, height=96, loop_seconds=0.5)
    quiet_render(p, tmp_path / "l.mp4", frames_dir=tmp_path / "f")
    frames = _png_frames(tmp_path / "f")
    assert len(frames) == 36
    step = np.median([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])])
    seam = np.abs(frames[0] - frames[-1]).mean()
    # measured over seeds 0–2: the seam is 0.97–1.02 of the median step; without the loop
    # the same wrap is 3.7–3.9 of it
    assert seam <= 1.25 * step, (seam, step)
    g = [f.astype(np.float32) / 255 for f in zoomdream.frames("loop", frames=36, size="96x96", loop=False,
                                                              device="cpu")]
    assert np.abs(g[0] - g[-1]).mean() > 2.5 * step


# default 60 frames stopped at 58: resumes from the checkpoint after frame 55, which carries the
# colour hold's summed error (the hold starts at frame 48).
@pytest.mark.parametrize("name,frames,stop,cadence", [("default", 60, 58, 1), ("loop", 40, 5, 1), ("loop", 40, 13, 1),
                                                      ("default", 40, 8, 3), ("loop", 40, 17, 3)],
                         ids=["mid-part", "loop-held-back-frames", "loop-mid-part", "cadence-between-dreamed-frames",
                              "cadence-loop"])
def test_interrupt_and_resume_give_the_identical_video(tmp_path, name, frames, stop, cadence):
    # The decoded MP4, not just the frames: x264's look-ahead depends on where a part ends, so
    # the part an interruption cut short must be re-encoded whole on resume. With cadence 3
    # the interruption falls between two dreamed frames (7 follows 6, 8 comes before 9).
    p = small(name, frames=frames, width=96, height=96, cadence=cadence)
    quiet_render(p, tmp_path / "ref.mp4", frames_dir=tmp_path / "ref", checkpoint_every=8)
    out = tmp_path / "r.mp4"
    part = quiet_render(p, out, frames_dir=tmp_path / "r", checkpoint_every=8, stop_after=stop)
    shown = max(0, stop - p.tail)
    assert part.interrupted and part.frames == shown  # the partial file holds every finished frame
    if shown:
        assert probe(out).frames == shown and len(list((tmp_path / "r").glob("*.png"))) == shown
    with pytest.raises(UserError, match="settings changed"):
        quiet_render(p.with_overrides(seed=5), out, resume=True)
    res = quiet_render(p, out, frames_dir=tmp_path / "r", checkpoint_every=8, resume=True)
    assert res.frames == frames
    assert decoded_hashes(out) == decoded_hashes(tmp_path / "ref.mp4")
    a, b = _png_frames(tmp_path / "ref"), _png_frames(tmp_path / "r")
    assert len(a) == len(b) == frames and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_frames_api_shows_what_render_writes(tmp_path):
    # the same order, the loop's closing cross-fade included
    p = small("loop", frames=20, width=64, height=48)
    quiet_render(p, tmp_path / "l.mp4", frames_dir=tmp_path / "f")
    api = list(zoomdream.frames("loop", frames=20, size="64x48", device="cpu"))
    pngs = [(f * 255 + 0.5).astype(np.uint8) for f in _png_frames(tmp_path / "f")]
    assert len(api) == len(pngs) == 20
    assert all(np.array_equal(a, b) for a, b in zip(api, pngs))


def test_api_render_and_overwriting_a_finished_render(tmp_path):
    out = tmp_path / "api.mp4"
    res = zoomdream.render(out, "journey", frames=3, size="48x32", device="cpu", gif=tmp_path / "p.gif")
    assert res.frames == 3 and probe(out).frames == 3 and (tmp_path / "p.gif").stat().st_size > 0
    with pytest.raises(UserError, match="already exists"):
        zoomdream.render(out, frames=2, size="32x32", device="cpu")
    res = zoomdream.render(out, frames=2, size="32x32", device="cpu", overwrite=True)
    assert probe(out).frames == 2 and read_frames(out)[0].shape == (32, 32, 3)


def test_bf16_renders_and_fp16_is_refused_on_the_cpu(tmp_path):
    res = zoomdream.render(tmp_path / "b.mp4", frames=2, size="32x32", device="cpu", precision="bf16")
    assert res.frames == 2 and np.std(read_frames(tmp_path / "b.mp4")[-1]) > 2
    with pytest.raises(UserError, match="fp16 is not supported on the CPU"):
        zoomdream.render(tmp_path / "h.mp4", frames=2, size="32x32", device="cpu", precision="fp16")


def _cli_render(out: Path, frames: int, every: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "zoomdream", "render", "-o", str(out), "--frames", str(frames), "--size", "64x64",
            "--device", "cpu", "--checkpoint-every", str(every), "--frames-dir", str(out.with_suffix("")), "-q", *extra]


def test_ctrl_c_leaves_every_finished_frame_and_resume_finishes_the_same_video(tmp_path):
    quiet_render(small(frames=60), tmp_path / "ref.mp4", checkpoint_every=3)  # what the CLI renders
    out = tmp_path / "s.mp4"
    r = interrupted(_cli_render(out, 60, 3), out, 3)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "--resume" in r.stderr
    n = probe(out).frames
    assert 3 <= n < 60 and len(read_frames(out)) == n
    assert n == len(list(out.with_suffix("").glob("*.png")))  # every finished frame is in the MP4
    assert_user_error(run_main(*_cli_render(out, 61, 3, "--resume")[3:]), "settings changed")
    r = run_main(*_cli_render(out, 60, 3, "--resume")[3:])
    assert r.returncode == 0, r.stderr
    assert decoded_hashes(out) == decoded_hashes(tmp_path / "ref.mp4")


def test_second_ctrl_c_stops_at_once_and_keeps_the_finished_frames(tmp_path):
    out = tmp_path / "d.mp4"
    cmd = _cli_render(out, 400, 2)
    cmd[cmd.index("64x64")] = "256x256"  # slow frames: the second Ctrl-C lands inside one
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for_checkpoint(out, proc, 2, timeout=120)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    n = probe(out).frames
    assert 2 <= n < 400 and n == len(list(out.with_suffix("").glob("*.png")))


def test_dream_full_size_tiled(tmp_path, photo_file):
    r = run_cli("dream", photo_file, "-o", tmp_path / "full.png", "--size", "0", "--tile", "128", "--octaves", "1",
                "--steps", "1", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert load_image(tmp_path / "full.png").shape == load_image(photo_file).shape  # full size, via tiles


def test_resume_notices_a_changed_guide_image(tmp_path, photo):
    from zoomdream.engine.images import save_image

    guide = tmp_path / "g.png"
    save_image(guide, photo[:64, :64])
    (tmp_path / "p.toml").write_text(f'size = "48x48"\nframes = 8\n[[segments]]\nobjective = "guide:{guide}@features.6"\n')
    p = load_preset(tmp_path / "p.toml")
    out = tmp_path / "g.mp4"
    quiet_render(p, out, checkpoint_every=2, stop_after=3)
    save_image(guide, photo[-64:, -64:])  # another picture under the same name
    with pytest.raises(UserError, match="settings changed"):
        quiet_render(p, out, checkpoint_every=2, resume=True)


def test_a_file_where_the_state_folder_goes_is_one_line(tmp_path):
    (tmp_path / "v.mp4.zoomdream").write_text("not a folder")
    assert_user_error(run_main("render", "-o", tmp_path / "v.mp4", "--overwrite", "--frames", "1", "--size", "32x32"),
                      "in the way")


def test_resume_refuses_when_a_finished_part_is_gone_and_keeps_the_video(tmp_path):
    # ffmpeg's concat ends quietly at a missing part: resuming replaced a 624-frame video with
    # 120 frames and said 2538 were there
    out = tmp_path / "v.mp4"
    quiet_render(small(frames=8), out, checkpoint_every=2, stop_after=5)
    before = out.read_bytes()
    (state_dir(out) / "part-00001.mp4").unlink()
    with pytest.raises(UserError, match="part-00001.mp4 of the interrupted render is missing"):
        quiet_render(small(frames=8), out, checkpoint_every=2, resume=True)
    assert out.read_bytes() == before and (state_dir(out) / "part-00000.mp4").exists()


def test_a_render_never_overwrites_what_it_reads_or_frames_it_did_not_make(tmp_path):
    from clips import write_clip

    song = write_clip(tmp_path / "song.mp4", [np.zeros((32, 32, 3), np.uint8)] * 12, tone=0.5)
    before = song.read_bytes()
    assert_user_error(run_main("render", "-o", song, "--audio", song, "--overwrite", "--size", "32x32"),
                      "the output", "is the soundtrack")
    assert song.read_bytes() == before
    frames = tmp_path / "frames"
    args = ("render", "-o", tmp_path / "a.mp4", "--frames", "2", "--size", "32x32", "-q", "--frames-dir", frames)
    assert run_main(*args).returncode == 0
    assert_user_error(run_main(*args[:2], tmp_path / "b.mp4", *args[3:]), "already holds frames", "--overwrite")
    assert run_main(*args[:2], tmp_path / "b.mp4", *args[3:], "--overwrite").returncode == 0
    # an interrupted render with frames is still offered --resume, not --overwrite (which would lose it)
    quiet_render(small(frames=6), tmp_path / "c.mp4", checkpoint_every=2, stop_after=3, frames_dir=tmp_path / "cf")
    assert_user_error(run_main("render", "-o", tmp_path / "c.mp4", "--frames-dir", tmp_path / "cf"), "add --resume")
