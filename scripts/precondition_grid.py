"""The docs' picture of the step's preconditioning (docs/images/precondition.jpg): each of
scikit-image's four photos and the default preset's noise (rows) dreamed with `zoomdream
dream`'s settings at features.13 under each mode (columns), and a row of class images.

    python scripts/precondition_grid.py [--size 320] [-o docs/images/precondition.jpg]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import look_inputs  # noqa: E402
from zoomdream.base.settings import PRECONDITIONS, DreamSettings  # noqa: E402
from zoomdream.engine.dream import Dreamer  # noqa: E402
from zoomdream.engine.images import grid, labelled, save_image, to_tensor, to_uint8  # noqa: E402
from zoomdream.engine.models import load_network  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--objective", default="features.13")
    ap.add_argument("-o", "--output", default=str(ROOT / "docs/images/precondition.jpg"))
    args = ap.parse_args()
    dreamer = Dreamer(load_network("mobilenet_v2", device="cpu"))
    tiles = []
    rows = [(name, to_tensor(img), args.objective) for name, img in look_inputs(args.size).items()]
    noise = rows[-1][1]
    rows += [(f"class:{c}", noise, f"class:{c}") for c in ("goldfish", "daisy")]
    for name, img, objective in rows:
        for mode in PRECONDITIONS:
            out = dreamer(img, objective, DreamSettings(precondition=mode), torch.Generator().manual_seed(0))
            cell = to_uint8(out)
            h, w = cell.shape[:2]
            pad = np.full((args.size, args.size, 3), 17, np.uint8)  # every cell the same square
            pad[(args.size - h) // 2:(args.size - h) // 2 + h, (args.size - w) // 2:(args.size - w) // 2 + w] = cell
            tiles.append(labelled(pad, f"{name} · {mode}"))
        print(f"{name} done", flush=True)
    save_image(args.output, grid(tiles, cols=len(PRECONDITIONS)))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
