"""Regenerate the README's example stills from scikit-image's sample photos (`chelsea`, `coffee`,
`astronaut`: public domain), each dreamed with the library's defaults for its objective, and
print what each scores.

    .venv/bin/python scripts/make_examples.py        # writes docs/*.jpg, about 2 minutes
"""

from pathlib import Path

import numpy as np
import torch
from skimage import data

import zoomdream
from zoomdream.frames import start_frame
from zoomdream.images import fit, save_image, to_tensor
from zoomdream.measure import class_score, correlation
from zoomdream.objectives import class_index

OUT = Path(__file__).resolve().parents[1] / "docs"
CLASSES = ["jellyfish", "banana", "goldfish", "daisy", "volcano"]


def noise(width: int, height: int) -> torch.Tensor:
    return start_frame(width, height, "noise", 0, torch.device("cpu"))


def main() -> None:
    OUT.mkdir(exist_ok=True)
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
    save_image(OUT / "example-classes.jpg", np.hstack([zoomdream.images.to_uint8(r) for r in row]))

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

    zoomdream.atlas(photo, OUT / "atlas-chelsea.jpg", net, size=160, channels="features.10:4", progress=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
