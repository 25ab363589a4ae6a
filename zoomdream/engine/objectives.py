"""What the dream maximises. An objective is a weighted sum of terms, written as text so that
presets, the command line and the API share one syntax:

    features.13                     L2 norm of a layer (the classic DeepDream)
    features.13:12,40               only those channels
    class:banana                    an ImageNet class logit
    guide:cat.jpg@features.13       match the frame's features to a guide image's
    style:tex.png@features.2,features.4   match a texture's Gram matrices
    content:INPUT@features.4        keep the features of a picture (here the input photo)
    0.6*features.10 + 0.4*features.14:5

Each kind of term is one class in KINDS: how it parses and prints, which names it checks,
whether it can be summed over tiles or wants a natural-image prior, and how it binds to a
network. A new kind is one more class here. Parsing gives a plain, hashable Objective; `bind`
turns it into a function of activations once a network is loaded. Nothing here reads a file
or imports torch (a contract in pyproject.toml holds it to that): images a term needs are
loaded by whoever binds it, and names are checked against the catalog."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..base.errors import UserError, closest, quoted
from .catalog import LOGITS, LayerInfo

if TYPE_CHECKING:
    import torch

# Deep enough for eyes, fur and animal faces on mobilenet_v2, shallow enough to stay fast.
DEFAULT_OBJECTIVE = "features.13"
# In place of an image path: the render's (or still's) input photo, so a shipped preset can
# name it without a file of its own.
INPUT = "INPUT"

Activations = dict[str, "torch.Tensor"]
TermFn = Callable[[Activations], "torch.Tensor"]


class Net(Protocol):
    """What a term needs to know about the network it is checked against or bound to."""

    def layer(self, name: str) -> LayerInfo: ...

    def class_names(self) -> list[str]: ...


class Binding(Net, Protocol):
    """What binding adds: features of an image a term named, at `size` px on its long side
    (loaded by the binder, not here)."""

    def features(self, path: str, layer: str, size: int) -> torch.Tensor: ...


def aligned_key(path: str, layer: str) -> str:
    """Where the activations hold a picture's features seen through the frame's own window
    (same crop, roll and view), for terms that compare them position by position."""
    return f"{path}\0{layer}"


@dataclass(frozen=True)
class Term:
    weight: float = 1.0

    kind: ClassVar[str] = ""
    prefix: ClassVar[str] = ""  # "class:"; "" for the kind written as a bare layer name
    syntax: ClassVar[str] = ""  # for hints and --help
    example: ClassVar[str] = ""  # for hints
    tileable: ClassVar[bool] = True  # per-position terms sum over tiles; pooled ones do not
    names_image: ClassVar[bool] = False  # its body starts with an image's path (IMAGE@…), which may hold '+'
    # Which defaults a dream of it takes (settings.DEFAULTS): "plain" amplifies what is there,
    # "natural" needs a natural-image prior or it turns to noise, "match" and "texture" pull
    # toward a target and want steps that settle on it.
    defaults: ClassVar[str] = "plain"

    @classmethod
    def parse(cls, body: str, weight: float, text: str) -> Term:
        raise NotImplementedError

    def body(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        # Short where that is exact (0.6), every digit where not: the text is read back (a saved
        # preset, a video's settings) and must give the same weight.
        short = f"{self.weight:g}"
        weight = short if float(short) == self.weight else repr(self.weight)
        return ("" if self.weight == 1 else f"{weight}*") + self.prefix + self.body()

    @property
    def layers(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """(path, what it is) of each image the term needs, loaded before binding (INPUT: the
        input photo)."""
        return ()

    @property
    def aligned(self) -> tuple[tuple[str, str], ...]:
        """(path, layer) of each picture whose features the term compares with the frame's
        position by position: the dream step sends the picture through the same window."""
        return ()

    def check(self, net: Net) -> None:
        """Every name exists in this network: fail before any work is done."""
        for layer in self.layers:
            net.layer(layer)

    def bind(self, net: Binding) -> TermFn:
        raise NotImplementedError


KINDS: dict[str, type[Term]] = {}


def kind(cls: type[Term]) -> type[Term]:
    """Register a kind of term."""
    KINDS[cls.kind] = cls
    return cls


_LAYER = re.compile(r"^[A-Za-z_][\w.]*$")


@kind
@dataclass(frozen=True)
class Layer(Term):
    """½·Σa² of a layer (or some of its channels): the gradient at the layer is the activation
    itself. Scaled by stride²/channels, which makes the value per input pixel comparable across
    layers and independent of how the image is tiled."""

    layer: str = ""
    channels: tuple[int, ...] = ()

    kind: ClassVar[str] = "layer"
    syntax: ClassVar[str] = "LAYER[:CH,…]"

    @classmethod
    def parse(cls, body: str, weight: float, text: str) -> Term:
        layer, sep, chans = body.partition(":")
        layer = layer.strip()
        if not _LAYER.match(layer):
            raise UserError(f"cannot read objective term '{body}'", "use " + syntax_hint())
        channels: tuple[int, ...] = ()
        if sep:
            try:
                channels = tuple(int(c) for c in chans.split(","))
            except ValueError:
                raise UserError(f"channels in '{body}' must be integers", "write e.g. features.13:12,40") from None
        return cls(weight, layer, channels)

    def body(self) -> str:
        return self.layer + (":" + ",".join(map(str, self.channels)) if self.channels else "")

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def check(self, net: Net) -> None:
        info = net.layer(self.layer)
        for c in self.channels:
            if not 0 <= c < info.channels:
                raise UserError(f"channel {c} is out of range for {self.layer}",
                                f"{self.layer} has channels 0–{info.channels - 1}")

    def bind(self, net: Binding) -> TermFn:
        info = net.layer(self.layer)
        scale = self.weight * info.stride**2 / (len(self.channels) or info.channels)
        layer, channels = self.layer, list(self.channels)

        def term(acts: Activations) -> torch.Tensor:
            a = acts[layer]
            if channels:
                a = a[:, channels]
            return 0.5 * scale * a.float().pow(2).sum()

        return term


@kind
@dataclass(frozen=True)
class Class(Term):
    """An ImageNet class logit. Pooled over the whole image, so it cannot be tiled, and it needs
    a natural-image prior (a blur each step) or it becomes high-frequency noise."""

    name: str = ""

    kind: ClassVar[str] = "class"
    prefix: ClassVar[str] = "class:"
    syntax: ClassVar[str] = "class:NAME"
    tileable: ClassVar[bool] = False
    defaults: ClassVar[str] = "natural"

    @classmethod
    def parse(cls, body: str, weight: float, text: str) -> Term:
        if not body.strip():
            raise UserError(f"objective {quoted(text)} names no class", "write e.g. class:banana")
        return cls(weight, body.strip())

    def body(self) -> str:
        return self.name

    @property
    def layers(self) -> tuple[str, ...]:
        return (LOGITS,)

    def check(self, net: Net) -> None:
        class_index(self.name, net.class_names())

    def bind(self, net: Binding) -> TermFn:
        weight, index = self.weight, class_index(self.name, net.class_names())
        return lambda acts: weight * acts[LOGITS][:, index].float().sum()


@dataclass(frozen=True)
class _ImageAtLayer(Term):
    """A term about one picture at one layer: IMAGE@LAYER."""

    image: str = ""
    layer: str = ""

    what: ClassVar[str] = ""  # "guide image": names the file in messages
    names_image: ClassVar[bool] = True

    @classmethod
    def parse(cls, body: str, weight: float, text: str) -> Term:
        path, layers = _image_at(body, cls)
        if len(layers) != 1 or layers[0] == LOGITS:
            raise UserError(f"'{cls.prefix}{body}' must name one convolutional layer", f"write e.g. {cls.example}")
        return cls(weight, path, layers[0])

    def body(self) -> str:
        return f"{self.image}@{self.layer}"

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        return ((self.image, self.what),)


@kind
@dataclass(frozen=True)
class Guide(_ImageAtLayer):
    """Pull each position of the frame towards the guide image's feature it already resembles
    most (argmax of the dot product), so the guide's textures grow where they fit."""

    kind: ClassVar[str] = "guide"
    prefix: ClassVar[str] = "guide:"
    syntax: ClassVar[str] = "guide:IMAGE@LAYER"
    example: ClassVar[str] = "guide:cat.jpg@features.13"
    what: ClassVar[str] = "guide image"
    size: ClassVar[int] = 320  # long side the guide is read at: enough texture, cheap features

    def bind(self, net: Binding) -> TermFn:
        info = net.layer(self.layer)
        scale = self.weight * info.stride**2 / info.channels
        guide = net.features(self.image, self.layer, self.size)  # C×M
        layer = self.layer

        def term(acts: Activations) -> torch.Tensor:
            x = acts[layer].float().flatten(2)[0]  # C×N
            best = (x.detach().T @ guide).argmax(dim=1)  # N: the closest guide feature, not differentiated
            return scale * (x * guide[:, best]).sum()

        return term


def _image_at(body: str, cls: type[Term]) -> tuple[str, tuple[str, ...]]:
    """IMAGE@LAYER[,LAYER…] → (image, layers); the image's path may hold '@' itself."""
    path, sep, names = body.rpartition("@")
    layers = tuple(n.strip() for n in names.split(","))
    if not sep or not path.strip() or not all(_LAYER.match(n) for n in layers):
        form = cls.syntax.removeprefix(cls.prefix)
        raise UserError(f"'{cls.prefix}{body}' needs {form}", f"write e.g. {cls.example}")
    return path.strip(), layers


def _pixels(a: torch.Tensor, stride: int) -> int:
    """Input pixels behind an activation map: terms scaled by it are per-pixel comparable with
    the layer terms and add up over tiles to the whole frame's value."""
    return a.shape[-2] * a.shape[-1] * stride**2


@kind
@dataclass(frozen=True)
class Style(Term):
    """Texture (Gatys et al.): the Gram matrix of each listed layer, its channels' correlations
    averaged over positions, pulled toward the style image's. Each layer's squared distance is
    divided by the squared norm of the style's matrix, so every layer counts alike whatever its
    activation scale. On a tiled frame each tile matches the texture on its own: stricter than
    matching the whole frame's statistics, and met everywhere instead of on average."""

    image: str = ""
    names: tuple[str, ...] = ()

    kind: ClassVar[str] = "style"
    prefix: ClassVar[str] = "style:"
    syntax: ClassVar[str] = "style:IMAGE@LAYER[,LAYER…]"
    example: ClassVar[str] = "style:texture.png@features.2,features.4,features.7"
    size: ClassVar[int] = 512  # long side the style image is read at: sets the texture's scale
    defaults: ClassVar[str] = "texture"
    names_image: ClassVar[bool] = True
    gain: ClassVar[float] = 0.05  # weight 1 pulls about as hard as a deep layer term does

    @classmethod
    def parse(cls, body: str, weight: float, text: str) -> Term:
        path, layers = _image_at(body, cls)
        if LOGITS in layers:
            raise UserError(f"'{cls.prefix}{body}' names {LOGITS}, which has no positions", "use convolutional layers")
        return cls(weight, path, tuple(dict.fromkeys(layers)))

    def body(self) -> str:
        return f"{self.image}@{','.join(self.names)}"

    @property
    def layers(self) -> tuple[str, ...]:
        return self.names

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        return ((self.image, "style image"),)

    def bind(self, net: Binding) -> TermFn:
        targets = []
        for layer in self.names:
            f = net.features(self.image, layer, self.size)  # C×M
            g = f @ f.T / f.shape[1]
            targets.append((layer, net.layer(layer).stride, g, float(g.pow(2).sum()) + 1e-12))
        weight = self.weight * self.gain / len(targets)

        def term(acts: Activations) -> torch.Tensor:
            total = 0.0
            for layer, stride, target, norm in targets:
                a = acts[layer]
                x = a.float().flatten(2)[0]
                gram = x @ x.T / x.shape[1]
                total = total + _pixels(a, stride) * ((gram - target).pow(2).sum() / norm + 1e-12).sqrt()
            return -weight * total  # type: ignore[return-value]

        return term


@kind
@dataclass(frozen=True)
class Content(_ImageAtLayer):
    """Feature inversion (Mahendran & Vedaldi): the frame's activations at a layer pulled toward
    a picture's, position by position, as a mean squared difference relative to the picture's
    own mean square. The picture is fitted to the frame and seen through the same window each
    step (crop, roll, view), and in a video it moves with the camera, so what it holds in place
    is the picture as the camera sees it."""

    kind: ClassVar[str] = "content"
    prefix: ClassVar[str] = "content:"
    syntax: ClassVar[str] = "content:IMAGE@LAYER"
    example: ClassVar[str] = "content:INPUT@features.4"
    what: ClassVar[str] = "content image"
    defaults: ClassVar[str] = "match"
    gain: ClassVar[float] = 1.0

    @property
    def aligned(self) -> tuple[tuple[str, str], ...]:
        return ((self.image, self.layer),)

    def bind(self, net: Binding) -> TermFn:
        stride, weight = net.layer(self.layer).stride, self.weight * self.gain
        layer, key = self.layer, aligned_key(self.image, self.layer)

        def term(acts: Activations) -> torch.Tensor:
            a, t = acts[layer].float(), acts[key].float()
            return -weight * _pixels(a, stride) * (a - t).pow(2).mean() / (t.pow(2).mean() + 1e-12)

        return term


# ------------------------------------------------------------------------------------ algebra


@dataclass(frozen=True)
class Objective:
    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return " + ".join(map(str, self.terms))

    def __add__(self, other: Objective) -> Objective:
        return Objective(self.terms + other.terms)

    def scaled(self, factor: float) -> Objective:
        return Objective(tuple(replace(t, weight=t.weight * factor) for t in self.terms))

    def renamed(self, paths: Mapping[str, str]) -> Objective:
        """The same objective with each image file in `paths` named by its new name."""
        return Objective(tuple(replace(t, image=paths.get(t.image, t.image)) if t.names_image else t  # type: ignore[attr-defined]
                               for t in self.terms))

    @property
    def layers(self) -> list[str]:
        return sorted({layer for t in self.terms for layer in t.layers})

    @property
    def files(self) -> list[tuple[str, str]]:
        return sorted({f for t in self.terms for f in t.files})

    @property
    def aligned(self) -> list[tuple[str, str]]:
        return sorted({a for t in self.terms for a in t.aligned})

    @property
    def tileable(self) -> bool:
        return all(t.tileable for t in self.terms)

    @property
    def defaults(self) -> str:
        """A class term anywhere needs its prior; targets alone (style, content) want settling
        steps; any other mix dreams with the plain defaults."""
        kinds = {t.defaults for t in self.terms}
        if "natural" in kinds:
            return "natural"
        if kinds <= {"match", "texture"}:
            return kinds.pop() if len(kinds) == 1 else "match"
        return "plain"

    def check(self, net: Net) -> None:
        for t in self.terms:
            t.check(net)

    def bind(self, net: Binding) -> Callable[[Activations], torch.Tensor]:
        """A function from activations to the scalar to maximise."""
        self.check(net)
        parts = [t.bind(net) for t in self.terms]

        def total(acts: Activations) -> torch.Tensor:
            return sum(p(acts) for p in parts)  # type: ignore[return-value]

        return total


def syntax_hint() -> str:
    forms = [k.syntax for k in KINDS.values()]
    return ", ".join(forms[:-1]) + " or " + forms[-1]


_NAME = r"[A-Za-z_][\w.]*"


@functools.cache
def _term(prefixes: tuple[str, ...]) -> re.Pattern:
    """One term, then the '+' that joins it to the next. A '+' inside a weight's exponent (1e+3)
    or inside the image path of a kind that names one (guide:a+b.jpg@features.4) does not split."""
    images = "|".join(map(re.escape, prefixes))
    return re.compile(r"\s*(?:(?P<weight>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?"
                      rf"(?P<body>(?:{images}).+?@{_NAME}(?:\s*,\s*{_NAME})*(?=\s*(?:\+|$))|[^+]*)"
                      r"\s*(?P<plus>\+)?")


# Each term is a pass over its layer's features every step: past 64 an objective is a typo or
# a generated string, and past 8 KB (a few long image paths) no objective is meant.
MAX_TERMS, MAX_TEXT = 64, 8192
# Steps are normalised, so only the ratio of weights counts, and 1e6 is far past any useful one;
# 1e39 overflowed float32 and dreamed a white image.
MAX_WEIGHT = 1e6


def parse_objective(text: Any) -> Objective:
    """Parse objective text (syntax only; names are checked against a network by `check`)."""
    if isinstance(text, Objective):
        return text
    if not isinstance(text, str) or not text.strip():
        raise UserError("empty objective", "give a layer name, e.g. features.13 (see: zoomdream layers MODEL)")
    if len(text) > MAX_TEXT or text.count("+") >= MAX_TERMS:
        raise UserError(f"objective {quoted(text)} is too long ({len(text)} characters, up to "
                        f"{text.count('+') + 1} terms)", f"use at most {MAX_TERMS} terms and {MAX_TEXT} characters")
    terms, pos = [], 0
    pattern = _term(tuple(k.prefix for k in KINDS.values() if k.names_image))
    while True:
        m = pattern.match(text, pos)
        assert m is not None  # every part of the pattern is optional
        body = m["body"].strip()
        if not body:
            raise UserError(f"objective {quoted(text)} has an empty term", "write terms as 'a + 0.5*b'")
        weight = float(m["weight"]) if m["weight"] else 1.0
        if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
            raise UserError(f"objective {quoted(text)} has the weight {m['weight']}",
                            "use weights from -1e6 to 1e6")
        cls = next((k for k in KINDS.values() if k.prefix and body.startswith(k.prefix)), KINDS["layer"])
        terms.append(cls.parse(body[len(cls.prefix):], weight, text))
        pos = m.end()
        if not m["plus"]:
            break
    if pos < len(text):
        raise UserError(f"cannot read objective {quoted(text)}", "use " + syntax_hint())
    return Objective(tuple(terms))


def class_index(name: str, categories: list[str]) -> int:
    if name.isascii() and name.isdigit() and int(name) < len(categories):
        return int(name)
    wanted = name.replace("_", " ").lower()
    for i, c in enumerate(categories):
        if c.lower() == wanted:
            return i
    raise UserError(f"unknown ImageNet class '{name}'",
                    closest(wanted, [c.lower() for c in categories]) + " (spaces may be written as _)")
