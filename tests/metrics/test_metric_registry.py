"""The metric contract, checked for every registered metric: its declaration, the value of a perfect pair,
the direction on distorted pairs, and the argument order (SR first, HR second).

LPIPS, DISTS and NIQE run with stand-in weight files written here (random backbones with the official
names, a NIQE model fitted on other photos); the contract does not depend on the weights' values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import distort, photo, photo_tensor
from srlab.errors import SrlabError
from srlab.metrics import registry
from srlab.metrics.accumulator import ScoreAccumulator, mean_scores
from srlab.metrics.niqe import fit_niqe_model
from srlab.metrics.protocol import PAPER_PROTOCOL, RGB_PROTOCOL
from srlab.metrics.registry import (
    MetricSet, get_metric, metric_names, parse_metric_weights, parse_metrics, register_metric, weight_keys,
)
from test_dists import alpha_beta, vgg16_state
from test_lpips import lin_state, torchvision_state

ALL = metric_names()
SCALE = 2  # PAPER_PROTOCOL shaves 2 pixels per side
SMALL, LARGE = (80, 80), (200, 200)


def size(key: str) -> tuple[int, int]:
    """Small pictures keep the VGG16 of DISTS quick; MS-SSIM's five scales need >= 176 px, NIQE two
    96x96 blocks per side."""
    return LARGE if key in ("ms_ssim", "niqe") else SMALL


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("metric_weights")
    torch.save(torchvision_state("alexnet"), root / "alexnet.pth")
    torch.save(lin_state("alex"), root / "alex_lin.pth")
    torch.save(vgg16_state(), root / "vgg16.pth")
    torch.save(alpha_beta(), root / "dists.pt")
    model = fit_niqe_model([photo_tensor(photo(name, (256, 256))) for name in ("coffee", "chelsea", "rocket")])
    np.savez(root / "niqe.npz", mu_prisparam=model.mu.numpy(), cov_prisparam=model.cov.numpy())
    return {
        "lpips_backbone": str(root / "alexnet.pth"), "lpips_lin": str(root / "alex_lin.pth"),
        "dists_backbone": str(root / "vgg16.pth"), "dists": str(root / "dists.pt"), "niqe": str(root / "niqe.npz"),
    }


@pytest.fixture(scope="module")
def metric_sets(weight_files) -> dict[str, MetricSet]:
    """One loaded set per metric, so that each test scores only the metric it checks."""
    return {key: MetricSet((key,), weight_files) for key in ALL}


def score(metric_set: MetricSet, sr: torch.Tensor, hr: torch.Tensor) -> float:
    (value,) = ScoreAccumulator(PAPER_PROTOCOL, metric_set).update(sr, hr, SCALE).values()
    return value


def better(key: str, a: float, b: float) -> bool:
    return a > b if get_metric(key).higher_is_better else a < b


def test_the_registry_holds_every_metric_srlab_documents():
    assert set(ALL) == {"psnr", "ssim", "ms_ssim", "gmsd", "fsim", "fsimc", "lpips", "dists", "niqe", "ciede2000"}
    assert ALL[:2] == ("psnr", "ssim")


@pytest.mark.parametrize("key", ALL)
def test_each_metric_declares_its_contract(key):
    metric = get_metric(key)
    assert metric.key == key and callable(metric.fn) and isinstance(metric.higher_is_better, bool)
    assert metric.needs_weights == (metric.load is not None)
    assert set(metric.weights) | set(metric.options) <= set(weight_keys())
    if metric.labelled:
        assert metric.result_key(PAPER_PROTOCOL) == f"{key}_y" and metric.result_key(RGB_PROTOCOL) == f"{key}_rgb"
    else:
        assert metric.result_key(PAPER_PROTOCOL) == metric.result_key(RGB_PROTOCOL) == key


def test_the_declared_properties():
    lower = {k for k in ALL if not get_metric(k).higher_is_better}
    assert lower == {"gmsd", "lpips", "dists", "niqe", "ciede2000"}
    assert {k for k in ALL if get_metric(k).needs_weights} == {"lpips", "dists", "niqe"}
    assert {k for k in ALL if not get_metric(k).reference} == {"niqe"}
    assert get_metric("niqe").best is None  # a no-reference score has no "perfect pair"


@pytest.mark.parametrize("key", [k for k in ALL if get_metric(k).best is not None])
def test_a_perfect_pair_gives_the_best_value(key, metric_sets):
    hr = photo_tensor(photo("astronaut", size(key)))
    best = get_metric(key).best
    value = score(metric_sets[key], hr, hr)
    assert value == best if math.isinf(best) else value == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("key", ALL)
def test_the_direction_holds_on_distorted_pairs(key, metric_sets):
    clean = photo("astronaut", size(key))
    hr = photo_tensor(clean)
    mild, strong = (photo_tensor(distort(clean, "blur", sigma)) for sigma in (0.8, 3.2))
    perfect, s_mild, s_strong = (score(metric_sets[key], sr, hr) for sr in (hr, mild, strong))
    assert better(key, perfect, s_strong) and better(key, s_mild, s_strong), (perfect, s_mild, s_strong)


@pytest.mark.parametrize("key", ALL)
def test_sr_comes_first(key, metric_sets):
    """The first argument is the SR image: it alone is rounded to 8-bit levels as saved, so swapping
    an off-grid SR output and its HR image changes every score; a no-reference metric ignores the HR."""
    hr = photo_tensor(photo("astronaut", size(key)))
    sr = (hr + 0.02 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0), dtype=hr.dtype)).clamp(0, 1)
    saved = torch.floor(sr * 255 + 0.5) / 255
    value = score(metric_sets[key], sr, hr)
    assert value == score(metric_sets[key], saved, hr)
    assert value != score(metric_sets[key], hr, sr)
    if not get_metric(key).reference:
        assert value == score(metric_sets[key], sr, torch.zeros_like(hr))


def test_the_protocol_scores_are_the_registered_ones():
    hr = photo_tensor(photo("coffee", (64, 48)))
    sr = photo_tensor(distort(photo("coffee", (64, 48)), "noise", 12))
    acc = ScoreAccumulator(RGB_PROTOCOL, ("psnr", "ssim"))
    assert acc.update(sr, hr, 3) == RGB_PROTOCOL.score(sr, hr, 3)
    assert set(acc.compute()) == {"psnr_rgb", "ssim_rgb"}


def test_adding_a_metric_is_one_registration(monkeypatch):
    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))

    @register_metric("mae", higher_is_better=False, best=0.0)
    def score_mae(sr, hr, *, protocol):
        return float((sr - hr).abs().mean() * 255)

    assert metric_names()[-1] == "mae" and parse_metrics("mae") == ("psnr", "ssim", "mae")
    hr = photo_tensor(photo("coffee", (64, 48)))
    sr = photo_tensor(distort(photo("coffee", (64, 48)), "noise", 12))
    scores = ScoreAccumulator(PAPER_PROTOCOL, parse_metrics("mae")).update(sr, hr, 2)
    assert list(scores) == ["psnr_y", "ssim_y", "mae"]
    assert scores["mae"] == pytest.approx(float((sr - hr)[:, 2:-2, 2:-2].abs().mean() * 255), rel=1e-12)
    with pytest.raises(ValueError, match="metric 'mae' is already registered"):
        register_metric("mae", higher_is_better=False)(score_mae)
    with pytest.raises(ValueError, match="give both weights and load, or neither"):
        register_metric("mae2", higher_is_better=False, weights={"mae2": "a file"})


def test_names_and_weight_files_are_checked():
    assert parse_metrics("gmsd, psnr") == ("psnr", "ssim", "gmsd")
    assert parse_metrics(["ssim"]) == ("psnr", "ssim")
    with pytest.raises(SrlabError, match="unknown metric 'lpipz': choose from psnr, ssim, ms_ssim"):
        parse_metrics("psnr,lpipz")
    assert parse_metric_weights([" niqe = m.mat"]) == {"niqe": "m.mat"}
    with pytest.raises(SrlabError, match="--metric_weights expects KEY=PATH, got 'niqe'"):
        parse_metric_weights(["niqe"])
    with pytest.raises(SrlabError, match="--metric_weights: unknown key 'lpip'"):
        MetricSet(("psnr",), {"lpip": "x"})
    needs_vgg = r"metric 'dists' needs --metric_weights dists_backbone=PATH \(torchvision's vgg16"
    with pytest.raises(SrlabError, match=needs_vgg):
        MetricSet(("dists",))


def test_mean_scores_are_the_accumulator_means_to_the_bit():
    acc = ScoreAccumulator(PAPER_PROTOCOL, ("psnr", "ssim", "gmsd"))
    per_image = []
    for name, level in (("coffee", 4), ("chelsea", 12), ("rocket", 30)):
        clean = photo(name, (72, 64))
        per_image.append(acc.update(photo_tensor(distort(clean, "noise", level)), photo_tensor(clean), 2))
    assert acc.values["gmsd"] == [s["gmsd"] for s in per_image]
    assert mean_scores(per_image) == acc.compute()
    assert acc.compute()["psnr_y"] == sum(s["psnr_y"] for s in per_image) / 3
