"""One declaration per setting: the same check, and the same words, whichever door a value
comes in by (a TOML preset, a command-line flag, an API keyword); and the code stays in the
shape that keeps it so."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import zoomdream
from conftest import ROOT, run_cli
from zoomdream.base.errors import UserError
from zoomdream.timeline.presets import Preset, load_preset
from zoomdream.base.settings import DreamSettings, Motion, Range, RenderOptions, StillOptions, declared


def _too_big(r: Range):
    return r.kind(r.hi * 2 + 1) if r.hi is not None else r.kind(-1)


def _numbers(cls):
    return [(k, _too_big(f.metadata["check"])) for k, f in declared(cls).items()
            if isinstance(f.metadata["check"], Range)]


# (key, a wrong value, the doors it comes in by)
CASES = ([(k, v, ("toml-segment", "cli-dream", "api-dream")) for k, v in _numbers(DreamSettings)]
         + [(k, v, ("toml-segment",)) for k, v in _numbers(Motion)]  # keyframed per segment only
         + [(k, v, ("toml", "cli-render", "api-render")) for k, v in _numbers(Preset)
            if k not in ("loop_seconds", "color_strength")]
         + [(k, v, ("toml", "api-render")) for k in ("loop_seconds", "color_strength")
            for v in [_too_big(declared(Preset)[k].metadata["check"])]]
         + [("frames", 0, ("toml", "cli-render", "api-render")), ("size", "33x32", ("toml", "cli-render", "api-render")),
            ("tile", 5, ("toml-segment", "cli-dream", "api-dream"))]
         + [(k, v, ("cli-dream", "api-dream")) for k, v in [("size", 8), ("seed", -1)]]
         + [(k, v, ("cli-render", "api-render")) for k, v in _numbers(RenderOptions)])


def _message(door: str, key: str, value, tmp: Path) -> str:
    """The one-line error a wrong value gets through `door`, without its where-prefix."""
    flag = f"--{key.replace('_', '-')}"
    img = np.zeros((40, 40, 3), np.uint8)
    if door.startswith("cli"):
        (tmp / "in.png").write_bytes(b"")  # never read: the value is refused first
        args = (["dream", tmp / "in.png", "-o", tmp / "o.png"] if door == "cli-dream"
                else ["render", "-o", tmp / "v.mp4"])
        r = run_cli(*args, flag, str(value))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        line = r.stderr.strip().removeprefix("zoomdream: error: ")
        assert line.startswith(f"command line: {flag}: "), line
        return line.removeprefix(f"command line: {flag}: ")
    with pytest.raises(UserError) as e:
        if door.startswith("toml"):
            toml = tmp / "p.toml"
            text = f"{key} = {value!r}".replace("'", '"')
            toml.write_text(f"[[segments]]\n{text}\n" if door == "toml-segment" else f"{text}\n")
            load_preset(toml)
        elif door == "api-dream":
            zoomdream.dream(img, **{key: value})
        else:
            zoomdream.render(tmp / "v.mp4", **{key: value})
    msg = str(e.value)
    where = {"toml": f"{tmp / 'p.toml'}: {key}: ", "toml-segment": f"{tmp / 'p.toml'}: segments[0].{key}: ",
             "api-dream": f"zoomdream.dream(): {key}: ", "api-render": f"zoomdream.render(): {key}: "}[door]
    assert msg.startswith(where), (where, msg)
    return msg.removeprefix(where)


@pytest.mark.parametrize("key,value,doors", CASES, ids=[f"{k}-{'+'.join(d)}" for k, _, d in CASES])
def test_a_wrong_value_gets_the_same_words_through_every_door(tmp_path, key, value, doors):
    messages = {door: _message(door, key, value, tmp_path) for door in doors}
    assert len(set(messages.values())) == 1, messages
    assert "; use" in next(iter(messages.values()))  # the fix follows the problem


def test_every_declared_number_is_covered():
    covered = {k for k, _, _ in CASES}
    for cls in (DreamSettings, Motion, Preset, StillOptions, RenderOptions):
        for k, f in declared(cls).items():
            if isinstance(f.metadata["check"], Range):
                assert k in covered, (cls.__name__, k)


def test_seconds_and_frames_together_are_refused_by_every_door(tmp_path):
    with pytest.raises(UserError, match="both frames and seconds"):
        zoomdream.render(tmp_path / "v.mp4", seconds=5, frames=10)
    r = run_cli("render", "-o", tmp_path / "v.mp4", "--seconds", "5", "--frames", "10")
    assert r.returncode == 2 and "both --frames and --seconds" in r.stderr
    (tmp_path / "p.toml").write_text("seconds = 5\nframes = 10\n")
    with pytest.raises(UserError, match="both frames and seconds"):
        load_preset(tmp_path / "p.toml")


def test_api_refuses_a_missing_photo_before_loading_a_network(tmp_path, monkeypatch):
    import importlib

    for module in map(importlib.import_module, ("zoomdream.api", "zoomdream.run.render")):
        monkeypatch.setattr(module, "load_network", lambda *a, **k: pytest.fail("network loaded first"))
    with pytest.raises(UserError, match="input image not found"):
        zoomdream.dream(tmp_path / "nope.jpg")
    with pytest.raises(UserError, match="input image not found"):
        next(zoomdream.frames(input=tmp_path / "nope.jpg", size="32x32", frames=1))


def test_render_job_and_api_take_keywords_only(tmp_path):
    from zoomdream.run.jobs import RenderJob

    with pytest.raises(TypeError):
        RenderJob(load_preset("default"), tmp_path / "v.mp4")  # type: ignore[misc]
    assert all(f.kw_only for f in dataclasses.fields(RenderJob))


def test_code_shape_keeps_one_place_per_thing():
    """No function over 60 lines; no module imports another's private name."""
    long, private = [], []
    for f in sorted((ROOT / "zoomdream").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{f.name}:{node.lineno} {node.name}")
            if isinstance(node, ast.ImportFrom) and node.level:
                private += [f"{f.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not long and not private, (long, private)


def test_a_new_objective_kind_is_one_class(monkeypatch):
    """Registering a kind is all it takes: the parser reads it, its image path may hold '+',
    and it prints back as written."""
    from dataclasses import dataclass
    from typing import ClassVar

    from zoomdream.engine.objectives import KINDS, _ImageAtLayer, parse_objective

    @dataclass(frozen=True)
    class Mask(_ImageAtLayer):
        kind: ClassVar[str] = "mask"
        prefix: ClassVar[str] = "mask:"
        syntax: ClassVar[str] = "mask:IMAGE@LAYER"
        example: ClassVar[str] = "mask:m.png@features.4"
        what: ClassVar[str] = "mask image"

    monkeypatch.setitem(KINDS, "mask", Mask)
    obj = parse_objective("mask:a+b.png@features.4 + 0.5*features.13")
    assert [type(t).__name__ for t in obj.terms] == ["Mask", "Layer"]
    assert str(obj) == "mask:a+b.png@features.4 + 0.5*features.13"


def test_every_expression_function_takes_the_arguments_it_says():
    from zoomdream.timeline.expressions import FUNCTIONS, arity, parse

    env = {"t": np.linspace(0.1, 0.9, 5), "n": np.arange(5.0), "fps": np.full(5, 24.0)}
    for name in FUNCTIONS:
        args = ", ".join(["t"] * arity(name))
        assert parse(f"{name}({args})", "test").values(env, 5).shape == (5,), name
        with pytest.raises(UserError, match="takes"):
            parse(f"{name}({args}, t)", "test")
