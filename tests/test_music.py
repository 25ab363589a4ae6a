"""Music: expressions for a preset's numbers, a soundtrack's features, and the song in the MP4."""

import json
import sys

import numpy as np
import pytest
import scipy.signal

import zoomdream
from clips import audio_samples, camera_path, click_track, write_audio, write_clip
from conftest import assert_user_error, decoded_hashes, interrupted, run_main
from zoomdream.media import audio
from zoomdream.base.errors import UserError
from zoomdream.timeline.presets import load_preset, parse_preset
from zoomdream.run.state import state_dir
from zoomdream.media.clip import probe


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    """20 s of clicks at 120 BPM (numpy), as a WAV file, and the click times."""
    y, times = click_track(20, 120)
    return write_audio(tmp_path_factory.mktemp("music") / "clicks.wav", y), times


def test_zoom_peaks_within_a_frame_of_every_click(clicks):
    path, times = clicks
    f = audio.features(path, 24)
    assert f.frames == 480 and f.seconds == pytest.approx(20, abs=0.01)
    p = parse_preset({"fps": 24, "seconds": 20, "segments": [{"zoom": "1 + 0.5*beat"}]})
    zoom = np.array([p.check_expressions(f.per_frame).motion(n).zoom for n in range(p.frames)])
    peaks = np.nonzero(zoom > 1.49)[0]
    assert zoom.min() >= 1 and zoom.max() == pytest.approx(1.5)
    miss = [t for t in times if np.abs(peaks - t * 24).min() > 1]
    assert not miss, f"no zoom peak within one frame of the clicks at {miss}"
    stray = [n for n in peaks if np.abs(times * 24 - n).min() > 1]
    assert not stray, f"zoom peaks at frames {stray} with no click there"


def test_a_soundtrack_read_from_a_later_start_keeps_its_beats(clicks):
    path, times = clicks
    f = audio.features(path, 24, frames=24 * 12, start=3.75)  # as `video --start 3.75` reads its clip's sound
    later = times[times >= 3.75] - 3.75
    assert all(np.abs(later - b).min() < 1 / 24 for b in f.beats)  # every beat is on a click, shifted
    assert all(np.abs(f.beats - c).min() < 1 / 24 for c in later[later > 0.5])  # and (past 0.5 s) every click
    short = audio.features(path, 24, frames=24 * 30)  # the video outlasts the song: silence after it
    assert short.per_frame["beat"][24 * 20 + 12 :].max() < 0.01 and short.per_frame["rms"][24 * 21 :].max() == 0


def test_features_are_normalised_and_the_bass_follows_the_bass(tmp_path):
    rate = 44100
    t = np.arange(8 * rate) / rate
    y = 0.4 * np.sin(2 * np.pi * 60 * t) * (t >= 4) + 0.2 * np.sin(2 * np.pi * 5000 * t) * (t < 4)
    f = audio.features(write_audio(tmp_path / "two.flac", y), 10)
    for name, v in f.per_frame.items():
        assert v.shape == (80,) and v.min() >= 0 and v.max() == pytest.approx(1), name
    bass, treble = f.per_frame["bass"], f.per_frame["treble"]
    assert bass[45:].mean() > 10 * bass[:35].mean()
    assert treble[:35].mean() > 10 * treble[45:].mean()


def test_expressions_at_every_frame():
    p = parse_preset({"fps": 10, "seconds": 4, "segments": [{
        "zoom": "1.2 + 0.1*sin(t)", "steps": "3 + 2*(n > 20)", "step_size": [[0, 0.01], [4, "0.02 + 0.001*n"]]}]})
    s = p.check_expressions()
    assert s.at(0).motion.zoom == pytest.approx(1.2)
    assert s.at(15).motion.zoom == pytest.approx(1.2 + 0.1 * np.sin(1.5))
    assert [s.at(n).dream.steps for n in (0, 20, 21, 39)] == [3, 3, 5, 5]
    assert s.at(39).dream.step_size == pytest.approx(0.02 + 0.039)  # the last keyframe's expression
    # a longer video: t runs further, and the check runs again
    short = parse_preset({"seconds": 4, "segments": [{"zoom": "2 - t/5"}]})
    with pytest.raises(UserError, match=r"zoom is 0.00833333 at frame 239, t = 9.96 s, but must be from 0.01"):
        short.with_overrides(seconds=12)


@pytest.mark.parametrize("value, words", [
    ("1 + bass*", ["segments[0].zoom", "syntax error"]),
    ("1 + kick", ["segments[0].zoom", "unknown name 'kick'"]),
    ("1 + sinus(t)", ["unknown function sinus()", "did you mean"]),
    ("__import__('os').system('true')", ["calls through attribute access"]),
    ("__import__('os')", ["unknown function __import__()"]),
    ("max(bass, mid, treble)", ["max() takes 2 arguments"]),
    ("t.__class__", ["attribute"]),
    ("1 - t", ["segments[0].zoom is 0 at frame 24", "t = 1.00 s"]),
    ("log(t)", ["at frame 0", "finite"]),
])  # fmt: skip
def test_bad_expressions_are_one_line_before_any_dreaming(tmp_path, value, words):
    (tmp_path / "p.toml").write_text(f'seconds = 4\n[[segments]]\nzoom = "{value}"\n')
    assert_user_error(run_main("render", "--preset", tmp_path / "p.toml", "-o", tmp_path / "o.mp4"), *words)
    assert not (tmp_path / "o.mp4").exists()


def test_top_level_numbers_are_not_expressions(tmp_path):
    (tmp_path / "p.toml").write_text('fps = "24*2"\n')
    assert_user_error(run_main("render", "--preset", tmp_path / "p.toml", "-o", tmp_path / "o.mp4"), "fps")


@pytest.fixture(scope="module")
def bad_sounds(tmp_path_factory):
    d = tmp_path_factory.mktemp("sounds")
    write_audio(d / "silent.wav", np.zeros(44100))
    (d / "noise.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    write_clip(d / "mute.mp4", camera_path(4, 64, 48))
    return d


@pytest.mark.parametrize("name, preset, words", [
    ("missing.mp3", "default", ["audio file not found"]),
    ("noise.mp3", "default", ["cannot read audio"]),
    ("silent.wav", "default", ["silent"]),
    ("mute.mp4", "default", ["no sound stream"]),
    (None, "music", ["reads 'bass'", "soundtrack", "--audio"]),
])  # fmt: skip
def test_bad_soundtrack_is_one_line_before_any_dreaming(bad_sounds, tmp_path, name, preset, words):
    extra = [] if name is None else ["--audio", bad_sounds / name]
    assert_user_error(run_main("render", "-o", tmp_path / "o.mp4", "--preset", preset, *extra), *words)
    assert not (tmp_path / "o.mp4").exists()


def test_the_mp4_carries_the_song_in_sync(tmp_path):
    rng = np.random.default_rng(1)
    y = 0.3 * rng.standard_normal(3 * 44100) * np.repeat(rng.random(30) > 0.5, 4410)  # bursts: one sharp peak
    song = write_audio(tmp_path / "song.wav", y)
    out = tmp_path / "m.mp4"
    res = zoomdream.render(out, "music", audio=song, size="64x64", fps=12)
    assert res.frames == 36  # as long as the song
    frames = probe(out).frames
    heard, played = audio_samples(out), audio_samples(song)
    assert frames == 36 and abs(len(heard) / 44100 - frames / 12) <= 1 / 12  # within one frame
    n = min(len(heard), len(played))
    lag = int(np.argmax(scipy.signal.correlate(heard[:n], played[:n], method="fft"))) - (n - 1)
    assert lag == 0 and np.corrcoef(heard[:n], played[:n])[0, 1] > 0.95


def _cli(song, out, *extra):
    return [sys.executable, "-m", "zoomdream", "render", "-o", str(out), "--preset", "music", "--audio", str(song),
            "--size", "64x64", "--fps", "12", "--device", "cpu", "--checkpoint-every", "4", "-q", *extra]


def test_ctrl_c_keeps_the_song_to_the_last_frame_and_resume_is_identical(tmp_path, clicks):
    song = clicks[0]
    ref = tmp_path / "ref.mp4"
    assert run_main(*_cli(song, ref, "--seconds", "2")[3:]).returncode == 0
    out = tmp_path / "m.mp4"
    r = interrupted(_cli(song, out, "--seconds", "2"), out, 8)
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    n = probe(out).frames
    assert 8 <= n < 24
    assert abs(len(audio_samples(out)) / 44100 - n / 12) <= 1 / 12
    assert (state_dir(out) / audio.CACHE).is_file()  # the analysis is kept for the resume
    r = run_main(*_cli(song, out, "--seconds", "2", "--resume")[3:])
    assert r.returncode == 0, r.stderr
    assert "analysed" not in r.stderr  # read back, not analysed again
    assert decoded_hashes(out) == decoded_hashes(ref)
    assert np.array_equal(audio_samples(out), audio_samples(ref))


def test_audio_command_plots_and_lists_the_features(tmp_path, clicks):
    r = run_main("audio", clicks[0], "-o", tmp_path / "f.png", "--json", tmp_path / "f.json", "--fps", "30")
    assert r.returncode == 0, r.stderr
    assert "39 beats" in r.stdout and "120 BPM" in r.stdout.replace("117 BPM", "120 BPM")
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["frames"] == 600 and len(data["per_frame"]["beat"]) == 600 and len(data["beats"]) == 39
    from PIL import Image

    assert Image.open(tmp_path / "f.png").size[0] >= 800
    assert_user_error(run_main("audio", clicks[0]), "nothing to write")


def test_music_preset_needs_a_song_and_the_others_dont_change():
    assert load_preset("music").reads_audio
    assert not any(load_preset(name).reads_audio for name in ("default", "journey", "footage"))
