"""A batch's contact sheet: the middle frame of every job's video in a labelled grid, the
values that vary between the jobs as labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..base.errors import UserError
from ..engine.images import grid, labelled, save_image
from ..media.clip import middle_frame
from .batch import JobSpec


def contact_sheet(specs: list[JobSpec], path: str | Path, cell: int = 256) -> np.ndarray:
    """One labelled cell per job (the middle frame of its video; grey if it has none yet), in a
    grid, written to `path`."""
    tiles = []
    for s in specs:
        label = " · ".join(f"{k} {v}" for k, v in s.labels.items()) or s.name
        tile = np.full((cell, cell, 3), 255, np.uint8)
        try:
            frame = middle_frame(Path(s.output))
        except UserError:
            frame, label = np.full((cell, cell, 3), 96, np.uint8), label + " (not rendered)"
        h, w = frame.shape[:2]
        scale = cell / max(h, w)
        frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        h, w = frame.shape[:2]
        tile[(cell - h) // 2 : (cell - h) // 2 + h, (cell - w) // 2 : (cell - w) // 2 + w] = frame
        tiles.append(labelled(tile, label))
    # A grid's columns are the values of what varies last (a sweep's innermost axis), when that
    # lays it out in full rows.
    last = [s.labels[k] for s in specs for k in list(s.labels)[-1:]]
    cols = len(set(last)) if last and len(set(last)) > 1 and len(specs) % len(set(last)) == 0 else None
    sheet = grid(tiles, cols)
    save_image(path, sheet)
    return sheet
