import pytest
import torch

import srlab
import srlab.models.bsrn  # noqa: F401  (registers the models)
from srlab.errors import SrlabError
from srlab.models import count_parameters
from srlab.models.bsrn import BSRNESA, PointwiseLinear
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts

WEIGHTS = OFFICIAL_WEIGHTS / "bsrn"


CHECKPOINTS = {
    ("bsrn", 2): "net_g_BSRN_x2.pth",
    ("bsrn", 3): "net_g_BSRN_x3.pth",
    ("bsrn", 4): "net_g_BSRN_x4.pth",
    ("bsrn_s", 4): "net_g_BSRN-S.pth",
}

# Exact counts, sum(p.numel()), equal to the official checkpoints (paper-results.md §2:
# 331,628 / 340,283 / 352,400 and BSRN-S 156,288).
EXPECTED_PARAMS = {("bsrn", 2): 331_628, ("bsrn", 3): 340_283, ("bsrn", 4): 352_400, ("bsrn_s", 4): 156_288}
# Published figures: BSRN x4 352K (LKDN-md quoting the paper), BSRN-S 0.156M (NTIRE 2022 report).
PUBLISHED_PARAMS_K = {("bsrn", 4): 352, ("bsrn_s", 4): 156}


@pytest.mark.parametrize(("name", "scale"), sorted(EXPECTED_PARAMS))
def test_parameter_counts(name, scale):
    n = count_parameters(srlab.create_model(name, scale=scale))
    assert n == EXPECTED_PARAMS[(name, scale)]
    if (name, scale) in PUBLISHED_PARAMS_K:
        assert round(n / 1000) == PUBLISHED_PARAMS_K[(name, scale)]


def test_parameter_count_by_hand():
    """BSRN x4: BSConv-U = 1x1 without bias + depth-wise 3x3 with bias; 8 ESDBs; one-step upsampler."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    bsconv = lambda cin, cout: cin * cout + cout * 9 + cout  # noqa: E731
    c, n, s = 64, 8, 4
    f, d = c // 4, c // 2
    esa = conv(c, f, 1) + conv(f, f, 1) + 4 * bsconv(f, f) + conv(f, c, 1)
    cca = conv(c, c // 16, 1) + conv(c // 16, c, 1)
    block = 3 * (conv(c, d, 1) + bsconv(c, c)) + bsconv(c, d) + conv(4 * d, c, 1) + esa + cca
    total = bsconv(12, c) + n * block + conv(n * c, c, 1) + bsconv(c, c) + conv(c, 3 * s * s, 3)
    assert count_parameters(srlab.create_model("bsrn", scale=s)) == total == 352_400


def _official(key):
    return official_state_dicts()[key]


@needs_reference
@pytest.mark.parametrize("key", ["bsrn_x2", "bsrn_x3", "bsrn_x4", "bsrn_s_x4"])
def test_state_dict_matches_official(key):
    name, scale = key.rsplit("_x", 1)
    official = _official(key)
    model = srlab.create_model(name, scale=int(scale))
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape, *_ in official["state_dict"]]
    assert count_parameters(model) == official["param_count"]
    assert official["input_convention"]["range"] == "[0,1]"  # no scaling needed inside forward


def test_bsrn_s_is_x4_only():
    with pytest.raises(SrlabError, match="scale"):
        srlab.create_model("bsrn_s", scale=2)


def test_esa_structure_differs_from_shared_layer():
    """BSRN's ESA keeps srlab.layers.ESA's names but uses BSConvs (pw/dw), GELU and no padding."""
    esa = BSRNESA(64)
    names = ["conv1", "conv_f", "conv_max", "conv2", "conv3", "conv3_", "conv4"]
    assert [k for k, _ in esa.named_children()] == names
    assert [k for k, _ in esa.conv2.named_children()] == ["pw", "dw"] and esa.conv2.dw.stride == (2, 2)
    x = torch.rand(1, 64, 15, 31)  # 15 is the smallest size the unpadded conv2 + 7x7 pool accept
    assert esa(x).shape == x.shape
    esa_s = BSRNESA(48, linear=True)
    assert isinstance(esa_s.conv1, PointwiseLinear) and isinstance(esa_s.conv2, torch.nn.Conv2d)


def test_pointwise_linear_equals_channels_last_linear():
    torch.manual_seed(0)
    layer = PointwiseLinear(8, 5)
    x = torch.randn(2, 8, 6, 7)
    expected = torch.nn.functional.linear(x.permute(0, 2, 3, 1), layer.weight, layer.bias).permute(0, 3, 1, 2)
    assert torch.allclose(layer(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["bsrn", "bsrn_s"])
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4, args={"num_block": 2})
    x = torch.rand(1, 3, 20, 20)
    (model(x) - torch.rand(1, 3, 80, 80)).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@needs_weights
def test_flat_image_stays_flat():
    """The official weights take [0,1] input: a flat mid-grey image must come back flat, same level."""
    model = srlab.create_model("bsrn", scale=4, checkpoint=WEIGHTS / CHECKPOINTS[("bsrn", 4)])
    x = torch.full((1, 3, 24, 24), 0.5)
    with torch.no_grad():
        y = model(x)
    assert (y[..., 8:-8, 8:-8] - 0.5).abs().max() < 0.01
    assert not list(model.buffers())


def _evaluate(name, scale, dataset):
    from srlab.data.datasets import discover_pairs
    from srlab.inference.evaluate import evaluate_folder

    model = srlab.create_model(name, scale=scale, checkpoint=WEIGHTS / CHECKPOINTS[(name, scale)])
    return evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, scale))


# Published PSNR/SSIM (paper-results.md §1, BSRN x4 row; standard MATLAB protocol).
PUBLISHED = {
    ("bsrn", 4, "Set5"): (32.35, 0.8966),  # measured 32.3501 / 0.89652
    ("bsrn", 4, "Set14"): (28.73, 0.7847),  # measured 28.7391 / 0.78472
}


@needs_weights
@pytest.mark.parametrize(("name", "scale", "dataset"), sorted(PUBLISHED))
def test_official_weights_reproduce_published(name, scale, dataset):
    result = _evaluate(name, scale, dataset)
    psnr, ssim = PUBLISHED[(name, scale, dataset)]
    assert abs(result.psnr_y - psnr) <= 0.01
    assert abs(result.ssim_y - ssim) <= 0.0005


# The reference has no verified figures for BSRN x2/x3 ("not read") nor a Set5/Set14 figure for BSRN-S
# (the NTIRE report gives DIV2K validation only): these pin the values measured with the released
# checkpoints so regressions are caught.
MEASURED_ONLY = {
    ("bsrn", 2, "Set5"): (38.0840, 0.96084),
    ("bsrn", 3, "Set5"): (34.4523, 0.92763),
    ("bsrn_s", 4, "Set5"): (32.1628, 0.89488),
}
MEASURED_ONLY_SLOW = {
    ("bsrn", 2, "Set14"): (33.7336, 0.91926),
    ("bsrn", 3, "Set14"): (30.4719, 0.84492),
    ("bsrn_s", 4, "Set14"): (28.6367, 0.78199),
}


def _check_measured(name, scale, dataset, table):
    result = _evaluate(name, scale, dataset)
    psnr, ssim = table[(name, scale, dataset)]
    assert abs(result.psnr_y - psnr) <= 0.01
    assert abs(result.ssim_y - ssim) <= 0.0005


@needs_weights
@pytest.mark.parametrize(("name", "scale", "dataset"), sorted(MEASURED_ONLY))
def test_official_weights_without_published_figure(name, scale, dataset):
    _check_measured(name, scale, dataset, MEASURED_ONLY)


@needs_weights
@pytest.mark.slow
@pytest.mark.parametrize(("name", "scale", "dataset"), sorted(MEASURED_ONLY_SLOW))
def test_official_weights_without_published_figure_set14(name, scale, dataset):
    _check_measured(name, scale, dataset, MEASURED_ONLY_SLOW)
