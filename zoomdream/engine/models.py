"""The frozen network: a torchvision classifier built from its weights, BatchNorm folded into
its convolutions, and cut off right after the deepest layer an objective reads; and the
device it runs on. What a backbone is (its modules, layers and classes) is in catalog.py,
where its weights come from in weights.py."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..base.errors import UserError
from .catalog import (BACKBONES, CLASSES, DEFAULT_MODEL, LAYERS, LOGITS, Backbone, LayerInfo, check_layer,
                      float32_layers, get_backbone)
from .weights import WeightsSource, load_state_dict, resolve_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_module(backbone: Backbone, device: torch.device | str = "cpu") -> nn.Module:
    """The torchvision classifier with the layout of its weights file (uninitialised values)."""
    kwargs = dict(backbone.build_kwargs)
    with torch.device(device):
        return torchvision.models.get_model(backbone.name, weights=None, **kwargs)


def trunk_stages(backbone: Backbone, model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) in forward order, ending with the pooled classification head ('logits')."""
    stages: list[tuple[str, nn.Module]] = []
    for name in backbone.trunk:
        if name.endswith(".*"):
            parent = name[:-2]
            for child_name, child in model.get_submodule(parent).named_children():
                stages.append((f"{parent}.{child_name}", child))
        else:
            stages.append((name, model.get_submodule(name)))
    pool = model.get_submodule(backbone.pool) if backbone.pool else nn.AdaptiveAvgPool2d(1)
    head = [model.get_submodule(h) for h in backbone.head]
    stages.append((LOGITS, nn.Sequential(pool, nn.Flatten(1), *head)))
    return stages


def fold_batchnorm(module: nn.Module, keep: Iterable[nn.Module] = ()) -> int:
    """Fold every frozen BatchNorm into the convolution before it; returns how many. A conv
    in `keep` (a layer objectives can read, like resnet50's conv1) keeps its own output.

    In eval mode a BatchNorm is a per-channel affine map, so conv→BN is one conv with rescaled
    weights and a bias: the same function, minus a full pass over the largest activations both
    forward and backward. On mobilenet_v2 that is a quarter of a dream step (bench/)."""
    keep = {id(m) for m in keep}
    folded = 0
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            # Registration order is forward order in every torchvision backbone used here
            # (Sequential, BasicConv2d, Bottleneck); tests check the folded net's activations.
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and id(conv) not in keep
                    and bn.num_features == conv.out_channels and bn.track_running_stats):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


_SKIP = (nn.MaxPool2d, nn.AvgPool2d, nn.Dropout)


def describe_layers(backbone: Backbone, probe: int = 512) -> list[LayerInfo]:
    """Shapes of every dreamable layer, found by pushing a meta tensor through the network (no
    memory, no weights): what the catalog's tables are checked against."""
    model = build_module(backbone, "meta").eval()
    x = torch.empty(1, 3, probe, probe, device="meta")
    infos = []
    for name, module in trunk_stages(backbone, model):
        x = module(x)
        if isinstance(module, _SKIP):
            continue
        if name == LOGITS:
            infos.append(LayerInfo(name, x.shape[1], probe, "class logits"))
        else:
            # Unpadded convs (inception_v3) shave a few pixels; the nominal stride is a power of 2.
            stride = 2 ** round(math.log2(probe / x.shape[-1]))
            infos.append(LayerInfo(name, x.shape[1], stride, type(module).__name__))
    return infos


class DreamNet(nn.Module):
    """Normalise, then run the trunk only as far as the deepest requested layer, returning
    each requested activation. Under autocast the stages up to the last of `float32` (layer
    names: catalog.float32_layers) run in float32."""

    def __init__(self, stages: list[tuple[str, nn.Module]], wanted: Iterable[str], unit_range: bool,
                 float32: Iterable[str] = ()):
        super().__init__()
        wanted = set(wanted)
        names = [n for n, _ in stages]
        last = max(names.index(w) for w in wanted)
        self.names = names[: last + 1]
        self.wanted = frozenset(wanted)
        self.float32_stages = max((names.index(n) + 1 for n in float32), default=0)
        self.stages = nn.ModuleList(m for _, m in stages[: last + 1])
        for m in self.stages.modules():
            # An in-place ReLU after a captured layer would overwrite the activation we read.
            # Inside the stages in-place saves nothing either: under autograd an in-place ReLU6
            # runs as clone + hardtanh_, a sixth of mobilenet_v2's memory traffic per frame
            # (bench.py traffic: 9.30 → 7.87 GB at 512²) for the same gradient, bit for bit,
            # and the same saved tensors.
            if hasattr(m, "inplace"):
                m.inplace = False
        mean, std = ((0.5,) * 3, (0.5,) * 3) if unit_range else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        device = image.device.type
        half = torch.is_autocast_enabled(device)
        out = {}
        for i, (name, stage) in enumerate(zip(self.names, self.stages)):
            if half and i < self.float32_stages:
                with torch.autocast(device, enabled=False):
                    x = stage(x.float())
            else:
                x = stage(x)
            if name in self.wanted:
                out[name] = x
        return out


@dataclass
class Network:
    """A loaded, frozen classifier plus what objectives need to know about it."""

    backbone: Backbone
    module: nn.Module
    layers: list[LayerInfo]
    categories: list[str]
    source: WeightsSource
    device: torch.device
    channels_last: bool = False
    # Half precision keeps the layers at full and half resolution in float32 (catalog.py says
    # why); False runs them in half precision too (bench: how much that loses).
    float32_head: bool = True

    def layer(self, name: str) -> LayerInfo:
        return check_layer(self.backbone, name, self.layers)

    def class_names(self) -> list[str]:
        return self.categories

    def truncated(self, wanted: Iterable[str]) -> DreamNet:
        wanted = list(wanted)
        for w in wanted:
            self.layer(w)
        float32 = float32_layers(self.backbone.name) if self.float32_head else ()
        net = DreamNet(trunk_stages(self.backbone, self.module), wanted, self.backbone.unit_range_input, float32)
        net = net.to(self.device).eval()
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel.

    A dream step allocates and frees tens of megabytes of activations every step. By default
    glibc serves each such block with a fresh mmap and unmaps it on free, so every step pays
    for the kernel zeroing those pages again: on these 2 cores that was 45% of a mobilenet_v2
    step at 512 px (bench/). The setting is process-wide and only changes where memory comes
    from; peak use stays what it was. A no-op where the C library has no mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


def resolve_device(name: str) -> torch.device:
    name = (name or "auto").lower()
    # ZOOMDREAM_FORCE_DEVICE runs every "auto" or "cpu" request on that device: how
    # bench/gpu.sh runs the device-independent tests, written for the CPU, on a GPU.
    forced = os.environ.get("ZOOMDREAM_FORCE_DEVICE")
    if forced and name in ("auto", "cpu") and forced.lower() not in ("auto", "cpu"):
        return resolve_device(forced)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device '{name}' asked for, but no CUDA GPU is available", "use --device cpu or auto")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise UserError(f"unknown device '{name}'", "use cuda or cuda:N with N a GPU's number") from None
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise UserError(f"device '{name}' asked for, but this machine has {count} CUDA GPU(s)",
                            f"use cuda:0 to cuda:{count - 1}, or --device auto")
        return device
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("device 'mps' asked for, but Apple MPS is not available", "use --device cpu or auto")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device '{name}'", "use auto, cpu, cuda, cuda:N or mps")


def _mismatch(backbone: Backbone, module: nn.Module, state: dict[str, torch.Tensor], where: object) -> UserError:
    """Why a state_dict does not load, naming the architecture it was saved from if it is one
    of ours."""
    fix = f"give the torchvision {backbone.name} ImageNet weights, or --model for the file's network"
    own = module.state_dict()
    for other in BACKBONES.values():
        if other is backbone:
            continue
        keys = build_module(other, "meta").state_dict().keys()
        if len(set(state) & set(keys)) >= 0.9 * len(keys):
            return UserError(f"weights file {where} holds {other.name} weights, not {backbone.name}",
                             f"add --model {other.name}, or give {backbone.name} weights")
    missing = [k for k in own if k not in state]
    if missing:
        return UserError(f"weights file {where} does not fit {backbone.name}: {len(missing)} of {len(own)} tensors "
                         f"missing (e.g. {missing[0]})", fix)
    wrong = [k for k in own if state[k].shape != own[k].shape]
    if wrong:
        return UserError(f"weights file {where} does not fit {backbone.name}: {wrong[0]} has shape "
                         f"{tuple(state[wrong[0]].shape)}, {backbone.name} needs {tuple(own[wrong[0]].shape)}", fix)
    extra = [k for k in state if k not in own]
    return UserError(f"weights file {where} does not fit {backbone.name}: {len(extra)} tensors it does not have "
                     f"(e.g. {extra[0] if extra else '?'})", fix)


def load_network(
    name: str = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    pretrained: bool = True,
    channels_last: bool | None = None,
) -> Network:
    """Build a frozen network. pretrained=False gives random weights (timing and machinery
    tests only: random nets do not dream)."""
    backbone = get_backbone(name)
    device = torch.device(device) if isinstance(device, torch.device) else resolve_device(device)
    module = build_module(backbone, "cpu")
    if pretrained:
        source = resolve_weights(backbone, weights)
        state = load_state_dict(backbone, source)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError:
            raise _mismatch(backbone, module, state, source.path or "downloaded") from None
    else:
        source = WeightsSource("random", None, "random")
    for attr in backbone.unused:
        setattr(module, attr, None)
    module.eval()
    fold_batchnorm(module, keep=[m for _, m in trunk_stages(backbone, module)])
    module.requires_grad_(False).to(device)
    if device.type == "cpu":
        keep_freed_memory()
    # channels_last pays off on CPU (oneDNN) and on CUDA tensor cores; measured in bench/.
    if channels_last is None:
        channels_last = device.type in ("cpu", "cuda")
    return Network(backbone, module, list(LAYERS[backbone.name]), list(CLASSES), source, device, channels_last)
