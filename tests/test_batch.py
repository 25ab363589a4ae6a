"""Batches and sweeps: many renders, one after another, in child processes or on Ray."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, assert_user_error, decoded_hashes, run_main
from zoomdream.run.batch import read_jobs, sweep_jobs
from zoomdream.run.runners import run_batch
from zoomdream.engine.images import load_image
from zoomdream.run.state import state_dir
from zoomdream.run.state import CHECKPOINT, load_checkpoint
from zoomdream.media.clip import probe

TINY = {"size": "64x64", "seconds": 0.5}


@pytest.fixture(scope="module")
def ray_local():
    """Real Ray, local: a head and two CPU workers in this machine (no mock)."""
    ray = pytest.importorskip("ray")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"ray.init: {time.perf_counter() - t0:.1f} s")
    yield ray
    ray.shutdown()


def test_a_sweep_on_ray_renders_every_job_and_a_labelled_sheet(tmp_path, ray_local):
    from zoomdream.run.sheet import contact_sheet

    specs = sweep_jobs(tmp_path / "s", seeds="0-1", vary=["zoom=1.1,1.5"], device="cpu", **TINY)
    assert sorted(s.name for s in specs) == ["seed0_zoom-1.1", "seed0_zoom-1.5", "seed1_zoom-1.1", "seed1_zoom-1.5"]
    outcomes = run_batch(specs, ray="local", progress=False)
    assert sorted(o.status for o in outcomes) == ["done"] * 4
    for s in specs:
        assert probe(s.output).frames == 12
    sheet = contact_sheet(specs, tmp_path / "s" / "sheet.png")
    assert sheet.shape[1] > sheet.shape[0] * 0.9  # 2×2 cells: the last axis (zoom) across
    assert load_image(tmp_path / "s" / "sheet.png").shape[:2] == sheet.shape[:2]
    stamps = {s.output: os.stat(s.output).st_mtime_ns for s in specs}
    again = run_batch(specs, ray="local", progress=False)  # nothing left to do
    assert [o.status for o in again] == ["skipped"] * 4
    assert stamps == {s.output: os.stat(s.output).st_mtime_ns for s in specs}


def test_a_killed_worker_is_retried_and_the_job_comes_out_identical(tmp_path, ray_local):
    job = {"size": "96x96", "seconds": 2, "checkpoint_every": 4}
    alone = sweep_jobs(tmp_path / "alone", seeds="5", device="cpu", **job)
    run_batch(alone, ray="local", progress=False)
    specs = sweep_jobs(tmp_path / "killed", seeds="5", device="cpu", **job)
    out = specs[0].output
    killed: list[int] = []

    def kill_mid_job(running: dict[str, int]) -> None:
        ck = state_dir(__import__("pathlib").Path(out)) / CHECKPOINT
        if not killed and specs[0].name in running and ck.exists() and load_checkpoint(ck)["index"] >= 8:
            killed.append(running[specs[0].name])  # the worker's pid, as Ray's task reported it
            os.kill(killed[0], signal.SIGKILL)

    outcomes = run_batch(specs, ray="local", progress=False, on_running=kill_mid_job)
    assert killed, "the job finished before it could be killed"
    assert [o.status for o in outcomes] == ["done"]
    assert "resuming" in specs[0].log.read_text()  # Ray ran it again, and it resumed
    assert decoded_hashes(out) == decoded_hashes(alone[0].output)


def _sweep_cli(folder):
    return [sys.executable, "-m", "zoomdream", "sweep", "-o", str(folder), "--seeds", "0-2", "--size", "64x64",
            "--seconds", "2", "--device", "cpu", "-q"]


def test_ctrl_c_mid_batch_then_the_same_command_gives_the_same_files(tmp_path):
    ref = tmp_path / "ref"
    assert run_main(*_sweep_cli(ref)[3:]).returncode == 0
    out = tmp_path / "run"
    proc = subprocess.Popen(_sweep_cli(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    second = state_dir(out / "seed1.mp4") / CHECKPOINT
    deadline = time.time() + 120
    while not second.exists() and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "run the same command again" in stderr
    assert (out / "seed0.mp4").exists() and not (out / "seed2.mp4").exists()
    r = run_main(*_sweep_cli(out)[3:])
    assert r.returncode == 0, r.stderr
    assert "1 already finished" in r.stdout
    for name in ("seed0.mp4", "seed1.mp4", "seed2.mp4"):
        assert decoded_hashes(out / name) == decoded_hashes(ref / name), name
    assert (out / "sheet.png").exists()


def test_a_jobs_file_with_defaults_and_child_processes(tmp_path):
    (tmp_path / "jobs.toml").write_text("""
[defaults]
size = "64x64"
seconds = 0.25
[[jobs]]
output = "out/a.mp4"
objective = "features.7"
[[jobs]]
output = "out/b.mp4"
preset = "journey"
zoom = "1.2 + 0.1*sin(t)"
""")
    r = run_main("batch", tmp_path / "jobs.toml", "--jobs", "2", "--sheet", tmp_path / "sheet.png", "--device", "cpu",
                 "-q")
    assert r.returncode == 0, r.stderr
    assert "2 rendered" in r.stdout
    assert probe(tmp_path / "out" / "a.mp4").frames == 6 and probe(tmp_path / "out" / "b.mp4").frames == 6
    assert "finished" in (tmp_path / "out" / "b.log").read_text()
    specs = read_jobs(tmp_path / "jobs.toml")
    assert specs[0].labels == {"objective": "features.7", "preset": "default", "zoom": "-"}


@pytest.mark.parametrize("text, words", [
    ('[[jobs]]\noutput = "a.mp4"\nzoom = "fast"\n', ["jobs[0]", "zoom", "unknown name 'fast'"]),
    ('[[jobs]]\noutput = "a.mp4"\n[[jobs]]\noutput = "b.mp4"\nfoo = 1\n', ["jobs[1]", "foo", "unknown key"]),
    ('[[jobs]]\noutput = "a.mp4"\n[[jobs]]\noutput = "a.mp4"\n', ["jobs[0] and", "jobs[1] both write"]),
    ('[[jobs]]\npreset = "default"\n', ["jobs[0]", "no output"]),
    ('[[jobs]]\noutput = "a.mp4"\nseconds = -1\n', ["jobs[0]", "seconds"]),
    ('[[jobs]]\noutput = "a.mp4"\npreset = "nope"\n', ["jobs[0]", "unknown preset 'nope'"]),
    ('[[jobs]]\noutput = "a.mp4"\ncheckpoint_every = 0\n', ["jobs[0]", "checkpoint_every"]),
    ('[jobz]\n', ["unknown table 'jobz'"]),
    ("", ["no jobs"]),
])  # fmt: skip
def test_a_bad_jobs_file_is_one_line_before_any_rendering(tmp_path, text, words):
    (tmp_path / "jobs.toml").write_text(text)
    assert_user_error(run_main("batch", tmp_path / "jobs.toml"), *words)
    assert not list(tmp_path.glob("*.mp4"))


@pytest.mark.parametrize("args, words", [
    (["--size", "64x64"], ["sweep is empty"]),
    (["--seeds", "3-1"], ["--seeds", "cannot read"]),
    (["--vary", "zoom"], ["--vary", "KEY=VALUE"]),
    (["--vary", "zoom=0,1"], ["sweep job zoom-0", "zoom: must be from 0.01"]),
    (["--vary", "bogus=1,2"], ["bogus cannot be varied"]),
    (["--seeds", "0-1", "--ray", "127.0.0.1:1"], ["cannot reach Ray at 127.0.0.1:1"]),
    (["--seeds", "0-1", "--ray", "not an address"], ["--ray", "cannot read address"]),
])  # fmt: skip
def test_a_bad_sweep_is_one_line_before_any_rendering(tmp_path, args, words):
    assert_user_error(run_main("sweep", "-o", tmp_path / "s", *args), *words)
    assert not list(tmp_path.rglob("*.mp4"))


def test_ray_asked_for_but_not_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    assert_user_error(run_main("sweep", "-o", tmp_path / "s", "--seeds", "0-1", "--ray", "auto"),
                      "Ray is not installed", "pip install 'zoomdream[ray]'")


def test_a_batch_checks_contents_before_any_job_and_skips_only_its_own_videos(tmp_path):
    (tmp_path / "text.png").write_text("not a picture")
    (tmp_path / "jobs.toml").write_text('[defaults]\nsize = "32x32"\nframes = 2\n'
                                        '[[jobs]]\noutput = "a.mp4"\n[[jobs]]\noutput = "b.mp4"\ninput = "text.png"\n')
    assert_user_error(run_main("batch", tmp_path / "jobs.toml", "-q"), "jobs[1]", "text.png is not a readable image")
    assert not (tmp_path / "a.mp4").exists()  # refused before the first job
    (tmp_path / "jobs.toml").write_text('[defaults]\nsize = "32x32"\nframes = 2\n[[jobs]]\noutput = "a.mp4"\n')
    (tmp_path / "a.mp4").write_text("hello")  # not a finished job: a file of someone else's
    assert_user_error(run_main("batch", tmp_path / "jobs.toml", "-q"), "a.mp4 is there and is not a video zoomdream made")
    assert (tmp_path / "a.mp4").read_text() == "hello"
    (tmp_path / "a.mp4").unlink()
    assert run_main("batch", tmp_path / "jobs.toml", "-q").returncode == 0
    r = run_main("batch", tmp_path / "jobs.toml", "-q")
    assert r.returncode == 0 and "1 already finished" in r.stdout, r.stdout
