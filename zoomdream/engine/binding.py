"""Objectives bound to one loaded network: each objective's truncated network and term
functions, made once, and the pictures its terms name (guide, style and content images, and
INPUT, the input photo), decoded once with their features.

Images and features are kept here rather than per objective, so that the new objective of
every frame of a cross-fade binds without reading or computing them again."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch

from ..base.errors import UserError
from .catalog import LayerInfo
from .images import fit, load_picture, resize_long_side, to_tensor
from .models import DreamNet, Network
from .motion import resample
from .objectives import INPUT, Objective, TermFn, parse_objective
from .tiling import Targets


class Bound(NamedTuple):
    """An objective made ready for one network: what the dream step runs per gradient."""

    net: DreamNet  # truncated at the deepest layer the objective reads
    fn: TermFn  # activations → the value to maximise
    aligned: tuple[tuple[str, str], ...]  # (picture, layer) seen through the frame's window
    aligned_net: DreamNet | None  # truncated at the deepest of those layers


class Bindings:
    """The objectives bound to `network`; `input` is the photo objectives name as INPUT (an
    H×W×3 float image)."""

    def __init__(self, network: Network, input: np.ndarray | None = None):
        self.network = network
        self._nets: dict[frozenset[str], DreamNet] = {}
        self._bound: dict[Objective, Bound] = {}
        # Images that objectives name, by path, decoded once; their features by (path, layer,
        # size); and pictures fitted to a frame size by (path, height, width).
        self.images: dict[str, np.ndarray] = {} if input is None else {INPUT: input}
        self.features: dict[tuple[str, str, int], torch.Tensor] = {}
        self._pictures: dict[tuple[str, int, int], torch.Tensor] = {}

    def net(self, layers: Iterable[str]) -> DreamNet:
        key = frozenset(layers)
        if key not in self._nets:
            self._nets[key] = self.network.truncated(key)
        return self._nets[key]

    def bound(self, objective: Objective | str) -> Bound:
        """The objective made ready, once per objective: its images are loaded and their
        features computed here, before any frame."""
        objective = parse_objective(objective)
        if objective not in self._bound:
            net = self.net(objective.layers)
            fn = objective.bind(_Binding(self, net, objective))
            aligned = tuple(objective.aligned)
            aligned_net = self.net(layer for _, layer in aligned) if aligned else None
            self._bound[objective] = Bound(net, fn, aligned, aligned_net)
        return self._bound[objective]

    def picture(self, path: str, height: int, width: int) -> torch.Tensor:
        """A loaded image fitted to a frame (scaled to cover, centre-cropped), on the device."""
        key = (path, height, width)
        if key not in self._pictures:
            self._pictures[key] = to_tensor(fit(self.images[path], width, height), self.network.device)
        return self._pictures[key]

    def targets(self, objective: Objective, height: int, width: int, camera: torch.Tensor | None = None) -> Targets:
        """The pictures the objective compares with a frame of this size, seen by `camera` (3×3,
        see motion.theta; None: as they are)."""
        out = {}
        for path in sorted({p for p, _ in self.bound(objective).aligned}):
            pic = self.picture(path, height, width)
            out[path] = pic if camera is None else resample(pic, camera)
        return out


class _Binding:
    """What one objective binds against (objectives.Binding): the network's names, and the
    features of the images its terms named, loaded into the Bindings' caches."""

    # Decoded images are kept at most this large (long side): more than any term reads.
    MAX_SIDE = 2048

    def __init__(self, bindings: Bindings, dreamnet: DreamNet, objective: Objective):
        self.network, self.dreamnet, self._features = bindings.network, dreamnet, bindings.features
        self.images = bindings.images
        for path, what in objective.files:
            if path == INPUT and INPUT not in self.images:
                raise UserError(f"the objective names {INPUT}, but there is no input photo",
                                f"give an input image, or a file in place of {INPUT}")
            if path not in self.images:
                img = load_picture(path, what)
                self.images[path] = resize_long_side(img, self.MAX_SIDE) if max(img.shape[:2]) > self.MAX_SIDE else img

    def layer(self, name: str) -> LayerInfo:
        return self.network.layer(name)

    def class_names(self) -> list[str]:
        return self.network.categories

    def features(self, path: str, layer: str, size: int) -> torch.Tensor:
        if (path, layer, size) not in self._features:
            with torch.no_grad():
                x = to_tensor(resize_long_side(self.images[path], size), self.network.device)
                self._features[path, layer, size] = self.dreamnet(x)[layer].float().flatten(2)[0]
        return self._features[path, layer, size]
