import math

import numpy as np
import torch

from zoomdream.engine.dream import Dreamer
from zoomdream.loops.zoom import LoopSettings, LoopState, dream_frames
from zoomdream.engine.models import load_network
from zoomdream.engine.motion import Motion, move
from zoomdream.timeline.presets import parse_preset


def blobs(size=160, r=30.0, sigma=6.0) -> torch.Tensor:
    """Two Gaussian dots at ±r from the centre: their distance measures the zoom."""
    y, x = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    c = size / 2
    img = sum(torch.exp(-((x - c - dx) ** 2 + (y - c) ** 2) / (2 * sigma**2)) for dx in (-r, r))
    return img.expand(1, 3, size, size).clone()


def separation(img: torch.Tensor) -> float:
    a = img[0, 0].double()
    w = a.shape[1]
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    left, right = a[:, : w // 2], a[:, w // 2 :]
    cl = (left.sum(0) * xs[: w // 2]).sum() / left.sum()
    cr = (right.sum(0) * xs[w // 2 :]).sum() / right.sum()
    return float(cr - cl)


def test_zoom_between_consecutive_frames_matches_setting():
    img = blobs()
    d0 = separation(img)
    one = move(img, Motion(zoom=2.0), fps=24)
    assert separation(one) / d0 == pytest_approx(2 ** (1 / 24), 2e-3)


def test_same_motion_at_24_and_48_fps():
    img = blobs()
    d0 = separation(img)
    a, b = img, img
    for _ in range(12):
        a = move(a, Motion(zoom=1.5, rotate=0), fps=24)
    for _ in range(24):
        b = move(b, Motion(zoom=1.5, rotate=0), fps=48)
    # Each resample shifts a blob's centroid by ~0.1% (interpolation), so 24 resamples drift a
    # little more than 12; a per-frame (not per-second) zoom would be off by 22%.
    assert separation(a) / d0 == pytest_approx(math.sqrt(1.5), 0.015)
    assert separation(b) / d0 == pytest_approx(math.sqrt(1.5), 0.03)
    assert separation(b) / separation(a) == pytest_approx(1.0, 0.03)


def test_rotation_and_pan_per_second():
    img = blobs()
    rot = img
    for _ in range(10):
        rot = move(rot, Motion(rotate=45), fps=10)  # 45° after one second
    a = rot[0, 0]
    ys, xs = torch.nonzero(a > 0.5 * a.max(), as_tuple=True)
    # after 45° the dots lie on a diagonal: the bright pixels spread equally in x and y
    assert abs((xs.double() - 80).abs().mean() - (ys.double() - 80).abs().mean()) < 2.5
    pan = move(blobs(), Motion(pan_x=0.25), fps=1)  # a quarter frame to the right in one second
    # content moves left by 40 px when the view pans right: the left dot goes from x=50 to x=10
    row = pan[0, 0, 80, :30].double()
    x = (row * (torch.arange(30) + 0.5)).sum() / row.sum()
    assert abs(float(x) - 10) < 1.0


def test_frame_loop_applies_motion_per_frame():
    net = load_network("mobilenet_v2", pretrained=False, device="cpu")
    preset = parse_preset({"fps": 24, "frames": 4, "warmup": False, "color": "off", "size": [160, 160],
                           "segments": [{"objective": "features.2", "steps": 0, "zoom": 2.0}]})
    loop = LoopSettings(fps=preset.fps, seed=0, warmup=False)
    frames = list(dream_frames(Dreamer(net), preset.schedule(), LoopState(0, blobs()), loop))
    seps = [separation(f.image) for f in frames]
    ratios = np.array(seps[1:]) / np.array(seps[:-1])
    assert np.allclose(ratios, 2 ** (1 / 24), atol=2e-3)


def pytest_approx(v, rel):
    import pytest

    return pytest.approx(v, rel=rel)


def _dot(h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return torch.exp(-((x - w / 2 - dx) ** 2 + (y - h / 2 - dy) ** 2) / (2 * 5.0**2)).expand(1, 3, h, w).clone()


def _centre(img: torch.Tensor) -> tuple[float, float]:
    """The dot's centroid, relative to the frame's centre (y down)."""
    a = img[0, 0].double()
    h, w = a.shape
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return float((a * x).sum() / a.sum() - w / 2), float((a * y).sum() / a.sum() - h / 2)


def test_rotation_direction_and_non_square_frames():
    # A 160×96 frame: motion must act in pixels, not in the stretched [-1, 1] square.
    img = _dot(96, 160, 30, 0)  # 30 px right of the centre
    # rotate > 0 turns the view counter-clockwise, so the picture turns clockwise: on a screen
    # (y down) 3 o'clock goes to 6 o'clock, and it stays 30 px from the centre (no shear)
    x, y = _centre(move(img, Motion(rotate=90), fps=1))
    assert abs(x) < 0.5 and abs(y - 30) < 0.5
    x, y = _centre(move(img, Motion(rotate=30), fps=1))
    assert abs(x - 30 * math.cos(math.pi / 6)) < 0.5 and abs(y - 15) < 0.5
    x, y = _centre(move(img, Motion(zoom=2), fps=1))  # flying in doubles the distance
    assert abs(x - 60) < 1.0 and abs(y) < 0.5
    x, y = _centre(move(img, Motion(pan_y=0.25), fps=1))  # the view drifts down a quarter frame
    assert abs(x - 30) < 0.5 and abs(y + 24) < 0.5


def test_frame_work_runs_torch_on_one_cpu_thread_and_restores_it():
    from zoomdream.engine.motion import frame_work

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with frame_work(torch.device("meta")):  # another device: left as it is
            assert torch.get_num_threads() == 2
        try:
            with frame_work(torch.device("cpu")):
                assert torch.get_num_threads() == 1
                raise KeyError("stop")
        except KeyError:
            pass
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
