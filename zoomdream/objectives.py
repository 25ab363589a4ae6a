"""What the dream maximises. An objective is a weighted sum of terms, written as text so that
presets and the command line share one syntax:

    features.13                     L2 norm of a layer (the classic DeepDream)
    features.13:12,40               only those channels
    class:banana                    an ImageNet class logit
    guide:cat.jpg@features.13       match the frame's features to a guide image's
    0.6*features.10 + 0.4*features.14:5

Parsing gives a plain, hashable Objective; `bind` turns it into a function of activations
once a network is loaded."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .errors import UserError, closest
from .models import LOGITS, Backbone, DreamNet, LayerInfo, Network, check_layer
from .paths import input_file

TERM_KINDS = ("layer", "class", "guide")
# Deep enough for eyes, fur and animal faces on mobilenet_v2, shallow enough to stay fast.
DEFAULT_OBJECTIVE = "features.13"


@dataclass(frozen=True)
class Term:
    kind: str
    weight: float = 1.0
    layer: str = ""
    channels: tuple[int, ...] = ()
    target: str = ""  # class name, or guide image path

    def __str__(self) -> str:
        w = "" if self.weight == 1 else f"{self.weight:g}*"
        if self.kind == "class":
            return f"{w}class:{self.target}"
        if self.kind == "guide":
            return f"{w}guide:{self.target}@{self.layer}"
        ch = ":" + ",".join(map(str, self.channels)) if self.channels else ""
        return f"{w}{self.layer}{ch}"


@dataclass(frozen=True)
class Objective:
    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return " + ".join(map(str, self.terms))

    def __add__(self, other: Objective) -> Objective:
        return Objective(self.terms + other.terms)

    def scaled(self, factor: float) -> Objective:
        return Objective(tuple(replace(t, weight=t.weight * factor) for t in self.terms))

    @property
    def layers(self) -> list[str]:
        return sorted({t.layer for t in self.terms})

    @property
    def tileable(self) -> bool:
        """Per-position terms can be summed over tiles; a class logit pools the whole image."""
        return all(t.kind != "class" for t in self.terms)

    @property
    def wants_prior(self) -> bool:
        """Class visualisations need a natural-image prior or they turn into high-frequency noise."""
        return any(t.kind == "class" for t in self.terms)


_WEIGHT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*(.+)$")
_LAYER = re.compile(r"^[A-Za-z_][\w.]*$")


def parse_objective(text: str) -> Objective:
    """Parse objective text (syntax errors only; names are checked against a model by `check`)."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("empty objective", "give a layer name, e.g. features.13 (see: zoomdream layers MODEL)")
    terms = []
    for part in text.split("+"):
        part = part.strip()
        if not part:
            raise UserError(f"objective '{text}' has an empty term", "write terms as 'a + 0.5*b'")
        weight = 1.0
        m = _WEIGHT.match(part)
        if m:
            weight, part = float(m.group(1)), m.group(2).strip()
            if not math.isfinite(weight):
                raise UserError(f"objective '{text}' has a non-finite weight", "use a finite number")
        terms.append(_parse_term(part, weight, text))
    return Objective(tuple(terms))


def _parse_term(part: str, weight: float, text: str) -> Term:
    if part.startswith("class:"):
        name = part[len("class:"):].strip()
        if not name:
            raise UserError(f"objective '{text}' names no class", "write e.g. class:banana")
        return Term("class", weight, LOGITS, target=name)
    if part.startswith("guide:"):
        body = part[len("guide:"):]
        path, sep, layer = body.rpartition("@")
        if not sep or not path.strip() or not _LAYER.match(layer.strip()):
            raise UserError(f"guide term '{part}' needs IMAGE@LAYER", "write e.g. guide:cat.jpg@features.13")
        return Term("guide", weight, layer.strip(), target=path.strip())
    layer, sep, chans = part.partition(":")
    layer = layer.strip()
    if not _LAYER.match(layer):
        raise UserError(f"cannot read objective term '{part}'",
                        "use LAYER, LAYER:CH[,CH…], class:NAME or guide:IMAGE@LAYER")
    channels: tuple[int, ...] = ()
    if sep:
        try:
            channels = tuple(int(c) for c in chans.split(","))
        except ValueError:
            raise UserError(f"channels in '{part}' must be integers", "write e.g. features.13:12,40") from None
    return Term("layer", weight, layer, channels)


def class_index(name: str, categories: list[str]) -> int:
    if name.isascii() and name.isdigit() and int(name) < len(categories):
        return int(name)
    wanted = name.replace("_", " ").lower()
    for i, c in enumerate(categories):
        if c.lower() == wanted:
            return i
    raise UserError(f"unknown ImageNet class '{name}'",
                    closest(wanted, [c.lower() for c in categories]).replace(" ", " ") + " (spaces may be written as _)")


def check_names(objective: Objective, backbone: Backbone, layers: list[LayerInfo],
                categories: Callable[[], list[str]]) -> None:
    """Every name in the objective exists in this backbone: fail before any work is done.
    Needs no weights, so presets are checked before a network is loaded."""
    for t in objective.terms:
        info = check_layer(backbone, t.layer, layers)
        for c in t.channels:
            if not 0 <= c < info.channels:
                raise UserError(f"channel {c} is out of range for {t.layer}",
                                f"{t.layer} has channels 0–{info.channels - 1}")
        if t.kind == "class":
            class_index(t.target, categories())
        if t.kind == "guide":
            input_file(t.target, "guide image", "check the path after 'guide:'")


def check(objective: Objective, network: Network) -> None:
    check_names(objective, network.backbone, network.layers, lambda: network.categories)


ObjectiveFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def bind(objective: Objective, network: Network, dreamnet: DreamNet, guide_size: int = 320) -> ObjectiveFn:
    """A function from activations to the scalar to maximise.

    Layer terms are ½·Σa² (so the gradient at the layer is the activation itself), scaled by
    stride²/channels: that makes the value per input pixel comparable across layers and
    independent of how the image is tiled."""
    check(objective, network)
    parts: list[Callable[[dict[str, torch.Tensor]], torch.Tensor]] = []
    for t in objective.terms:
        info = network.layer(t.layer)
        if t.kind == "class":
            parts.append(_class_term(t.weight, class_index(t.target, network.categories)))
        elif t.kind == "guide":
            scale = t.weight * info.stride**2 / info.channels
            parts.append(_guide_term(t.layer, scale, _guide_features(t, network, dreamnet, guide_size)))
        else:
            scale = t.weight * info.stride**2 / (len(t.channels) or info.channels)
            parts.append(_layer_term(t.layer, scale, t.channels))

    def total(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(p(acts) for p in parts)  # type: ignore[return-value]

    return total


def _layer_term(layer: str, scale: float, channels: tuple[int, ...]):
    def term(acts):
        a = acts[layer]
        if channels:
            a = a[:, list(channels)]
        return 0.5 * scale * a.float().pow(2).sum()

    return term


def _class_term(weight: float, index: int):
    return lambda acts: weight * acts[LOGITS][:, index].float().sum()


def _guide_term(layer: str, scale: float, guide: torch.Tensor):
    # Each frame position is pulled towards the guide feature it already resembles most
    # (argmax of the dot product), so the guide's textures grow where they fit.
    def term(acts):
        a = acts[layer].float()
        x = a.flatten(2)[0]  # C×N
        with torch.no_grad():
            best = (x.T @ guide).argmax(dim=1)  # N
        return scale * (x * guide[:, best]).sum()

    return term


def _guide_features(t: Term, network: Network, dreamnet: DreamNet, size: int) -> torch.Tensor:
    from .images import check_min_size, load_image, resize_long_side, to_tensor

    img = load_image(t.target, "guide image")
    check_min_size(img, f"guide image {t.target}")
    x = to_tensor(resize_long_side(img, size), network.device)
    with torch.no_grad():
        if t.layer not in dreamnet.wanted:
            raise AssertionError("dreamnet must include the guide layer")
        return dreamnet(x)[t.layer].float().flatten(2)[0]  # C×M
