"""Every path a user gives, of every kind a name can stand for, through the real CLI in a
subprocess: one line, exit 2, never a hang (each run has a timeout that fails the test)."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_user_error
from zoomdream.engine.images import load_image, save_image
from zoomdream.engine.weights import package_weight_file
from zoomdream.media.clip import probe

# Root reads and writes through permission bits. setpriv runs the CLI as root without the
# capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a chmod 000 file is as
# unreadable to it as to any user; a non-root user needs nothing.
DROP = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
        "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []  # fmt: skip
TIMEOUT = 90  # an error arrives in well under a second (or ~4 s where torch loads): never hang CI


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    cmd = [*DROP, sys.executable, "-m", "zoomdream", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.fixture(scope="module")
def place(tmp_path_factory, photo):
    d = tmp_path_factory.mktemp("paths")
    save_image(d / "cat.png", photo[:96, :128])
    (d / "ok.toml").write_text('size = "64x64"\nframes = 2\n')
    return d


# What a name can stand for, and the words the one-line error must use. Each builds the path
# `name` inside `d`; the device is /dev/null behind a symlink so that it can carry any name.
def _folder(p):
    p.mkdir()


def _fifo(p):
    os.mkfifo(p)


def _device(p):
    p.symlink_to("/dev/null")


def _dangling(p):
    p.symlink_to(p.with_name("nowhere-" + p.name))


def _loop(p):
    other = p.with_name("loop-" + p.name)
    p.symlink_to(other)
    other.symlink_to(p)


def _unreadable(p):
    shutil.copy(Path(__file__).parent.parent / "docs" / "images" / "example-deep-features.13.jpg", p)
    p.chmod(0)


KINDS = {"folder": (_folder, "folder"), "fifo": (_fifo, "FIFO"), "device": (_device, "device"),
         "dangling": (_dangling, "dangling symlink"), "loop": (_loop, "symlink loop"),
         "unreadable": (_unreadable, "not readable")}  # fmt: skip

# Where a path goes on the command line: (file name, argv given the path and the folder).
ROLES = {
    "input image": ("in.png", lambda p, d: ["dream", p, "-o", d / "o.png"]),
    "render input": ("in.png", lambda p, d: ["render", p, "-o", d / "o.mp4"]),
    "guide image": ("g.png", lambda p, d: ["dream", d / "cat.png", "-o", d / "o.png", "--size", "32",
                                           "--objective", f"guide:{p}@features.4"]),
    "preset file": ("p.toml", lambda p, d: ["render", "-o", d / "o.mp4", "--preset", p]),
    "weights file": ("w.pth", lambda p, d: ["dream", d / "cat.png", "-o", d / "o.png", "--weights", p]),
    "dream output": ("out.png", lambda p, d: ["dream", d / "cat.png", "-o", p, "--overwrite"]),
    "video output": ("out.mp4", lambda p, d: ["render", "-o", p, "--overwrite"]),
    "--frames-dir": ("frames", lambda p, d: ["render", "-o", d / "o.mp4", "--frames-dir", p]),
    "--gif": ("prev.gif", lambda p, d: ["render", "-o", d / "o.mp4", "--gif", p, "--overwrite"]),
}
OUTPUTS = {"dream output", "video output", "--frames-dir", "--gif"}


def _cases():
    for role in ROLES:
        for kind in KINDS:
            if role == "--frames-dir" and kind == "folder":
                continue  # a folder is what it wants
            if role in OUTPUTS and kind == "unreadable":
                continue  # see test_unwritable_output_places
            yield role, kind


@pytest.mark.parametrize("role,kind", list(_cases()))
def test_every_path_kind_gives_one_line(place, tmp_path, role, kind):
    if kind == "unreadable" and os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root reads every file and setpriv (util-linux) is missing to drop that power")
    name, argv = ROLES[role]
    make, words = KINDS[kind]
    for f in ("cat.png", "ok.toml"):
        shutil.copy(place / f, tmp_path / f)
    path = tmp_path / name
    make(path)
    r = cli(*argv(path, tmp_path))
    expect = [words] if not (kind == "folder" and role in OUTPUTS) else ["folder"]
    assert_user_error(r, *expect)
    assert not (tmp_path / "o.mp4.zoomdream").exists()  # a refused run leaves nothing behind


def test_unwritable_output_places(place, tmp_path):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root writes everywhere and setpriv (util-linux) is missing to drop that power")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    shutil.copy(place / "cat.png", tmp_path / "cat.png")
    assert_user_error(cli("dream", tmp_path / "cat.png", "-o", ro / "o.png"), "not writable")
    assert_user_error(cli("render", "-o", ro / "v.mp4"), "not writable")
    assert_user_error(cli("render", "-o", tmp_path / "v.mp4", "--frames-dir", ro / "f"), "not writable")
    assert_user_error(cli("render", "-o", tmp_path / "v.mp4", "--gif", ro / "p.gif"), "not writable")


def test_names_with_spaces_and_other_alphabets_work(place, tmp_path):
    d = tmp_path / "dossier d'été ünï 猫"
    d.mkdir()
    cat = d / "chat tigré 猫.png"
    shutil.copy(place / "cat.png", cat)
    weights = d / "poids ü.pth"
    weights.symlink_to(package_weight_file("mobilenet_v2-b0353104.pth"))
    guide = d / "guide é.png"
    shutil.copy(place / "cat.png", guide)
    r = cli("dream", cat, "-o", d / "rêve 1.png", "--size", "48", "--octaves", "1", "--steps", "1",
            "--weights", weights, "--objective", f"features.4 + 0.5*guide:{guide}@features.4", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert load_image(d / "rêve 1.png").shape[:2] == (36, 48)
    preset = d / "mon preset ä.toml"
    shutil.copy(place / "ok.toml", preset)
    r = cli("render", cat, "-o", d / "vidéo 1.mp4", "--preset", preset, "--weights", weights, "--frames-dir",
            d / "images ü", "--gif", d / "aperçu.gif", "--checkpoint-every", "1", "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert probe(d / "vidéo 1.mp4").frames == 2 and (d / "aperçu.gif").stat().st_size > 0
    assert len(list((d / "images ü").glob("*.png"))) == 2
    assert np.isfinite(load_image(d / "images ü" / "frame_000001.png")).all()
