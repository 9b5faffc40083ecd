import pytest
import torch

import srlab
import srlab.models.rlfn  # noqa: F401  (registers the models)
from srlab.models import count_parameters
from srlab.models.rlfn import RLFNESA
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts

WEIGHTS = OFFICIAL_WEIGHTS / "rlfn"


# Exact counts, sum(p.numel()): equal to the official checkpoints (x2/x4) and the official arch (x3),
# as listed in paper-results.md §2. rlfn_ntire x2/x3 have no official counterpart (measured here).
EXPECTED_PARAMS = {
    ("rlfn", 2): 526_856, ("rlfn", 3): 533_891, ("rlfn", 4): 543_740,
    ("rlfn_s", 2): 454_620, ("rlfn_s", 3): 461_115, ("rlfn_s", 4): 470_208,
    ("rlfn_ntire", 2): 302_278, ("rlfn_ntire", 3): 308_503, ("rlfn_ntire", 4): 317_218,
}
# Published figures (paper-results.md §2): RLFN 527K / 543K (the paper's x4 figure truncates
# 543,740 rather than rounding it, so the check is "within 1K"); RLFN_ntire 0.317M (NTIRE 2022 report).
PUBLISHED_PARAMS_K = {("rlfn", 2): 527, ("rlfn", 4): 543, ("rlfn_ntire", 4): 317}


@pytest.mark.parametrize(("name", "scale"), sorted(EXPECTED_PARAMS))
def test_parameter_counts(name, scale):
    n = count_parameters(srlab.create_model(name, scale=scale))
    assert n == EXPECTED_PARAMS[(name, scale)]
    if (name, scale) in PUBLISHED_PARAMS_K:
        assert abs(n / 1000 - PUBLISHED_PARAMS_K[(name, scale)]) < 1.0


def test_parameter_count_by_hand():
    """Head, N RLFBs (3 convs, 1x1, RLFN's 5-conv ESA), conv_2, upsampler; NTIRE shape 46/48, 4 blocks."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    c, m, f, n, s = 46, 48, 16, 4, 4
    esa = conv(c, f, 1) + conv(f, f, 1) + 2 * conv(f, f, 3) + conv(f, c, 1)
    block = conv(c, m, 3) + conv(m, m, 3) + conv(m, c, 3) + conv(c, c, 1) + esa
    total = conv(3, c, 3) + n * block + conv(c, c, 3) + conv(c, 3 * s * s, 3)
    assert count_parameters(srlab.create_model("rlfn_ntire", scale=s)) == total == 317_218


def _official(key):
    return official_state_dicts()[key]


@needs_reference
@pytest.mark.parametrize(
    "key", ["rlfn_x2", "rlfn_x3", "rlfn_x4", "rlfn_s_x2", "rlfn_s_x3", "rlfn_s_x4", "rlfn_ntire_x4"]
)
def test_state_dict_matches_official(key):
    name, scale = key.rsplit("_x", 1)
    official = _official(key)
    model = srlab.create_model(name, scale=int(scale))
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape, *_ in official["state_dict"]]
    assert count_parameters(model) == official["param_count"]


def test_esa_is_rlfn_specific():
    esa = RLFNESA(16, 52)
    assert [k for k, _ in esa.named_children()] == ["conv1", "conv_f", "conv2", "conv3", "conv4"]
    x = torch.rand(1, 52, 15, 31)  # 15 is the smallest size the unpadded conv2 + 7x7 pool accept
    assert esa(x).shape == x.shape


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = srlab.create_model("rlfn_ntire", scale=2)
    x = torch.rand(1, 3, 20, 20)
    (model(x) - torch.rand(1, 3, 40, 40)).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@needs_weights
def test_input_range_is_handled_inside_forward():
    """Official weights expect 0-255; with the scaling inside forward a flat [0,1] image stays flat."""
    model = srlab.create_model("rlfn", scale=4, checkpoint=WEIGHTS / "rlfn_x4.pth")
    x = torch.full((1, 3, 24, 24), 0.5)
    with torch.no_grad():
        y = model(x)
    assert (y[..., 8:-8, 8:-8] - 0.5).abs().max() < 0.01
    assert not list(model.buffers())  # the 255 is a constant, not state


def _evaluate(name, scale, dataset):
    from srlab.data.datasets import discover_pairs
    from srlab.inference.evaluate import evaluate_folder

    model = srlab.create_model(name, scale=scale, checkpoint=WEIGHTS / f"{name}_x{scale}.pth")
    return evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, scale))


# Published PSNR/SSIM (paper-results.md §1, RLFN rows; standard MATLAB protocol).
PUBLISHED = {
    ("rlfn", 2, "Set5"): (38.07, 0.9607),
    ("rlfn", 4, "Set5"): (32.24, 0.8952),
    ("rlfn", 4, "Set14"): (28.62, 0.7813),
}


@needs_weights
@pytest.mark.parametrize(("name", "scale", "dataset"), [
    pytest.param(*key, marks=pytest.mark.slow) if key[2] == "Set14" else key for key in sorted(PUBLISHED)
])
def test_official_weights_reproduce_published(name, scale, dataset):
    result = _evaluate(name, scale, dataset)
    psnr, ssim = PUBLISHED[(name, scale, dataset)]
    assert abs(result.psnr_y - psnr) <= 0.01  # measured 38.0674 / 32.2396 / 28.6240
    assert abs(result.ssim_y - ssim) <= 0.0005  # measured 0.96066 / 0.89526 / 0.78145


@needs_weights
@pytest.mark.slow
def test_rlfn_x2_set14_psnr():
    assert abs(_evaluate("rlfn", 2, "Set14").psnr_y - 33.72) <= 0.01  # measured 33.7265


@needs_weights
@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="published Set14 x2 SSIM 0.9187, measured 0.91934 (+0.00064) with the released rlfn_x2.pth, "
    "while PSNR matches (33.7265 vs 33.72) and x4 SSIM matches to 0.0002",
)
def test_rlfn_x2_set14_ssim():
    assert abs(_evaluate("rlfn", 2, "Set14").ssim_y - 0.9187) <= 0.0005


# No Set5 figure for RLFN-S or the NTIRE model is in the reference (RLFN-S "not read"; the NTIRE model
# was only reported on DIV2K validation): these pin the measured values so regressions are caught,
# and check they sit where the architecture sizes put them relative to RLFN (32.24 dB at x4).
MEASURED_ONLY = {
    ("rlfn_s", 2, "Set5"): (38.0488, 0.96066),
    ("rlfn_s", 4, "Set5"): (32.2413, 0.89544),
    ("rlfn_ntire", 4, "Set5"): (32.0983, 0.89388),
}


@needs_weights
@pytest.mark.parametrize(("name", "scale", "dataset"), sorted(MEASURED_ONLY))
def test_official_weights_without_published_figure(name, scale, dataset):
    result = _evaluate(name, scale, dataset)
    psnr, ssim = MEASURED_ONLY[(name, scale, dataset)]
    assert abs(result.psnr_y - psnr) <= 0.01
    assert abs(result.ssim_y - ssim) <= 0.0005
