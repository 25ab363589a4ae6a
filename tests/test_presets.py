import pytest

from clips import song as made_up_song
from clips import write_audio

from zoomdream.base.errors import UserError
from zoomdream.timeline.presets import load_preset, parse_preset, preset_paths
from zoomdream.run.jobs import RenderJob
from zoomdream.run.render import render
from zoomdream.media.clip import probe

SEG = {"objective": "features.8"}


@pytest.mark.parametrize("data,path,words", [
    ({"fps": 0}, "fps", ["from 1 to 240"]),
    ({"fps": -24}, "fps", ["from 1 to 240"]),
    ({"seconds": float("nan")}, "seconds", ["finite"]),
    ({"seconds": float("inf")}, "seconds", ["finite"]),
    ({"size": "512x0"}, "size", ["too small"]),
    ({"size": "513x512"}, "size", ["odd"]),
    ({"size": "big"}, "size", ["cannot read"]),
    ({"colour": "match"}, "colour", ["unknown key", "color"]),
    ({"seed": "1"}, "seed", ["must be a number"]),
    ({"loop": 1}, "loop", ["true or false"]),
    ({"model": "googlenett"}, "model", ["googlenet"]),
    ({"segments": [{"zoom": -1.0}]}, "segments[0].zoom", ["from 0.01 to 100"]),
    ({"segments": [{"jitter": 10**20}]}, "segments[0].jitter", ["from 0 to 1024"]),
    ({"segments": [{"blur": 1e300}]}, "segments[0].blur", ["from 0 to 5"]),
    ({"segments": [{"pan_x": 1e300}]}, "segments[0].pan_x", ["from -100 to 100"]),
    ({"segments": [{"steps": [[0, 4], [1, 10**30]]}]}, "segments[0].steps[1]", ["from 0 to 1000"]),
    ({"seed": 2**70}, "seed", ["9223372036854775807", "1180591620717411303424"]),
    ({"seed": 10**5000}, "seed", ["too long to print"]),
    ({"seconds": 10**400}, "seconds", ["too large"]),  # past a float: no OverflowError traceback
    ({"segments": [{"zoom": [[10**400, 1.1]]}]}, "segments[0].zoom[0]", ["too large"]),
    ({"loop_seconds": 1e300}, "loop_seconds", ["at most 3600"]),
    ({"size": "32x100000"}, "size", ["16384"]),
    ({"segments": [{"zoom": "fast"}]}, "segments[0].zoom", ["unknown name 'fast'", "did you mean"]),
    ({"segments": [{"steps": 2.5}]}, "segments[0].steps", ["whole number"]),
    ({"segments": [{"objective": "features.99"}]}, "segments[0].objective", ["unknown layer"]),
    ({"segments": [{"objective": "class:bananna"}]}, "segments[0].objective", ["banana"]),
    ({"segments": [{"objective": "features.13:500"}]}, "segments[0].objective", ["out of range"]),
    ({"segments": [{"zooom": 1.2}]}, "segments[0].zooom", ["unknown key", "zoom"]),
    ({"seconds": 4, "segments": [{"seconds": [0, 2], **SEG}, {"seconds": [1, 4], **SEG}]}, "segments[1]", ["overlaps"]),
    ({"seconds": 4, "segments": [{"seconds": [0, 2], **SEG}, {"seconds": [3, 4], **SEG}]}, "segments[1]", ["gap"]),
    ({"seconds": 4, "segments": [{"seconds": [0, 2], **SEG}, {"seconds": [2, 3], **SEG}]}, "segments[1]", ["ends at 3"]),
    ({"seconds": 4, "segments": [{"seconds": [0, 2], **SEG}, SEG]}, "segments[1]", ["no span"]),
    ({"segments": [{"zoom": [[0, 1.1], [0, 1.2]]}]}, "segments[0].zoom[1]", ["increase"]),
    ({"segments": [{"zoom": [[0, 1.1], [99, 1.2]]}]}, "segments[0].zoom[1]", ["past the segment"]),
    ({"segments": "x"}, "segments", ["list of tables"]),
    ({"frames": 10, "seconds": 2}, "frames", ["keep one"]),
])  # fmt: skip
def test_each_validation_error_names_file_key_and_fix(data, path, words):
    with pytest.raises(UserError) as e:
        parse_preset(data, "my.toml")
    msg = str(e.value)
    assert msg.startswith(f"my.toml: {path}:"), msg
    assert ";" in msg  # a fix follows the problem
    for w in words:
        assert w.lower() in msg.lower(), msg


def test_bad_toml_file(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("fps = = 3\n")
    with pytest.raises(UserError, match="invalid TOML"):
        load_preset(str(f))
    with pytest.raises(UserError, match="unknown preset"):
        load_preset("no-such-preset")
    f.write_bytes("\ufefffps = 30\n".encode())  # UTF-8 as Notepad saves it, with a byte-order mark
    assert load_preset(str(f)).fps == 30


def test_keyframes_and_crossfade_schedule():
    p = parse_preset({"fps": 10, "seconds": 4, "segments": [
        {"seconds": [0, 2], "objective": "features.4", "zoom": [[0, 1.0], [2, 2.0]]},
        {"seconds": [2, 4], "objective": "features.10", "zoom": 1.0, "blend": 5}]})  # fmt: skip
    s = p.schedule()
    assert s.at(0).motion.zoom == pytest.approx(1.0)
    assert s.at(19).motion.zoom == pytest.approx(2.0)
    assert 1.0 < s.at(10).motion.zoom < 2.0  # inside the segment: interpolated
    mid = s.at(22)  # in the blend: both objectives, weights summing to 1
    assert [t.layer for t in mid.objective.terms] == ["features.4", "features.10"]
    assert sum(t.weight for t in mid.objective.terms) == pytest.approx(1.0)
    assert 1.0 < mid.motion.zoom < 2.0
    assert str(s.at(30).objective) == "features.10"
    # overriding the length stretches the journey instead of cutting it
    q = p.with_overrides(seconds=8)
    assert q.schedule().bounds == [0, 40, 80]


@pytest.mark.parametrize("name", sorted(preset_paths()))
def test_every_shipped_preset_renders_two_frames(name, tmp_path, photo_file):
    p = load_preset(name).with_overrides(frames=2, width=64, height=64)
    assert p.description
    song = write_audio(tmp_path / "song.wav", made_up_song(2)) if p.reads_audio else None  # music follows a song
    job = RenderJob(preset=p, output=tmp_path / f"{name}.mp4", input=str(photo_file) if p.start == "photo" else None,
                    audio=song, device="cpu", progress=False)
    res = render(job, log=lambda m: None)
    assert res.frames == 2 and not res.interrupted
    assert probe(tmp_path / f"{name}.mp4").frames == 2


def test_at_least_six_distinct_presets():
    names = set(preset_paths())
    assert len(names) >= 6
    kinds = {load_preset(n).start for n in names}
    assert "noise" in kinds and "photo" in kinds
    assert any(load_preset(n).loop for n in names)
    assert any(not load_preset(n).segments[0].objective.tileable for n in names)  # a class dream
