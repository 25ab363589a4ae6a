"""bench/ops.py, the op-by-op instruments bench/gpu.py takes to a GPU: they must find an
operation that does not repeat, and count bytes as the kernels move them."""

import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import ops  # noqa: E402

from zoomdream.engine.dream import Dreamer  # noqa: E402
from zoomdream.engine.models import load_network  # noqa: E402

_calls = itertools.count()


@torch.library.custom_op("zoomdream_test::drifts", mutates_args=())
def drifts(x: torch.Tensor) -> torch.Tensor:
    """Like a kernel that sums in a different order each run: x, off by a few ulps that change
    from call to call."""
    return x * (1 + (next(_calls) % 7) * 1e-7)


def _run(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    y = torch.nn.functional.conv2d(x, w, padding=1).relu()
    return drifts(y).sum(dim=1)


def test_repeats_finds_the_op_that_does_not_repeat_and_where_two_runs_part():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    w = torch.rand(4, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    runs = []
    for _ in range(2):
        with ops.Repeats(record=True) as r:
            _run(x, w)
        runs.append(r)
    assert [f.op.split("(")[0] for f in runs[0].findings] == ["zoomdream_test::drifts"]
    assert 0 < runs[0].findings[0].difference < 1e-5
    parted = ops.parting(runs[0].calls, runs[1].calls)
    assert len(parted) == 1 and "zoomdream_test::drifts" in parted[0] and "same inputs, other outputs" in parted[0]


def test_repeats_runs_ops_that_write_their_inputs_on_copies_that_alias_alike():
    x, y = torch.rand(64), torch.empty(64)
    with ops.Repeats() as r:
        x.add_(x)  # one tensor twice: its copy must be one tensor twice too
        torch.mul(x, 3, out=y)
        y.copy_(x)
    assert r.ops == 3 and r.findings == []


def test_the_dream_gradient_repeats_op_by_op_on_the_cpu():
    net = load_network("mobilenet_v2", device="cpu")
    img = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    dreamer = Dreamer(net)
    dreamer.gradient(img, "features.13")
    runs = []
    for _ in range(2):
        with ops.Repeats(record=True) as r:
            dreamer.gradient(img, "features.13")
        runs.append(r)
    assert runs[0].ops > 150  # forward and backward were both seen
    assert runs[0].findings == [] and ops.parting(runs[0].calls, runs[1].calls) == []


def test_traffic_counts_reads_and_writes_and_views_move_nothing():
    a, b = torch.ones(1000), torch.ones(1000)
    with ops.Traffic() as t:
        a.view(10, 100).t()  # views
        a + b  # reads 2 × 4000 bytes, writes 4000
        a * a  # reads a once
        b.copy_(a)  # reads a, writes b
    assert t.by_op == {"add.Tensor": 12000, "mul.Tensor": 8000, "copy_": 8000}


def test_the_dream_net_runs_no_copy_per_activation():
    # An in-place ReLU6 under autograd runs as clone + hardtanh_: 224 copies a frame, 16% of
    # the bytes a frame moves (bench.py traffic). The DreamNet turns in-place off throughout.
    net = load_network("mobilenet_v2", device="cpu")
    with ops.Traffic() as t:
        Dreamer(net).gradient(torch.rand(1, 3, 64, 64), "features.13")
    assert t.calls["hardtanh"] > 20 and t.calls["clone"] <= 2 and "hardtanh_" not in t.calls


def test_the_gpu_script_runs_where_no_gpu_is_lent():
    # The next session lent a GPU has 15 minutes of it for bench/gpu.sh: a script that stops at
    # its first import (it named zoomdream.models after the redesign) loses them all.
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run(["bash", "bench/gpu.sh", "--device", "cpu", "--quick", "--only", "roundtrips"], cwd=root,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "## roundtrips" in r.stdout and " finite |" in r.stdout and "motion_error" in r.stdout
