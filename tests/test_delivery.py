"""Delivery: every codec renders, stops, resumes to the same frames and carries its audio;
refused mixes are one line; MP4 and MOV keep their index first; every video carries the
settings that made it, `info` prints them and `render --like` makes the same video again."""

import json
import tomllib

import numpy as np
import pytest
from PIL import Image

import zoomdream
import zoomdream.run.provenance
from clips import camera_path, song, write_audio, write_clip
from conftest import assert_user_error, decoded_hashes, run_main
from zoomdream.base.errors import UserError
from zoomdream.base.paths import VIDEO_SUFFIXES
from zoomdream.base.version import VERSION
from zoomdream.media.clip import probe, read_frames
from zoomdream.media.codecs import CODECS
from zoomdream.media.ffmpeg import tags
from zoomdream.media.writer import concat
from zoomdream.run.jobs import RenderJob
from zoomdream.run.render import render
from zoomdream.timeline.presets import load_preset, parse_preset, preset_data, preset_paths, preset_toml

TINY = dict(width=64, height=64, frames=9, steps=1, octaves=1)


def top_level_atoms(path) -> list[str]:
    """The ISO file's top-level boxes in order (ftyp, moov, mdat…)."""
    data, names, pos = path.read_bytes(), [], 0
    while pos + 8 <= len(data):
        size, name = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        names.append(name)
        if size < 8:
            break
        pos += size
    return names


def quiet(output, preset, **kw):
    job = RenderJob(preset=preset, output=output, device="cpu", progress=False, checkpoint_every=4, **kw)
    return render(job, log=lambda m: None)


@pytest.mark.parametrize("codec,pix_fmt,ext", [("h264", "auto", ".mp4"), ("h265", "yuv420p10le", ".mov"),
                                               ("av1", "auto", ".webm"), ("vp9", "yuv444p", ".mkv"),
                                               ("prores", "auto", ".mov"), ("ffv1", "rgb", ".mkv")])
def test_each_codec_renders_stops_resumes_to_the_same_frames_with_its_audio(tmp_path, codec, pix_fmt, ext):
    sound = write_audio(tmp_path / "song.wav", song(1.0))
    p = load_preset("default").with_overrides(codec=codec, pix_fmt=pix_fmt, **TINY)
    ref = tmp_path / f"ref{ext}"
    quiet(ref, p, audio=sound)
    out = tmp_path / f"r{ext}"
    part = quiet(out, p, audio=sound, stop_after=6)  # in the middle of the second part
    assert part.interrupted and probe(out).frames == 6  # the stopped file plays, with every finished frame
    quiet(out, p, audio=sound, resume=True)
    assert decoded_hashes(out) == decoded_hashes(ref) and len(decoded_hashes(ref)) == 9
    clip = probe(out)
    assert clip.audio is not None and (clip.width, clip.height) == (64, 64)
    if ext in (".mp4", ".mov"):  # faststart: a browser plays it while it downloads
        atoms = top_level_atoms(out)
        assert atoms.index("moov") < atoms.index("mdat"), atoms
    assert json.loads(tags(out)["zoomdream"])["codec"] == codec


def test_lossless_keeps_every_pixel(tmp_path):
    p = load_preset("default").with_overrides(codec="ffv1", **TINY)
    quiet(tmp_path / "a.mkv", p, frames_dir=tmp_path / "png")
    pngs = [np.asarray(Image.open(f).convert("RGB")) for f in sorted((tmp_path / "png").glob("*.png"))]
    decoded = read_frames(tmp_path / "a.mkv")
    assert len(decoded) == len(pngs) == 9 and all(np.array_equal(a, b) for a, b in zip(decoded, pngs))


@pytest.mark.parametrize("args,words", [
    (["--codec", "prores"], ["prores", ".mp4", "mov"]),
    (["--codec", "ffv1"], ["ffv1", ".mkv"]),
    (["--codec", "vp9", "-o", "{d}/v.mov"], ["vp9", ".mov", "h264"]),
    (["-o", "{d}/v.webm"], ["h264", ".webm", "vp9"]),
    (["--codec", "prores", "-o", "{d}/v.mov", "--pix-fmt", "yuv420p"], ["prores", "yuv420p", "yuv422p10le"]),
    (["--codec", "av1", "-o", "{d}/v.webm", "--pix-fmt", "yuv444p"], ["av1", "yuv444p"]),
    (["--codec", "h264", "--pix-fmt", "rgb"], ["h264", "rgb"]),
    (["--codec", "prores", "-o", "{d}/v.mov", "--crf", "10"], ["prores", "crf"]),
    (["--codec", "h264", "--crf", "60"], ["crf", "51"]),
    (["--codec", "mpeg2"], ["codec", "h264"]),
    (["--pix-fmt", "yuv411p"], ["pix-fmt"]),
    (["-o", "{d}/v.avi"], [".avi"]),
])
def test_refused_codec_container_pixel_format_mixes_are_one_line(tmp_path, args, words):
    args = [a.format(d=tmp_path) for a in args]
    out = [] if "-o" in args else ["-o", str(tmp_path / "v.mp4")]
    assert_user_error(run_main("render", *out, "--size", "64x64", "--frames", "2", *args), *words)
    assert list(tmp_path.iterdir()) == []


def test_every_preset_written_out_reads_back_the_same():
    # The settings a video carries are the preset written out: it must read back equal, bit
    # for bit, or `render --like` would make another video.
    for name in preset_paths():
        p = load_preset(name)
        for q in (p, p.with_overrides(zoom="1.1 + 0.05*sin(t)", size="96x64", seconds=7.3, codec="vp9", crf=40,
                                      precondition="decorrelated", objective="0.3333333333333*features.3 + features.5")):
            assert parse_preset(tomllib.loads(preset_toml(preset_data(q))), q.source) == q, name


def test_tags_keep_any_text(tmp_path):
    # ffmetadata escapes = ; # \ and newlines: what goes in comes back.
    quiet(tmp_path / "a.mp4", load_preset("default").with_overrides(**TINY))
    text = 'a = 1; b # c \\ d\n"e"=\\n ünï ' * 50
    for ext in (".mp4", ".mkv"):
        out = tmp_path / f"b{ext}"
        concat([tmp_path / "a.mp4"], out, tags={"zoomdream": text, "comment": "x=y"})
        got = tags(out)
        assert got["zoomdream"] == text and got["comment"] == "x=y"


def test_info_prints_what_render_stored_and_like_makes_the_same_video(tmp_path, photo_file, monkeypatch):
    out = tmp_path / "a.mp4"
    preset = tmp_path / "quick.toml"
    preset.write_text('size = "64x64"\n[[segments]]\nsteps = 1\noctaves = 1\nzoom = "1.1 + 0.1*sin(t)"\n')
    r = run_main("render", photo_file, "-o", out, "--preset", preset, "--frames", "6", "--seed", "7", "--crf", "23",
                 "-q")
    assert r.returncode == 0, r.stderr
    info = run_main("info", out)
    assert info.returncode == 0, info.stderr
    for words in ("seed 7", "crf 23", "photo", str(photo_file.resolve()), 'zoom = "1.1 + 0.1*sin(t)"',
                  "render --like"):
        assert words in info.stdout, (words, info.stdout)
    rec = json.loads(run_main("info", out, "--json").stdout)
    assert rec["seed"] == 7 and rec["inputs"][0]["role"] == "photo" and len(rec["weights"]["sha256"]) == 64
    again = tmp_path / "again.mp4"
    r = run_main("render", "--like", out, "-o", again, "-q")
    assert r.returncode == 0, r.stderr
    assert decoded_hashes(again) == decoded_hashes(out) and "note" not in r.stderr
    monkeypatch.setattr(zoomdream.run.provenance, "VERSION", "0.0.1")  # as if another version made it
    r = run_main("render", "--like", out, "-o", tmp_path / "b.mp4", "-q")
    assert r.returncode == 0 and f"was made by zoomdream {VERSION}; this is 0.0.1" in r.stderr, r.stderr
    assert_user_error(run_main("render", "--like", out, "-o", tmp_path / "c.mp4", "--seed", "3"), "--seed")
    photo_file.write_bytes(photo_file.read_bytes() + b"\0")  # a changed input
    assert_user_error(run_main("render", "--like", out, "-o", tmp_path / "c.mp4"), "changed", "sha-256")
    photo_file.unlink()
    assert_user_error(run_main("render", "--like", out, "-o", tmp_path / "c.mp4"), "no longer there")
    assert not (tmp_path / "c.mp4").exists()


def test_info_on_a_video_without_settings_is_one_line(tmp_path):
    clip = write_clip(tmp_path / "plain.mp4", camera_path(4, 64, 48))
    assert_user_error(run_main("info", clip), "carries no zoomdream settings")
    assert_user_error(run_main("info", tmp_path / "missing.mp4"), "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 10)
    assert_user_error(run_main("info", tmp_path / "junk.mp4"), "junk.mp4")
    with pytest.raises(UserError, match="no zoomdream settings"):
        zoomdream.info(clip)


def test_every_codec_declares_what_it_takes():
    for c in CODECS.values():
        assert c.pix_fmts and c.containers
        assert c.crf is None or c.crf[0] <= c.crf[2] <= c.crf[1]
        assert set(c.containers) <= set(VIDEO_SUFFIXES)
