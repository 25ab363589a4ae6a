"""The objectives that turn the network upside down: style (Gram texture), content (feature
inversion), class images a person recognises, and the layer atlas. Quality is measured with
the real offline MobileNetV2, each figure by the test itself (zoomdream.engine.measure), with the
margins measured on AMD EPYC and on AVX2 kernels noted beside each threshold."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import zoomdream
from zoomdream.engine.atlas import cells
from zoomdream.engine.images import LABEL_HEIGHT
from zoomdream.loops.zoom import start_frame
from zoomdream.engine.images import fit, resize_long_side, save_image, to_tensor
from zoomdream.engine.measure import class_score, correlation, gram, gram_distance
from zoomdream.engine.motion import IDENTITY, camera_after, warp
from zoomdream.engine.objectives import LOGITS, class_index

from conftest import assert_user_error, run_cli, run_main

CPU = torch.device("cpu")


def _noise(width: int, height: int) -> torch.Tensor:
    return start_frame(width, height, "noise", 0, CPU)


def test_style_alone_brings_every_layers_gram_matrix_to_the_texture(mobilenet, tmp_path):
    texture = tmp_path / "coffee.png"
    save_image(texture, data.coffee())
    layers = ["features.2", "features.4", "features.7"]
    net = mobilenet.truncated(layers)
    with torch.no_grad():  # the texture at the size the term reads it (its long side, 512)
        style = net(to_tensor(np.asarray(Image.open(texture).resize((512, 341)), np.float32) / 255))
        target = {k: gram(v) for k, v in style.items()}

    def distances(img: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return {k: gram_distance(gram(v), target[k]) for k, v in net(img).items()}

    noise = _noise(256, 256)
    out = zoomdream.dream(noise, f"style:{texture}@{','.join(layers)}", mobilenet, octaves=4, steps=20)
    before, after = distances(noise), distances(out)
    # measured 8.3×, 16×, 13× (features.2, .4, .7): the shallow layer sets the margin
    for layer in layers:
        assert after[layer] * 5 <= before[layer], (layer, before[layer], after[layer])


CLASSES = ["jellyfish", "banana", "goldfish", "daisy", "volcano"]


def test_class_images_from_noise_are_shapes_the_network_sees_from_any_view(mobilenet):
    # With the blur-only prior of before, 3 of 5 passed at 256 px (banana and daisy top-1 in
    # 31% of views) and 4 of 5 at 224 px (banana 19%). Now all 5 pass at 224 px, p ≥ 0.92.
    passed = []
    for name in CLASSES:
        out = zoomdream.dream(_noise(224, 224), f"class:{name}", mobilenet, seed=0)
        score = class_score(mobilenet, out, class_index(name, mobilenet.categories), views=16)
        passed.append(score.top1 > 0.5 and score.probability >= 0.5)
    assert sum(passed) >= 4, dict(zip(CLASSES, passed))


def test_content_alone_inverts_a_photo_from_noise(mobilenet, tmp_path):
    photo = tmp_path / "astronaut.png"
    save_image(photo, data.astronaut())
    out = zoomdream.dream(_noise(256, 192), f"content:{photo}@features.4", mobilenet)
    target = to_tensor(fit(data.astronaut().astype(np.float32) / 255, 256, 192))
    assert correlation(_noise(256, 192), target) < 0.1
    assert correlation(out, target) >= 0.6  # measured 0.68–0.72 over three photos


def _feature_distance(mobilenet, a: torch.Tensor, b: torch.Tensor) -> float:
    net = mobilenet.truncated(["features.4"])
    with torch.no_grad():
        fa, fb = net(a)["features.4"], net(b)["features.4"]
    return float((fa - fb).pow(2).mean() / fb.pow(2).mean())


def test_content_input_keeps_a_render_close_to_its_photo(mobilenet, photo, photo_file):
    size = (160, 128)
    preset = zoomdream.load_preset("keep-photo").with_overrides(size=f"{size[0]}x{size[1]}", frames=49)
    last = {}
    for weight in (1, 0):
        objective = zoomdream.parse_objective(f"features.12 + {weight}*content:INPUT@features.4")
        p = replace(preset, segments=tuple(replace(s, objective=objective) for s in preset.segments))
        *_, last[weight] = zoomdream.frames(p, photo_file, device="cpu")
    # the photo as the camera sees it at frame 48, and as it was
    camera, schedule = IDENTITY, preset.schedule()
    for n in range(48):
        camera = camera_after(camera, schedule.at(n).motion, preset.fps, size[1], size[0])
    start = to_tensor(fit(photo, *size))
    seen = warp(start, camera).clamp(0, 1)
    kept, free = (_feature_distance(mobilenet, to_tensor(last[w]), seen) for w in (1, 0))
    assert kept * 2 < free, (kept, free)  # measured 0.33 against 3.34
    assert _feature_distance(mobilenet, to_tensor(last[1]), start) < _feature_distance(mobilenet, to_tensor(last[0]),
                                                                                         start)


def test_atlas_writes_one_labelled_cell_per_layer(mobilenet, photo_file, tmp_path):
    out = tmp_path / "atlas.png"
    r = run_cli("atlas", photo_file, "-o", out, "--size", "48", "-q")
    assert r.returncode == 0, r.stderr
    grid = np.asarray(Image.open(out))
    layers = [i.name for i in mobilenet.layers if i.name != LOGITS]
    img = resize_long_side(np.asarray(Image.open(photo_file), np.float32) / 255, 48)
    todo = cells(mobilenet, to_tensor(img), None, None)
    assert [c.objective for c in todo] == ["", *layers]
    # cells are the photo at 48 px plus the label strip, 2 px apart: count them on the grid
    cols, rows = (grid.shape[1] + 2) // (48 + 2), (grid.shape[0] + 2) // (img.shape[0] + LABEL_HEIGHT + 2)
    assert (cols * 50 - 2, rows * (img.shape[0] + LABEL_HEIGHT + 2) - 2) == (grid.shape[1], grid.shape[0])
    assert cols * rows >= len(todo) > cols * (rows - 1)
    assert "atlas" in r.stdout and str(out) in r.stdout


def test_atlas_channels_dream_the_most_excited_channels(mobilenet, photo):
    img = to_tensor(fit(photo, 64, 48))
    todo = cells(mobilenet, img, ["features.4"], ("features.10", 3))
    with torch.no_grad():
        acts = mobilenet.truncated(["features.10"])(img)["features.10"].mean(dim=(0, 2, 3))
    top = [f"features.10:{c}" for c in acts.argsort(descending=True)[:3].tolist()]
    assert [c.objective for c in todo] == ["", "features.4", *top]
    assert todo[-1].label.startswith(top[-1])


@pytest.mark.parametrize("objective, words", [
    ("style:missing.png@features.4", ["style image", "missing.png"]),
    ("style:{bad}@features.4", ["style image"]),
    ("content:missing.png@features.4", ["content image", "missing.png"]),
    ("style:{photo}@features.4,featurs.7", ["unknown layer", "featurs.7", "features.7"]),
    ("style:{photo}", ["style:", "needs IMAGE@LAYER"]),
    ("style:{photo}@", ["needs IMAGE@LAYER"]),
    ("content:{photo}@features.4,features.7", ["one convolutional layer"]),
    ("style:{photo}@logits", ["logits"]),
])
def test_bad_style_and_content_terms_fail_before_dreaming(photo_file, tmp_path, objective, words):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    text = objective.format(photo=photo_file, bad=bad)
    r = run_main("dream", photo_file, "-o", tmp_path / "out.png", "--objective", text)
    assert_user_error(r, *words)
    assert not (tmp_path / "out.png").exists()


def test_input_without_an_input_photo_is_refused_before_dreaming(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('start = "noise"\n[[segments]]\nobjective = "features.10 + content:INPUT@features.4"\n')
    r = run_main("render", "-o", tmp_path / "out.mp4", "--preset", preset, "--frames", "2")
    assert_user_error(r, "INPUT", "no input photo")
    assert not (tmp_path / "out.mp4").exists() and not Path(f"{tmp_path / 'out.mp4'}.zoomdream").exists()
    r = run_main("render", "-o", tmp_path / "out.mp4", "--preset", "texture", "--frames", "2")
    assert_user_error(r, "photo")


def test_input_means_the_photo_in_a_still(mobilenet, photo):
    # content:INPUT on a still holds the photo's features while the dream changes the pixels
    img = to_tensor(fit(photo, 128, 96))
    held = zoomdream.dream(img, "features.12 + 4*content:INPUT@features.4", mobilenet, steps=6, octaves=2)
    free = zoomdream.dream(img, "features.12", mobilenet, steps=6, octaves=2)
    assert _feature_distance(mobilenet, held, img) < 0.5 * _feature_distance(mobilenet, free, img)


def test_the_class_dream_preset_shows_its_class(mobilenet):
    # It used to add 0.3*features.11, whose dog faces were what the eye saw.
    *_, last = zoomdream.frames("class-dream", size="160x160", frames=12, device="cpu")
    score = class_score(mobilenet, to_tensor(last), class_index("jellyfish", mobilenet.categories), views=16)
    assert score.top1 > 0.5 and score.probability >= 0.5, score
