"""The step's preconditioning (engine/precondition.py): each mode a small pure function of the
gradient, checked on its own, through a dream, and with tiling."""

from __future__ import annotations

import pytest
import torch

from zoomdream.base.errors import UserError
from zoomdream.base.settings import PRECONDITIONS, DreamSettings
from zoomdream.engine.dream import Dreamer
from zoomdream.engine.objectives import parse_objective
from zoomdream.engine.precondition import (decorrelated, from_decorrelated, laplacian, laplacian_merge,
                                           laplacian_split, shaped, to_decorrelated)
from zoomdream.engine.images import fit, to_tensor
from zoomdream.timeline.presets import load_preset


@pytest.fixture(scope="module")
def small_photo(photo):
    return to_tensor(fit(photo, 160, 128))


def test_none_is_the_gradient_itself():
    g = torch.randn(1, 3, 40, 56)
    assert shaped(g, "none") is g


def test_one_laplacian_band_is_the_plain_normalised_gradient():
    g = torch.randn(1, 3, 48, 64) * torch.linspace(0.1, 3, 64)
    plain, lap = g / g.abs().mean(), laplacian(g, bands=1)
    assert torch.allclose(lap / lap.abs().mean(), plain, atol=1e-6)


@pytest.mark.parametrize("bands, scale", [(2, 2.0), (4, 2.0), (5, 1.5), (3, 3.0)])
def test_laplacian_bands_add_up_to_the_image(bands, scale):
    x = torch.randn(1, 3, 75, 101)
    levels = laplacian_split(x, bands, scale)
    assert len(levels) == bands and levels[0].shape == x.shape and levels[-1].shape[-1] < x.shape[-1]
    assert torch.allclose(laplacian_merge(levels), x, atol=1e-5)


def test_laplacian_evens_out_the_bands():
    """A gradient with its energy in the finest band (as a dream's is) comes out with every
    band at the same RMS: the coarse ones move as much as the fine ones."""
    torch.manual_seed(0)
    fine = torch.randn(1, 3, 64, 64)
    coarse = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 8), size=(64, 64), mode="bilinear")
    g = fine + 0.05 * coarse
    rms = [b.pow(2).mean().sqrt().item() for b in laplacian_split(laplacian(g, 4, 2.0), 4, 2.0)]
    before = [b.pow(2).mean().sqrt().item() for b in laplacian_split(g, 4, 2.0)]
    assert max(before) / min(before) > 7 and max(rms) / min(rms) < 1.6


def test_decorrelated_round_trips_an_image_through_its_basis():
    x = torch.rand(1, 3, 61, 90)
    assert (from_decorrelated(to_decorrelated(x)) - x).abs().max() < 1e-5


def test_decorrelated_is_the_parametrisations_jacobian_and_back():
    """J·Jᵀ·g with Jᵀ from autograd through J (from_decorrelated): the step a gradient step on
    the decorrelated, 1/f-scaled parameters makes in the image."""
    g = torch.randn(1, 3, 32, 48, dtype=torch.float64)
    z = torch.zeros(1, 3, 32, 48, dtype=torch.float64, requires_grad=True)
    (jt_g,) = torch.autograd.grad((from_decorrelated(z) * g).sum(), z)
    assert torch.allclose(decorrelated(g), from_decorrelated(jt_g), atol=1e-10)
    # the frequencies are scaled by 1/f: a fine-grained gradient loses its fine grain
    def roughness(x: torch.Tensor) -> float:
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() / x.abs().mean())

    assert roughness(decorrelated(g)) < 0.2 * roughness(g)


@pytest.mark.parametrize("mode", PRECONDITIONS)
def test_every_mode_tiles_like_the_whole_frame(mobilenet, small_photo, mode):
    d, objective = Dreamer(mobilenet), parse_objective("features.4")
    img = torch.nn.functional.interpolate(small_photo, size=(192, 224), mode="bilinear")
    whole, _ = d.step(img, objective, DreamSettings(step_size=0.02, jitter=0, precondition=mode),
                      torch.Generator().manual_seed(0))
    # 96 px of context covers features.4's receptive field, so the tiled gradient is the same
    tiled, _ = d.step(img, objective, DreamSettings(step_size=0.02, jitter=0, tile=64, tile_overlap=96,
                                                    precondition=mode), torch.Generator().manual_seed(0))
    assert torch.allclose(tiled, whole, atol=2e-5), (tiled - whole).abs().max()
    assert not torch.equal(whole, img)


def test_the_modes_dream_differently_and_the_default_follows_the_objective(mobilenet, small_photo):
    d = Dreamer(mobilenet)

    def dream(objective: str, **kw) -> torch.Tensor:
        return d(small_photo, objective, DreamSettings(octaves=1, steps=3, **kw), torch.Generator().manual_seed(1))

    out = {m: dream("features.10", precondition=m) for m in PRECONDITIONS}
    assert torch.equal(dream("features.10"), out["laplacian"])  # a layer's default
    assert not torch.equal(out["laplacian"], out["none"]) and not torch.equal(out["decorrelated"], out["none"])
    d.objectives.images["INPUT"] = small_photo[0].permute(1, 2, 0).numpy()
    content = "content:INPUT@features.4"  # content alone keeps the classic step
    assert torch.equal(dream(content), dream(content, precondition="none"))


def test_a_preset_names_its_mode_per_segment_and_flags_set_every_segment():
    p = load_preset("journey").with_overrides(precondition="laplacian", bands=3)
    assert all(dict(s.choices)["precondition"] == "laplacian" for s in p.segments)
    spec = p.schedule().at(5)
    assert spec.dream.precondition == "laplacian" and spec.dream.bands == 3
    with pytest.raises(UserError, match="unknown value 'fourier'"):
        load_preset("journey").with_overrides(precondition="fourier")
