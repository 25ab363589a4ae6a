"""Regenerate the docs' example stills from scikit-image's sample photos (`chelsea`, `coffee`,
`astronaut`: public domain), each dreamed with the library's defaults for its objective, and
print what each scores.

    .venv/bin/python scripts/make_examples.py        # writes docs/images/*.jpg, about 2 minutes
"""

from pathlib import Path

import numpy as np
import torch
from skimage import data

import zoomdream
from zoomdream.loops.zoom import start_frame
from zoomdream.engine.images import fit, save_image, to_tensor
from zoomdream.engine.measure import class_score, correlation
from zoomdream.engine.objectives import class_index

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
CLASSES = ["jellyfish", "banana", "goldfish", "daisy", "volcano"]


def noise(width: int, height: int) -> torch.Tensor:
    return start_frame(width, height, "noise", 0, torch.device("cpu"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    net = zoomdream.load_network("mobilenet_v2", device="cpu")
    photo, coffee = data.chelsea().astype(np.float32) / 255, data.coffee()
    for name, layer in [("shallow", "features.4"), ("deep", "features.13")]:
        save_image(OUT / f"example-{name}-{layer}.jpg", zoomdream.dream(photo, layer, net, size=512, seed=0))

    # class images from noise, side by side, with how firmly the network sees each
    row = []
    for name in CLASSES:
        img = zoomdream.dream(noise(224, 224), f"class:{name}", net, seed=0)
        s = class_score(net, img, class_index(name, net.categories))
        # the same with the prior class objectives had before (a blur, 10 steps of 0.015)
        old = zoomdream.dream(noise(224, 224), f"class:{name}", net, seed=0, steps=10, step_size=0.015,
                              scale_jitter=0, rotate_jitter=0)
        o = class_score(net, old, class_index(name, net.categories))
        print(f"class:{name:<10} top-1 in {s.top1:.0%} of 16 views, mean p {s.probability:.2f} "
              f"(blur only: {o.top1:.0%}, p {o.probability:.2f})")
        row.append(img)
    save_image(OUT / "example-classes.jpg", np.hstack([zoomdream.engine.images.to_uint8(r) for r in row]))

    # style: noise grown into the coffee photo's texture; content: the cat inverted from noise
    texture = OUT / "_coffee.png"
    save_image(texture, coffee)
    style = zoomdream.dream(noise(384, 256), f"style:{texture}@features.2,features.4,features.7", net)
    texture.unlink()
    save_image(OUT / "example-style.jpg", style)
    cat = OUT / "_cat.png"
    save_image(cat, photo)
    inverted = zoomdream.dream(noise(384, 256), f"content:{cat}@features.4", net)
    cat.unlink()
    print(f"content inversion: grey correlation {correlation(inverted, to_tensor(fit(photo, 384, 256))):.2f}")
    save_image(OUT / "example-content.jpg", inverted)

    # a dream that keeps the photo: the same dream with and without content:INPUT
    kept = zoomdream.dream(photo, "features.12 + 0.3*content:INPUT@features.4", net, size=384, steps=10)
    free = zoomdream.dream(photo, "features.12", net, size=384, steps=10)
    save_image(OUT / "example-keep-photo.jpg", np.hstack([free, kept]))

    precision(net, photo)
    footage()
    music()
    sheet()
    zoomdream.atlas(photo, OUT / "atlas-chelsea.jpg", net, size=160, channels="features.10:4", progress=True)
    print(f"wrote {OUT}")


def footage() -> None:
    """`zoomdream video` on the tests' clip (a camera path over the cat, a cup crossing it):
    one frame dreamed each way, and under it what changed from that frame to the next beyond
    the footage's own motion (the flicker a viewer sees), brighter where it changed more."""
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from clips import camera_path, write_clip

    from zoomdream.engine.images import labelled
    from zoomdream.engine.images import grey
    from zoomdream.loops.flow import FlowMethod, consistent, pair, warp_numpy
    from zoomdream.media.clip import read_frames

    n, t = 48, 30
    source = camera_path(n, 256, 192)
    ways = {"source": None, "each frame alone": {"blend": 0}, "DeepDreamVideo-style 50/50, no flow": None,
            "zoomdream video (DIS flow)": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "in.mp4", source)
        decoded = read_frames(clip)
        runs = {"source": decoded}
        for name, kw in ways.items():
            if kw is not None:
                res = zoomdream.dream_video(clip, Path(tmp) / "o.mp4", overwrite=True, **kw)
                runs[name] = read_frames(Path(tmp) / "o.mp4")
                co = res.coherence
                print(f"{name}: warping error {co.output.value:.5f} (source {co.source.value:.5f})")
        runs["DeepDreamVideo-style 50/50, no flow"] = _fifty_fifty(decoded)
    f = pair(FlowMethod("dis"), grey(decoded[t]), grey(decoded[t + 1]))
    mask = consistent(f.forward, f.backward)[..., None]
    tiles, changes = [], []
    for name in ways:
        a, b = runs[name][t].astype(np.float32), warp_numpy(runs[name][t + 1], f.forward).astype(np.float32)
        change = np.clip(np.abs(b - a).mean(-1, keepdims=True) * 4 * mask, 0, 255).repeat(3, -1).astype(np.uint8)
        tiles.append(labelled(runs[name][t], name))
        changes.append(labelled(change, "change to the next frame, x4"))
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    rows = [np.hstack([x for t in row for x in (t, gap)][:-1]) for row in (tiles, changes)]
    save_image(OUT / "example-video.jpg", np.vstack([rows[0], np.full((4, rows[0].shape[1], 3), 255, np.uint8),
                                                     rows[1]]))


def music() -> None:
    """What `zoomdream audio` shows for a made-up 30-second track (tests/clips.song)."""
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from clips import song, write_audio

    from zoomdream.media import audio

    with tempfile.TemporaryDirectory() as tmp:
        f = audio.features(write_audio(Path(tmp) / "song.mp3", song(30)), 24)
        f.path = Path("song.mp3")
        audio.plot(f, OUT / "audio-features.png")


def sheet() -> None:
    """A sweep's contact sheet: two seeds × three layers of the default preset, 2 s each."""
    import tempfile

    from zoomdream.run.batch import sweep_jobs
    from zoomdream.run.runners import run_batch
    from zoomdream.run.sheet import contact_sheet

    with tempfile.TemporaryDirectory() as tmp:
        specs = sweep_jobs(tmp, seeds="0-1", vary=["objective=features.4,features.10,features.13"], size="192x192",
                           seconds=2)
        run_batch(specs, progress=False)
        contact_sheet(specs, OUT / "sweep-sheet.jpg", cell=192)


def precision(net, photo: np.ndarray) -> None:
    """The cat dreamed in fp32, in bf16 with every layer bf16 (before 0.3.1), and in bf16 with
    the first layers float32 (now): the same look, each a different picture (the dream is chaotic)."""
    from dataclasses import replace

    variants = [(net, "fp32"), (replace(net, float32_head=False), "bf16"), (net, "bf16")]
    dreams = [zoomdream.dream(photo, "features.13", n, size=512, seed=0, precision=p) for n, p in variants]
    gap = np.full((dreams[0].shape[0], 8, 3), 255, np.uint8)
    save_image(OUT / "precision-bf16.jpg", np.hstack([dreams[0], gap, dreams[1], gap, dreams[2]]))


def _fifty_fifty(source: list[np.ndarray]) -> list[np.ndarray]:
    """DeepDreamVideo's loop with the footage preset's dream: each frame dreamed on a 50/50
    blend of the raw frame and the previous dream."""
    from zoomdream.engine.dream import Dreamer
    from zoomdream.loops.zoom import frame_generator
    from zoomdream.engine.images import to_uint8
    from zoomdream.timeline.presets import load_preset

    spec = load_preset("footage").schedule().at(0)
    dreamer, prev, out = Dreamer(zoomdream.load_network("mobilenet_v2", device="cpu")), None, []
    for n, frame in enumerate(source):
        src = to_tensor(frame.astype(np.float32) / 255)
        prev = dreamer(src if prev is None else 0.5 * src + 0.5 * prev, spec.objective, spec.dream,
                       frame_generator(0, n))
        out.append(to_uint8(prev[0].permute(1, 2, 0).numpy()))
    return out


if __name__ == "__main__":
    main()
