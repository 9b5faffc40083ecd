"""RFDN (Liu et al., ECCV 2020 W): the paper's RFDN / RFDN-L and the released AIM 2020 model."""


import pytest
import torch

import srlab
import srlab.models.rfdn  # noqa: F401  (registers the models)
from srlab.data.datasets import discover_pairs
from srlab.inference.evaluate import evaluate_folder
from srlab.layers import ESA
from srlab.models import count_parameters
from srlab.models.rfdn import RFDB
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts

WEIGHTS = OFFICIAL_WEIGHTS / "rfdn"

VARIANTS = [("rfdn", 2), ("rfdn", 3), ("rfdn", 4), ("rfdn_l", 2), ("rfdn_l", 3), ("rfdn_l", 4), ("rfdn_aim", 4)]

# Exact counts of the official block structure (block.py RFDB, RFDN.py) at the paper's widths.
EXACT_PARAMS = {
    ("rfdn", 2): 566_364, ("rfdn", 3): 572_859, ("rfdn", 4): 581_952,
    ("rfdn_l", 2): 663_870, ("rfdn_l", 3): 670_905, ("rfdn_l", 4): 680_754,
    ("rfdn_aim", 4): 433_448,  # = the official RFDN() and RFDN_AIM.pth
}
# Published: RFDN 534K/541K/550K (2nd-hand, unverified), RFDN-L 626K/633K/643K (Omni-SR table).
PAPER_PARAMS_K = {
    ("rfdn", 2): 534, ("rfdn", 3): 541, ("rfdn", 4): 550,
    ("rfdn_l", 2): 626, ("rfdn_l", 3): 633, ("rfdn_l", 4): 643,
    ("rfdn_aim", 4): 433,  # "0.433M" (NTIRE 2022/2023 ESR reports)
}


@pytest.mark.parametrize(("name", "scale"), VARIANTS)
def test_parameter_count(name, scale):
    assert count_parameters(srlab.create_model(name, scale=scale)) == EXACT_PARAMS[(name, scale)]


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        pytest.param(
            name, scale,
            marks=pytest.mark.xfail(
                strict=True,
                reason="the official RFDB at nf=48/52 with 6 blocks gives 566K/573K/582K and 664K/671K/681K, "
                "~5.9% above the paper's counts (the gap scales with nf^2: ~14 nf^2); the paper's exact "
                "RFDN/RFDN-L configuration was never released and no simple variant (block count, "
                "distillation width, ESA width, kernel sizes) fits both families",
            ),
        )
        if name != "rfdn_aim" else (name, scale)
        for name, scale in VARIANTS
    ],
)
def test_parameter_count_rounds_to_the_published_figure(name, scale):
    n = count_parameters(srlab.create_model(name, scale=scale))
    assert round(n / 1000) == PAPER_PARAMS_K[(name, scale)]


@needs_reference
def test_state_dict_matches_the_official_keys_and_shapes():
    official = official_state_dicts()["rfdn_x4"]
    expected = {key: list(shape) for key, shape, *_ in official["state_dict"]}
    ours = {key: list(t.shape) for key, t in srlab.create_model("rfdn_aim", scale=4).state_dict().items()}
    assert list(ours) == list(expected)  # same keys, same order
    assert ours == expected
    assert official["param_count"] == EXACT_PARAMS[("rfdn_aim", 4)]


@needs_reference
@pytest.mark.parametrize(("name", "scale"), VARIANTS[:-1])
def test_paper_variants_use_the_official_names(name, scale):
    """No official state dict exists for the paper variants: their keys must be the official ones
    with blocks B1..B6 (B5/B6 named like B1..B4) and shapes scaled to their width."""
    official = [key for key, *_ in official_state_dicts()["rfdn_x4"]["state_dict"]]
    block_keys = [key[len("B1."):] for key in official if key.startswith("B1.")]
    expected = (
        [key for key in official if key.startswith("fea_conv.")]
        + [f"B{i}.{k}" for i in range(1, 7) for k in block_keys]
        + [key for key in official if key.split(".")[0] in ("c", "LR_conv", "upsampler")]
    )
    model = srlab.create_model(name, scale=scale)
    assert list(model.state_dict()) == expected
    nf = {"rfdn": 48, "rfdn_l": 52}[name]
    assert model.state_dict()["B6.c5.weight"].shape == (nf, 2 * nf, 1, 1)
    assert model.state_dict()["B6.esa.conv1.weight"].shape == (nf // 4, nf, 1, 1)
    assert model.state_dict()["upsampler.0.weight"].shape == (3 * scale * scale, nf, 3, 3)


def test_block_uses_the_shared_original_esa():
    block = RFDB(48)
    assert isinstance(block.esa, ESA) and not block.esa.grid_aligned


def test_backward_reaches_the_parameters():
    torch.manual_seed(0)
    model = srlab.create_model("rfdn", scale=2)
    model(torch.rand(2, 3, 18, 20)).abs().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert model.fea_conv.weight.grad.abs().sum() > 0
    assert model.B1.esa.conv3_.weight.grad.abs().sum() > 0


def test_aim_variant_is_x4_only():
    with pytest.raises(srlab.SrlabError, match="does not support scale 2"):
        srlab.create_model("rfdn_aim", scale=2)


@needs_weights
def test_aim_weights_take_0_255_inside_forward():
    model = srlab.create_model("rfdn_aim", scale=4, checkpoint=WEIGHTS / "RFDN_AIM.pth")
    assert not any("range" in k for k in model.state_dict())  # no extra buffers or parameters
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        y = model(x)
        raw = model.upsampler(model.LR_conv(model.c(torch.cat(_block_outputs(model, x * 255), 1)))
                              + model.fea_conv(x * 255))
    assert torch.allclose(y, raw / 255, atol=1e-5)


def _block_outputs(model, x):
    features, outputs = model.fea_conv(x), []
    for i in range(1, 5):
        features = getattr(model, f"B{i}")(features)
        outputs.append(features)
    return outputs


# RFDN_AIM has no published Set5/Set14 figure (only DIV2K-val 29.04 dB in the NTIRE reports; the paper's
# 32.24/0.8952 belongs to the unreleased 6-block RFDN): these are the measured values, as a regression
# check, with a plausibility bound against IMDN x4 (32.21/0.8948, 28.58/0.7811).
MEASURED_AIM = {"Set5": (32.1607, 0.89459), "Set14": (28.6503, 0.78248)}


@needs_weights
@pytest.mark.parametrize("dataset", ["Set5", pytest.param("Set14", marks=pytest.mark.slow)])
def test_aim_weights_on_benchmarks(dataset):
    model = srlab.create_model("rfdn_aim", scale=4, checkpoint=WEIGHTS / "RFDN_AIM.pth")
    result = evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, 4))
    psnr, ssim = MEASURED_AIM[dataset]
    assert result.psnr_y == pytest.approx(psnr, abs=0.005)
    assert result.ssim_y == pytest.approx(ssim, abs=0.0002)
    assert result.psnr_y > {"Set5": 32.0, "Set14": 28.5}[dataset]
