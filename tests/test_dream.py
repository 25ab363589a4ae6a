import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoomdream
from zoomdream.engine.dream import DreamSettings, Dreamer, DreamStats, octave_shapes
from zoomdream.engine.tiling import tile_spans
from zoomdream.base.errors import UserError
from zoomdream.engine.images import fit, load_image, to_tensor, to_uint8
from zoomdream.engine.objectives import class_index, parse_objective


@pytest.fixture(scope="module")
def small_photo(photo):
    return to_tensor(fit(photo, 160, 128))


@pytest.mark.parametrize("objective", ["features.13", "features.4", "features.11:3,7", "0.5*features.6 + features.12"])
def test_objective_rises_with_real_weights(mobilenet, small_photo, objective):
    d = Dreamer(mobilenet)
    stats = DreamStats()
    before = d.evaluate(small_photo, objective)
    out = d(small_photo, objective, DreamSettings(octaves=2, steps=6), torch.Generator().manual_seed(0), stats)
    after = d.evaluate(out, objective)
    # Seeds 0–2 give 1.68–2.04× (features.13) up to 5.9–7.1× (channels): 1.25× leaves a third
    # of the smallest gain as margin for another CPU's kernels.
    assert after > 1.25 * before > 0, (before, after)
    assert out.shape == small_photo.shape and 0 <= out.min() and out.max() <= 1
    # within the last octave the objective climbs step after step (1.3–2.2× over 5 steps)
    assert stats.values[-1] > 1.1 * stats.values[-6]


def _class_probability(network, img, index):
    with torch.no_grad():
        logits = network.truncated(["logits"])(img)["logits"][0].float()
    p = torch.softmax(logits, 0)
    return float(p[index]), int((p > p[index]).sum())  # probability and rank (0 = top-1)


def test_class_objective_makes_the_network_see_the_class(mobilenet, small_photo):
    # A logit's ratio means nothing (logits have an arbitrary offset), so measure what the
    # class objective is for: the network's probability and rank of a class the photo is not.
    index = class_index("goldfish", mobilenet.categories)
    p0, rank0 = _class_probability(mobilenet, small_photo, index)
    out = Dreamer(mobilenet)(small_photo, "class:goldfish", DreamSettings(octaves=2, steps=6),
                             torch.Generator().manual_seed(0))
    p1, rank1 = _class_probability(mobilenet, out, index)
    assert rank0 > 100 and p0 < 1e-3, (rank0, p0)  # a cat photo: goldfish is far down the list
    # seeds 0–2 reach p ≥ 0.9999 at rank 0; other classes reach rank ≤ 1 and p ≥ 0.39
    assert rank1 <= 4 and p1 > 0.2, (rank1, p1)


def _best_match(network, img, guide_feats, layer="features.10") -> float:
    """Mean over the frame's positions of the cosine to the guide feature most like it."""
    with torch.no_grad():
        f = network.truncated([layer])(img)[layer][0].flatten(1)
    return float((F.normalize(f, dim=0).T @ F.normalize(guide_feats, dim=0)).max(dim=1).values.mean())


def test_guide_objective_moves_toward_the_guide_more_than_a_plain_dream(mobilenet, small_photo, tmp_path):
    from skimage import data

    from zoomdream.engine.images import save_image

    guide = tmp_path / "coffee.png"  # a cup of coffee, to pull a cat toward
    save_image(guide, data.coffee())
    with torch.no_grad():
        guide_feats = mobilenet.truncated(["features.10"])(to_tensor(fit(load_image(guide), 160, 128)))
    guide_feats = guide_feats["features.10"][0].flatten(1)
    d = Dreamer(mobilenet)
    start = _best_match(mobilenet, small_photo, guide_feats)
    gains = {}
    for obj in (f"guide:{guide}@features.10", "features.10"):
        out = d(small_photo, obj, DreamSettings(octaves=2, steps=6), torch.Generator().manual_seed(0))
        gains[obj.split(":")[0]] = _best_match(mobilenet, out, guide_feats) - start
    # measured: the guide dream +0.076 (seeds 0–2), a plain L2 dream of the same layer −0.003…+0.005
    assert gains["guide"] > 0.03 and gains["guide"] > 3 * max(gains["features.10"], 0.005), gains


def test_tiled_gradient_equals_untiled(mobilenet, small_photo):
    d = Dreamer(mobilenet)
    img = torch.nn.functional.interpolate(small_photo, size=(192, 224), mode="bilinear")
    full, _ = d.gradient(img, "features.4")
    # 96 px of context covers features.4's receptive field, so tiles must agree exactly.
    tiled, _ = d.gradient(img, "features.4", tile=64, overlap=96)
    assert torch.allclose(tiled, full, rtol=1e-3, atol=1e-4 * full.abs().max())
    # and a tile grid that does not cover enough context differs (the test can fail)
    rough, _ = d.gradient(img, "features.13", tile=64, overlap=0)
    exact, _ = d.gradient(img, "features.13")
    assert not torch.allclose(rough, exact, atol=1e-3 * exact.abs().max())


@pytest.mark.parametrize("length,tile,stride", [(2160, 1024, 16), (1463, 1024, 16), (3840, 512, 32), (100, 64, 8)])
def test_tile_spans_cover_the_frame_in_few_aligned_shapes(length, tile, stride):
    spans = tile_spans(length, tile, stride)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(a == pb for (a, _), (_, pb) in zip(spans[1:], spans))  # contiguous
    assert all(a % stride == 0 and b - a <= tile for a, b in spans)
    assert len(spans) == -(-length // tile)  # the fewest possible
    assert len({b - a for a, b in spans}) <= 2  # equal, but for the last


def test_tiled_dream_runs_on_large_frames(mobilenet):
    d = Dreamer(mobilenet)
    img = torch.rand(1, 3, 200, 300)
    out = d(img, "features.6", DreamSettings(octaves=1, steps=1, tile=96, tile_overlap=16))
    assert out.shape == img.shape and torch.isfinite(out).all()


def test_automatic_tiles_are_1024_on_the_cpu_and_graphs_only_on_cuda(mobilenet):
    # tile 0 is "automatic": 1024 on the CPU (whole frames on a GPU while they fit, measured on
    # one in bench/gpu.py); CUDA graphs never apply to the CPU, whatever is asked
    assert DreamSettings().tile == 0
    d = Dreamer(mobilenet, graphs=True)
    assert d.auto_tile(parse_objective("features.6"), 2160, 3840) == 1024
    assert not d.graphs


def test_half_precision_keeps_the_finest_layers_float32(mobilenet, photo):
    # bf16 loses most of the gradient in the layers at full and half resolution (catalog.py):
    # they run in float32, and the gradient follows fp32's (cosine 0.971 against 0.919 at 256²)
    from dataclasses import replace

    img, objective = to_tensor(fit(photo, 256, 256)), parse_objective("features.13")
    net = mobilenet.truncated(["features.1", "features.2"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        acts = net(img)
    assert acts["features.1"].dtype == torch.float32 and acts["features.2"].dtype == torch.bfloat16
    fp32 = Dreamer(mobilenet).gradient(img, objective)[0].flatten()
    gap = {head: 1 - float(F.cosine_similarity(
        Dreamer(replace(mobilenet, float32_head=head), "bf16").gradient(img, objective)[0].flatten(), fp32, dim=0))
        for head in (True, False)}
    assert gap[True] < 0.05 and gap[True] < gap[False] / 2, gap
    # without autocast the flag changes nothing, bit for bit
    assert torch.equal(Dreamer(replace(mobilenet, float32_head=False)).gradient(img, objective)[0].flatten(), fp32)


def test_frames_round_the_same_on_the_device_as_on_the_host():
    from zoomdream.engine.images import to_numpy

    # OpenCV for 3 channels on the CPU, torch elsewhere (4 channels take that path here), numpy
    # for arrays: the same bytes, with ties (k/510) and values out of range
    ties = (torch.arange(17 * 23) % 511 / 510).view(1, 1, 17, 23)
    img = torch.cat([torch.rand(1, 3, 17, 23) * 1.2 - 0.1, ties], 1)
    ref = np.rint(np.clip(to_numpy(img), 0, 1) * 255).astype(np.uint8)
    three = img[:, 1:]
    for x, want in ((three, ref[..., 1:]), (three.contiguous(memory_format=torch.channels_last), ref[..., 1:]),
                    (img, ref), (to_numpy(img), ref)):
        out = to_uint8(x)
        assert np.array_equal(out, want) and out.flags.c_contiguous


def test_seeded_run_repeats_exactly_and_seeds_differ(mobilenet, small_photo):
    d = Dreamer(mobilenet)
    s = DreamSettings(octaves=2, steps=3)
    a = d(small_photo, "features.10", s, torch.Generator().manual_seed(7))
    b = d(small_photo, "features.10", s, torch.Generator().manual_seed(7))
    c = d(small_photo, "features.10", s, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_octave_sizes():
    shapes = octave_shapes(512, 384, DreamSettings(octaves=4, octave_scale=1.4))
    assert shapes[-1] == (512, 384) and len(shapes) == 4
    assert shapes[0] == (round(512 / 1.4**3), round(384 / 1.4**3))
    assert len(octave_shapes(96, 96, DreamSettings(octaves=4))) == 3  # never below min_octave (48 px)


def test_octaves_carry_only_the_added_detail(mobilenet, small_photo):
    # Three octaves of one tiny step each: only the dreamed detail travels between octaves, so
    # the photo comes back as sharp as it went in. Carrying the whole image down and up the
    # octaves instead would blur it by a resample's worth (measured: 0.0015 against 0.020).
    img = small_photo
    s = DreamSettings(octaves=3, steps=1, step_size=1e-3, jitter=0)
    out = Dreamer(mobilenet)(img, "features.10", s, torch.Generator().manual_seed(0))
    coarse = octave_shapes(*img.shape[-2:], s)[0]
    blurred = F.interpolate(F.interpolate(img, size=coarse, mode="bilinear", antialias=True), size=img.shape[-2:],
                            mode="bilinear")
    assert float((out - img).abs().mean()) < 0.005 < 0.01 < float((blurred - img).abs().mean())
    assert not torch.equal(out, img)  # and it did dream


def test_objective_algebra_round_trips():
    o = parse_objective("0.6*features.10 + 0.4*features.14:5,6 + class:golden_retriever")
    assert [t.kind for t in o.terms] == ["layer", "layer", "class"]
    assert o.terms[1].channels == (5, 6) and o.terms[0].weight == 0.6
    assert parse_objective(str(o)) == o
    assert not o.tileable and o.defaults == "natural"
    mix = o.scaled(0.5) + parse_objective("features.3")
    assert mix.terms[0].weight == pytest.approx(0.3) and mix.layers == ["features.10", "features.14", "features.3", "logits"]
    # a '+' in an exponent or in a guide image's path does not split terms
    o = parse_objective("1e+1*features.4+guide:a+b.png@features.6 + class:banana")
    assert [str(t) for t in o.terms] == ["10*features.4", "guide:a+b.png@features.6", "class:banana"]
    assert parse_objective(str(o)) == o
    for bad in ["", "features.1 +", "features.1:a", "guide:x.png", "3*", "feat ures", "+"]:
        with pytest.raises(UserError):
            parse_objective(bad)


def test_public_api_dreams_arrays(photo):
    img = (fit(photo, 96, 80) * 255).astype(np.uint8)
    out = zoomdream.dream(img, "features.8", steps=2, octaves=1, device="cpu")
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    with pytest.raises(UserError, match="unknown setting .steppes.; did you mean steps"):
        zoomdream.dream(img, steppes=3)
