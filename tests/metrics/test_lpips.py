"""LPIPS (Zhang et al. 2018; richzhang/PerceptualSimilarity, the ``lpips`` package) and the torchvision-named
backbones.

No real weights are available offline, so the mechanics are checked with randomly initialised backbones and
linear layers saved to tmp files in torchvision's / lpips' exact layout, against a straightforward transcription
written here with torch.nn.functional (conv, relu, max-pool per torchvision's architecture tables; per layer:
unit-normalise over channels, squared difference, weighted channel sum, spatial mean; sum over layers), on
scikit-image photographs. If the ``lpips`` package is importable (find_spec only: it is never imported, it needs
torchvision), its shipped v0.1 linear weights must load strictly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from srlab.errors import SrlabError
from srlab.metrics.backbones import AlexNetFeatures, SqueezeNet11Features, VGG16Features, load_torchvision_weights
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.lpips import LPIPS, lpips
from srlab.metrics.protocol import EvalProtocol
from srlab.metrics.registry import MetricSet
from conftest import photo

# torchvision's state-dict names and shapes (torchvision/models/{alexnet,vgg,squeezenet}.py); the classifier
# entries are real names with tiny placeholder shapes: the loader drops classifier.* (AlexNet's real
# classifier.1.weight alone is 151 MB).
ALEXNET_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
VGG16_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
               14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512),
               28: (512, 512)}
SQUEEZE_FIRES = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128), 9: (256, 48, 192),
                 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
LIN_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512),
                "squeeze": (64, 128, 256, 384, 384, 512, 512)}


def _conv(gen, out_c, in_c, k):
    fan_in = in_c * k * k
    return (torch.randn(out_c, in_c, k, k, generator=gen) * (2 / fan_in) ** 0.5,
            torch.randn(out_c, generator=gen) * 0.05)


def torchvision_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    if arch == "alexnet":
        for i, (o, c, k) in ALEXNET_CONVS.items():
            sd[f"features.{i}.weight"], sd[f"features.{i}.bias"] = _conv(gen, o, c, k)
        cls = (1, 4, 6)
    elif arch == "vgg16":
        for i, (o, c) in VGG16_CONVS.items():
            sd[f"features.{i}.weight"], sd[f"features.{i}.bias"] = _conv(gen, o, c, 3)
        cls = (0, 3, 6)
    else:
        sd["features.0.weight"], sd["features.0.bias"] = _conv(gen, 64, 3, 3)
        for i, (c, s, e) in SQUEEZE_FIRES.items():
            sd[f"features.{i}.squeeze.weight"], sd[f"features.{i}.squeeze.bias"] = _conv(gen, s, c, 1)
            sd[f"features.{i}.expand1x1.weight"], sd[f"features.{i}.expand1x1.bias"] = _conv(gen, e, s, 1)
            sd[f"features.{i}.expand3x3.weight"], sd[f"features.{i}.expand3x3.bias"] = _conv(gen, e, s, 3)
        cls = (1,)
    for j in cls:
        sd[f"classifier.{j}.weight"], sd[f"classifier.{j}.bias"] = torch.zeros(2, 2), torch.zeros(2)
    return sd


def lin_state(net: str, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) * 0.2
            for i, c in enumerate(LIN_CHANNELS[net])}


ARCH = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("lpips_weights")
    files = {}
    for net, arch in ARCH.items():
        torch.save(torchvision_state(arch), root / f"{arch}.pth")
        torch.save(lin_state(net), root / f"{net}.pth")
        files[net] = (root / f"{net}.pth", root / f"{arch}.pth")
    return files


# ---------------------------------------------------------------- the naive reference


def naive_features(net: str, sd: dict, x: torch.Tensor) -> list[torch.Tensor]:
    if net == "alex":
        h1 = F.relu(F.conv2d(x, sd["features.0.weight"], sd["features.0.bias"], stride=4, padding=2))
        h2 = F.relu(F.conv2d(F.max_pool2d(h1, 3, 2), sd["features.3.weight"], sd["features.3.bias"], padding=2))
        h3 = F.relu(F.conv2d(F.max_pool2d(h2, 3, 2), sd["features.6.weight"], sd["features.6.bias"], padding=1))
        h4 = F.relu(F.conv2d(h3, sd["features.8.weight"], sd["features.8.bias"], padding=1))
        h5 = F.relu(F.conv2d(h4, sd["features.10.weight"], sd["features.10.bias"], padding=1))
        return [h1, h2, h3, h4, h5]
    if net == "vgg":
        outs, h = [], x
        for block in ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)):
            if outs:
                h = F.max_pool2d(h, 2, 2)
            for i in block:
                h = F.relu(F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
            outs.append(h)
        return outs

    def fire(i, h):
        s = F.relu(F.conv2d(h, sd[f"features.{i}.squeeze.weight"], sd[f"features.{i}.squeeze.bias"]))
        a = F.relu(F.conv2d(s, sd[f"features.{i}.expand1x1.weight"], sd[f"features.{i}.expand1x1.bias"]))
        b = F.relu(F.conv2d(s, sd[f"features.{i}.expand3x3.weight"], sd[f"features.{i}.expand3x3.bias"], padding=1))
        return torch.cat([a, b], 1)

    pool = lambda h: F.max_pool2d(h, 3, 2, ceil_mode=True)  # noqa: E731
    h1 = F.relu(F.conv2d(x, sd["features.0.weight"], sd["features.0.bias"], stride=2))
    h2 = fire(4, fire(3, pool(h1)))
    h3 = fire(7, fire(6, pool(h2)))
    h4 = fire(9, pool(h3))
    h5 = fire(10, h4)
    h6 = fire(11, h5)
    h7 = fire(12, h6)
    return [h1, h2, h3, h4, h5, h6, h7]


def naive_lpips(net: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's eq. 1 on (N, 3, H, W) [0, 1] images, float64."""
    sd = {k: v.double() for k, v in torchvision_state(ARCH[net]).items()}
    lins = {k: v.double() for k, v in lin_state(net).items()}
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    fx = naive_features(net, sd, ((2 * x.double() - 1) - shift) / scale)
    fy = naive_features(net, sd, ((2 * y.double() - 1) - shift) / scale)
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for i, (a, b) in enumerate(zip(fx, fy)):
        a = a / (torch.sqrt((a**2).sum(1, keepdim=True)) + 1e-10)
        b = b / (torch.sqrt((b**2).sum(1, keepdim=True)) + 1e-10)
        w = lins[f"lin{i}.model.1.weight"].view(1, -1, 1, 1)
        total += ((a - b) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total


def image(name: str, size=(64, 64)) -> torch.Tensor:
    return torch.from_numpy(np.array(photo(name, size))).permute(2, 0, 1).float() / 255


def blurred(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    return torch.from_numpy(scipy.ndimage.gaussian_filter(x.numpy(), sigma=(0, sigma, sigma)))


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_matches_naive_transcription(weights, net):
    size = (96, 96) if net == "alex" else (64, 64)
    x = torch.stack([image("astronaut", size), image("coffee", size)])
    y = torch.stack([blurred(x[0]), (x[1] + 0.05 * torch.randn(x[1].shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)])
    lin, backbone = weights[net]
    model = LPIPS(net, lin_weights=lin, backbone_weights=backbone)
    expected = naive_lpips(net, x, y)
    got = model(x, y)
    assert got.shape == (2,) and (expected > 1e-3).all()
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(model.double()(x, y), expected, rtol=1e-10, atol=1e-12)
    assert float(lpips(x[0], y[0], net, lin_weights=lin, backbone_weights=backbone)) == pytest.approx(
        float(expected[0]), rel=1e-4)


def test_identical_images_give_zero_and_order(weights):
    lin, backbone = weights["alex"]
    model = LPIPS("alex", lin_weights=lin, backbone_weights=backbone)
    x = image("chelsea", (96, 96))
    assert float(model(x, x)) == 0.0
    mild, strong = model(x, blurred(x, 0.7)), model(x, blurred(x, 2.0))
    assert 0 < float(mild) < float(strong)
    grey = x[:1]
    assert float(model(grey, blurred(grey))) == pytest.approx(float(model(grey.expand(3, -1, -1), blurred(grey).expand(3, -1, -1))))


def test_registered_metric_loads_the_files_and_averages(weights):
    lin, backbone = weights["alex"]
    model = LPIPS("alex", lin_weights=lin, backbone_weights=backbone).double()
    x = torch.stack([image("astronaut", (96, 96)), image("rocket", (96, 96))])
    y = torch.stack([blurred(x[0]), blurred(x[1])])
    metrics = MetricSet(("lpips",), {"lpips_lin": str(lin), "lpips_backbone": str(backbone)})
    acc = ScoreAccumulator(EvalProtocol(crop_border=0), metrics)
    per_image = [acc.update(x[i], y[i], scale=2)["lpips"] for i in (0, 1)]
    assert per_image == pytest.approx(model(x.double(), y.double()).tolist(), rel=1e-6)
    acc.update(x[0], y[0], scale=2)
    assert acc.count == 3
    assert acc.compute()["lpips"] == pytest.approx((2 * per_image[0] + per_image[1]) / 3, rel=1e-12)


EXPECTED_NAMES = {
    "alexnet": [f"features.{i}.{p}" for i in ALEXNET_CONVS for p in ("weight", "bias")],
    "vgg16": [f"features.{i}.{p}" for i in VGG16_CONVS for p in ("weight", "bias")],
    "squeezenet1_1": ["features.0.weight", "features.0.bias"] + [
        f"features.{i}.{m}.{p}" for i in SQUEEZE_FIRES for m in ("squeeze", "expand1x1", "expand3x3")
        for p in ("weight", "bias")],
}


@pytest.mark.parametrize("cls", [AlexNetFeatures, VGG16Features, SqueezeNet11Features])
def test_backbones_have_torchvision_names_and_load_strictly(cls, tmp_path):
    model = cls()
    sd = torchvision_state(model.arch)
    assert list(model.state_dict()) == EXPECTED_NAMES[model.arch]
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in sd.items() if not k.startswith("classifier.")}
    torch.save(sd, tmp_path / "full.pth")
    load_torchvision_weights(model, tmp_path / "full.pth")
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k])
    first = EXPECTED_NAMES[model.arch][0]
    torch.save({k: v for k, v in sd.items() if k != first}, tmp_path / "missing.pth")
    with pytest.raises(SrlabError, match=rf"missing \['{first}'\].*pass torchvision's"):
        load_torchvision_weights(cls(), tmp_path / "missing.pth")
    torch.save({**sd, "features.99.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(SrlabError, match="unexpected"):
        load_torchvision_weights(cls(), tmp_path / "extra.pth")


def test_missing_and_wrong_weights_messages(weights, tmp_path):
    x = image("astronaut", (64, 64))
    lin, backbone = weights["alex"]
    with pytest.raises(SrlabError, match=r"LPIPS needs the AlexNet weights: pass backbone_weights=\.\.\. "
                                         r"\(torchvision's alexnet-owt-7be5be79\.pth\)"):
        lpips(x, x, "alex", lin_weights=lin)
    with pytest.raises(SrlabError, match=r"LPIPS needs its linear-layer weights: pass lin_weights=.*"
                                         r"lpips/weights/v0\.1/vgg\.pth"):
        LPIPS("vgg", backbone_weights=weights["vgg"][1])
    with pytest.raises(SrlabError, match=r"VGG16 weights not found at .*nope\.pth: pass torchvision's vgg16-397923af"):
        lpips(x, x, "vgg", lin_weights=weights["vgg"][0], backbone_weights=tmp_path / "nope.pth")
    with pytest.raises(SrlabError, match="not torchvision's AlexNet checkpoint"):
        LPIPS("alex", lin_weights=lin, backbone_weights=weights["vgg"][1])
    with pytest.raises(SrlabError, match=r"does not hold LPIPS alex linear weights.*v0\.1/alex\.pth"):
        LPIPS("alex", lin_weights=weights["vgg"][0], backbone_weights=backbone)
    with pytest.raises(SrlabError, match="net must be one of"):
        lpips(x, x, "resnet", lin_weights=lin, backbone_weights=backbone)


def _shipped_lpips_weights() -> Path | None:
    spec = importlib.util.find_spec("lpips")  # locates the package without importing it (it needs torchvision)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1"


@pytest.mark.skipif(_shipped_lpips_weights() is None, reason="the lpips package is not installed")
@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_shipped_lpips_linear_weights_load_strictly(weights, net):
    path = _shipped_lpips_weights() / f"{net}.pth"
    model = LPIPS(net, lin_weights=path, backbone_weights=weights[net][1])
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    assert set(model.lins.state_dict()) == set(shipped)
    for k, v in shipped.items():
        assert torch.equal(model.lins.state_dict()[k], v)
