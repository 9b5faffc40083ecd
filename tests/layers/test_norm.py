import pytest
import torch

from srlab.layers import LayerNorm2d


def _by_hand(x, weight, bias, eps):
    """Each pixel normalised over its C values: biased variance, eps inside the square root."""
    mu = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    y = (x - mu) / torch.sqrt(var + eps) * weight.view(1, -1, 1, 1)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize(("eps", "bias"), [(1e-6, True), (1e-5, True), (1e-5, False)])
def test_channel_layer_norm_by_hand(eps, bias):
    torch.manual_seed(0)
    norm = LayerNorm2d(6, eps=eps, bias=bias).double()
    with torch.no_grad():
        for p in norm.parameters():
            p.normal_()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64) * 3 + 1
    torch.testing.assert_close(norm(x), _by_hand(x, norm.weight, norm.bias, eps), rtol=1e-12, atol=1e-12)


def test_parameters_keep_the_official_names():
    assert [k for k, _ in LayerNorm2d(4, eps=1e-6).named_parameters()] == ["weight", "bias"]
    assert [k for k, _ in LayerNorm2d(4, eps=1e-5, bias=False).named_parameters()] == ["weight"]
    assert LayerNorm2d(4, eps=1e-5, bias=False).bias is None


def test_eps_matters_on_nearly_constant_pixels():
    x = torch.zeros(1, 2, 1, 1, dtype=torch.float64)
    x[0, 0] = 1e-3  # variance 2.5e-7, comparable to eps
    small, large = LayerNorm2d(2, eps=1e-12).double(), LayerNorm2d(2, eps=1e-5).double()
    assert small(x)[0, 0, 0, 0].item() == pytest.approx(1.0, rel=1e-4)
    assert large(x)[0, 0, 0, 0].item() == pytest.approx(5e-4 / (2.5e-7 + 1e-5) ** 0.5, rel=1e-9)


def test_half_precision_statistics_do_not_overflow():
    """Deviations of ~1000 square to ~1e6, past float16's range: the statistics must be accumulated in
    float32 (the naive float16 formula is off by ~2.5 here)."""
    torch.manual_seed(0)
    norm = LayerNorm2d(8, eps=1e-6)
    x = torch.randn(1, 8, 4, 4) * 1000
    expected = norm(x)
    torch.testing.assert_close(norm.half()(x.half()).float(), expected, rtol=0, atol=5e-3)
