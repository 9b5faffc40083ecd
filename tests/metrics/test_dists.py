"""DISTS (Ding et al., TPAMI 2020; dingkeyan93/DISTS, the ``DISTS_pytorch`` package).

No real weights offline: a randomly initialised VGG16 in torchvision's layout and random alpha/beta are saved to
tmp files, and srlab's DISTS is checked against a transcription of the paper's equations written here (VGG16
with L2 pooling via explicit 3x3 Hann-window convolutions, six stages including the image, per-channel
structure and texture terms with c1 = c2 = 1e-6) on scikit-image photographs. If the ``DISTS_pytorch`` package
is installed (located with find_spec, never imported: it needs torchvision), its shipped weights.pt must load.
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
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.dists import DISTS, dists
from srlab.metrics.protocol import EvalProtocol
from srlab.metrics.registry import MetricSet
from conftest import photo

VGG16_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
               14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512),
               28: (512, 512)}


def vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's vgg16 names and shapes (classifier placeholders: the loader drops classifier.*)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (o, c) in VGG16_CONVS.items():
        sd[f"features.{i}.weight"] = torch.randn(o, c, 3, 3, generator=gen) * (2 / (9 * c)) ** 0.5
        sd[f"features.{i}.bias"] = torch.randn(o, generator=gen) * 0.05
    for j in (0, 3, 6):
        sd[f"classifier.{j}.weight"], sd[f"classifier.{j}.bias"] = torch.zeros(2, 2), torch.zeros(2)
    return sd


def alpha_beta(seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"alpha": 0.1 + 0.01 * torch.randn(1, 1475, 1, 1, generator=gen),
            "beta": 0.1 + 0.01 * torch.randn(1, 1475, 1, 1, generator=gen)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("dists_weights")
    torch.save(vgg16_state(), root / "vgg16.pth")
    torch.save(alpha_beta(), root / "weights.pt")
    return root / "weights.pt", root / "vgg16.pth"


def naive_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    sd = {k: v.double() for k, v in vgg16_state().items()}
    ab = {k: v.double().flatten() for k, v in alpha_beta().items()}
    hann = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    win = torch.outer(hann, hann)
    win = win / win.sum()

    def l2pool(h):
        c = h.shape[1]
        return torch.sqrt(F.conv2d(h**2, win.expand(c, 1, 3, 3), stride=2, padding=1, groups=c) + 1e-12)

    def stages(img):
        mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
        h, outs = (img - mean) / std, [img]
        for block in ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)):
            if len(outs) > 1:
                h = l2pool(h)
            for i in block:
                h = F.relu(F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
            outs.append(h)
        return outs

    x, y = x.double(), y.double()
    fx, fy = stages(x), stages(y)
    total_w = ab["alpha"].sum() + ab["beta"].sum()
    result = []
    for n in range(x.shape[0]):
        s, offset = 0.0, 0
        for a, b in zip(fx, fy):
            for c in range(a.shape[1]):
                u, v = a[n, c], b[n, c]
                mu, mv = u.mean(), v.mean()
                var_u, var_v = ((u - mu) ** 2).mean(), ((v - mv) ** 2).mean()
                cov = (u * v).mean() - mu * mv
                s1 = (2 * mu * mv + 1e-6) / (mu**2 + mv**2 + 1e-6)
                s2 = (2 * cov + 1e-6) / (var_u + var_v + 1e-6)
                s = s + ab["alpha"][offset + c] * s1 + ab["beta"][offset + c] * s2
            offset += a.shape[1]
        result.append(1 - s / total_w)
    return torch.stack(result)


def image(name: str, size=(64, 64)) -> torch.Tensor:
    return torch.from_numpy(np.array(photo(name, size))).permute(2, 0, 1).float() / 255


def blurred(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    return torch.from_numpy(scipy.ndimage.gaussian_filter(x.numpy(), sigma=(0, sigma, sigma)))


def test_matches_naive_transcription(files):
    x = torch.stack([image("astronaut"), image("chelsea")])
    y = torch.stack([blurred(x[0]), (x[1] + 0.05 * torch.randn(x[1].shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)])
    weights, backbone = files
    model = DISTS(weights=weights, backbone_weights=backbone)
    expected = naive_dists(x, y)
    got = model(x, y)
    assert got.shape == (2,) and (expected > 1e-3).all()
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model.double()(x, y), expected, rtol=1e-10, atol=1e-12)
    assert float(dists(x[1], y[1], weights=weights, backbone_weights=backbone)) == pytest.approx(float(expected[1]), rel=1e-4)


def test_identical_images_give_zero_and_order(files):
    weights, backbone = files
    model = DISTS(weights=weights, backbone_weights=backbone).double()
    x = image("coffee", (96, 96))
    assert abs(float(model(x, x))) < 1e-12
    assert 0 < float(model(x, blurred(x, 0.7))) < float(model(x, blurred(x, 2.0)))
    metrics = MetricSet(("dists",), {"dists": str(weights), "dists_backbone": str(backbone)})
    acc = ScoreAccumulator(EvalProtocol(crop_border=0), metrics)
    for hr in (blurred(x), x, blurred(x, 2.0)):
        acc.update(x, hr, scale=2)
    assert acc.count == 3 and acc.compute()["dists"] == pytest.approx(
        (float(model(x, blurred(x))) + float(model(x, blurred(x, 2.0)))) / 3, abs=1e-9)


def test_vgg_names_with_l2_pooling(files):
    weights, backbone = files
    model = DISTS(weights=weights, backbone_weights=backbone)
    assert list(model.backbone.state_dict()) == [f"features.{i}.{p}" for i in VGG16_CONVS for p in ("weight", "bias")]
    assert [type(model.backbone.features[i]).__name__ for i in (4, 9, 16, 23)] == ["L2Pool"] * 4


def test_missing_and_wrong_weights_messages(files, tmp_path):
    weights, backbone = files
    x = image("astronaut")
    with pytest.raises(SrlabError, match=r"DISTS needs the VGG16 weights: pass backbone_weights=\.\.\. "
                                         r"\(torchvision's vgg16-397923af\.pth\)"):
        dists(x, x, weights=weights)
    with pytest.raises(SrlabError, match=r"DISTS needs its alpha/beta weights: pass weights=.*DISTS_pytorch.*weights\.pt"):
        DISTS(backbone_weights=backbone)
    with pytest.raises(SrlabError, match=r"alpha/beta weights not found at .*nope\.pt"):
        dists(x, x, weights=tmp_path / "nope.pt", backbone_weights=backbone)
    torch.save({"alpha": torch.zeros(1, 1475, 1, 1)}, tmp_path / "half.pt")
    with pytest.raises(SrlabError, match="does not hold DISTS weights"):
        DISTS(weights=tmp_path / "half.pt", backbone_weights=backbone)
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, tmp_path / "alexnet.pth")
    with pytest.raises(SrlabError, match="not torchvision's VGG16 checkpoint"):
        DISTS(weights=weights, backbone_weights=tmp_path / "alexnet.pth")


def _shipped() -> Path | None:
    spec = importlib.util.find_spec("DISTS_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights.pt"
    return path if path.is_file() else None


@pytest.mark.skipif(_shipped() is None, reason="the DISTS_pytorch package is not installed")
def test_shipped_alpha_beta_load(files):
    model = DISTS(weights=_shipped(), backbone_weights=files[1])
    shipped = torch.load(_shipped(), map_location="cpu", weights_only=True)
    assert torch.equal(model.alpha, shipped["alpha"]) and torch.equal(model.beta, shipped["beta"])
