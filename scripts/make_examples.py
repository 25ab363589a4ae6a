"""Regenerate the README's example stills: scikit-image's `chelsea` photo (public domain)
dreamed on a shallow and a deep mobilenet_v2 layer with the default settings."""

from pathlib import Path

import numpy as np
from skimage import data

import zoomdream
from zoomdream.images import save_image

OUT = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    photo = data.chelsea().astype(np.float32) / 255
    net = zoomdream.load_network("mobilenet_v2", device="cpu")
    for name, layer in [("shallow", "features.4"), ("deep", "features.13")]:
        stats = zoomdream.DreamStats()
        img = zoomdream.dream(photo, layer, net, size=512, seed=0, stats=stats)
        path = OUT / f"example-{name}-{layer}.jpg"
        save_image(path, img)
        print(f"{path.name}: {stats.steps} steps, {stats.seconds_per_step:.3f} s/step")


if __name__ == "__main__":
    main()
