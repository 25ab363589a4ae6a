"""The shape of the code, as facts a test can check: the layers import only downward (the
contracts in pyproject.toml), the command line refuses a bad value before torch loads, no
module cycles, no class past 150 lines, a short README, and a docs site that builds."""

import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import zoomdream
from conftest import ROOT
from zoomdream.base.settings import RenderOptions, declared

BIN = Path(sys.executable).parent


def _structure():
    spec = importlib.util.spec_from_file_location("structure", ROOT / "scripts" / "structure.py")
    module = sys.modules["structure"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_layers_import_only_downward():
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout, r.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is not vacuous: the engine reaching up into the API fails it, naming the line."""
    shutil.copytree(ROOT / "zoomdream", tmp_path / "zoomdream", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    images = tmp_path / "zoomdream" / "engine" / "images.py"
    images.write_text(images.read_text() + "\n\ndef _up():\n    from ..api import render  # noqa: F401\n")
    r = _lint_imports(tmp_path)
    assert r.returncode == 1, r.stdout
    assert "zoomdream.engine.images -> zoomdream.api" in r.stdout, r.stdout


BAD = [
    ["render", "-o", "v.mp4", "--size", "33x32"],
    ["render", "-o", "v.mp4", "--objective", "features.99"],
    ["render", "-o", "v.mp4", "--preset", "nope"],
    ["render", "-o", "v.mp4", "--device", "quantum"],
    ["video", "missing.mp4", "-o", "v.mp4"],
    ["dream", "missing.png", "-o", "o.png"],
    ["sweep", "-o", "tries", "--vary", "zom=1,2"],
    ["live", "--objective", "features.99"],
    ["live", "--port", "99999"],
]


def test_a_bad_value_is_refused_before_torch_is_imported(tmp_path):
    """Each bad command line in one process, one after another: exit 2, one line, and torch
    still not imported after all of them."""
    code = ("import contextlib, io, json, sys\nfrom zoomdream.cli import main\nfor args in json.loads(sys.argv[1]):\n"
            "    err = io.StringIO()\n    with contextlib.redirect_stderr(err):\n        try:\n            main(args)\n"
            "        except SystemExit as e:\n            print(json.dumps([e.code, err.getvalue()]))\n"
            "print('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(BAD)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    *results, torch_loaded = r.stdout.splitlines()
    assert torch_loaded == "False" and len(results) == len(BAD), (r.stdout, r.stderr)
    for args, (status, err) in zip(BAD, map(json.loads, results)):
        assert status == 2 and err.startswith("zoomdream: error:") and len(err.strip().splitlines()) == 1, (args, err)


def test_the_api_names_every_render_option():
    """RenderOptions is the one declaration; each render function's signature still says
    everything it takes."""
    for fn in (zoomdream.render, zoomdream.dream_video):
        missing = set(declared(RenderOptions)) - set(inspect.signature(fn).parameters)
        assert not missing, (fn.__name__, missing)


def test_no_cycles_no_long_classes_few_top_level_files():
    structure = _structure()
    modules = structure.read(ROOT / "zoomdream")
    assert structure.cycles(modules) == []
    long = [(m.name, c, n) for m in modules.values() for c, n in m.classes if n > 150]
    assert not long, long
    assert len(list((ROOT / "zoomdream").glob("*.py"))) <= 8


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_the_docs_site_builds_strictly(tmp_path):
    r = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
