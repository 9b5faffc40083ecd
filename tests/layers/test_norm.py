import pytest
import torch
from torch import nn

from srlab.layers import NORMS, LayerNorm2d, build_norm
from srlab.layers.norm import norm_tiling_refusal


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


# The registry of feature-map normalisations (norm=none|batch|layer|instance).


def test_the_registry_names_four_norms():
    assert NORMS == ("none", "batch", "layer", "instance")


@pytest.mark.parametrize("name", NORMS)
def test_every_norm_builds_and_keeps_the_shape(name):
    torch.manual_seed(0)
    norm = build_norm(name, 6)
    x = torch.randn(2, 6, 5, 7)
    assert norm(x).shape == x.shape
    assert norm.eval()(x).shape == x.shape


def test_none_is_the_identity_without_state():
    norm = build_norm("none", 6)
    assert isinstance(norm, nn.Identity) and norm.state_dict() == {}
    x = torch.randn(1, 6, 3, 3)
    assert norm(x) is x


def test_a_bad_name_names_the_choices():
    with pytest.raises(ValueError, match=r"^norm must be one of none, batch, layer, instance, got 'group'$"):
        build_norm("group", 4)


def test_batch_norm_updates_running_statistics_in_training_and_uses_them_in_eval():
    torch.manual_seed(0)
    norm = build_norm("batch", 3)
    x = torch.randn(4, 3, 5, 5) * 2 + 3
    norm.train()(x)
    # momentum 0.1 from mean 0 / var 1, with the unbiased batch variance
    torch.testing.assert_close(norm.running_mean, 0.1 * x.mean((0, 2, 3)))
    torch.testing.assert_close(norm.running_var, 0.9 + 0.1 * x.var((0, 2, 3), unbiased=True))
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.normal_()
    y = norm.eval()(x[:1])
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    expected = (x[:1] - norm.running_mean.view(1, 3, 1, 1)) * scale.view(1, 3, 1, 1) + norm.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(y, expected)
    # in eval a pixel's output depends on that pixel alone: a crop gives the crop of the output
    torch.testing.assert_close(norm(x[:1, :, 1:3, 2:5]), y[..., 1:3, 2:5])


def test_instance_norm_normalises_each_channel_of_each_image_over_its_pixels():
    torch.manual_seed(0)
    norm = build_norm("instance", 3)
    assert [k for k in norm.state_dict()] == ["weight", "bias"]  # affine, no running statistics
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64) * 4 + 1
    norm = norm.double()
    for mode in (norm.train(), norm.eval()):  # the same in both modes
        y = mode(x)
        torch.testing.assert_close(y.mean((2, 3)), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12, rtol=0)
        torch.testing.assert_close(y.var((2, 3), unbiased=False), torch.full((2, 3), 1.0, dtype=torch.float64),
                                   atol=1e-5, rtol=0)
    # a crop is normalised with its own statistics: not the crop of the output
    assert (norm(x[..., :3, :3]) - norm(x)[..., :3, :3]).abs().max() > 0.1


def test_layer_norm_is_the_channel_layer_norm():
    norm = build_norm("layer", 5)
    assert isinstance(norm, LayerNorm2d) and norm.eps == 1e-6 and norm.bias is not None


def test_only_whole_image_norms_refuse_tiles():
    assert [name for name in NORMS if norm_tiling_refusal(name)] == ["instance"]
    assert "norm=instance normalises over the whole image" in norm_tiling_refusal("instance")
