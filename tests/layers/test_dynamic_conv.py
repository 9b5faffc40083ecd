import pytest
import torch

from srlab.layers.dynamic_conv import IDynamicDWConv, dynamic_conv_macs, dynamic_depthwise_conv2d


def _naive(x, weight, padding):
    """The official cupy kernel's loop, written out: one output element at a time."""
    n, c, h, w = x.shape
    _, groups, kh, kw, oh, ow = weight.shape
    out = torch.zeros(n, c, oh, ow, dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            g = ch // (c // groups)
            for y in range(oh):
                for z in range(ow):
                    value = 0.0
                    for i in range(kh):
                        for j in range(kw):
                            yi, zj = y - padding + i, z - padding + j
                            if 0 <= yi < h and 0 <= zj < w:
                                value += weight[b, g, i, j, y, z] * x[b, ch, yi, zj]
                    out[b, ch, y, z] = value
    return out


@pytest.mark.parametrize(("channels", "groups", "k"), [(4, 2, 3), (6, 3, 5), (3, 1, 3)])
def test_matches_naive_loop(channels, groups, k):
    torch.manual_seed(0)
    x = torch.randn(2, channels, 5, 6, dtype=torch.float64)
    weight = torch.randn(2, groups, k, k, 5, 6, dtype=torch.float64)
    ours = dynamic_depthwise_conv2d(x, weight, padding=k // 2)
    assert ours.shape == x.shape
    assert torch.allclose(ours, _naive(x, weight, k // 2), atol=1e-12)


def test_without_padding_shrinks_like_a_valid_conv():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    weight = torch.randn(1, 2, 3, 3, 4, 5, dtype=torch.float64)
    ours = dynamic_depthwise_conv2d(x, weight, padding=0)
    assert torch.allclose(ours, _naive(x, weight, 0), atol=1e-12)


def test_spatially_constant_kernels_equal_a_depthwise_conv():
    torch.manual_seed(2)
    x = torch.randn(1, 6, 9, 8)
    kernels = torch.randn(3, 3, 3)  # one per group of 2 channels
    weight = kernels.view(1, 3, 3, 3, 1, 1).expand(1, 3, 3, 3, 9, 8)
    reference = torch.nn.functional.conv2d(x, kernels.repeat_interleave(2, 0).unsqueeze(1), padding=1, groups=6)
    assert torch.allclose(dynamic_depthwise_conv2d(x, weight, padding=1), reference, atol=1e-5)


def test_gradients_match_finite_differences():
    torch.manual_seed(3)
    x = torch.randn(1, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 2, 3, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: dynamic_depthwise_conv2d(a, b, padding=1), (x, weight))


def test_rejects_mismatched_shapes():
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(ValueError, match="groups"):
        dynamic_depthwise_conv2d(x, torch.randn(1, 3, 3, 3, 5, 5), padding=1)
    with pytest.raises(ValueError, match="spatial size"):
        dynamic_depthwise_conv2d(x, torch.randn(1, 2, 3, 3, 5, 5), padding=0)


def test_idynamic_module_names_shapes_and_semantics():
    torch.manual_seed(4)
    layer = IDynamicDWConv(48, kernel_size=7, group_channels=6)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {
        "conv1.0.weight": (12, 48, 1, 1),
        "conv1.0.bias": (12,),
        "conv1.1.weight": (12, 1, 7, 7),
        "conv1.1.bias": (12,),
        "conv2.0.weight": (8 * 49, 12, 1, 1),
        "conv2.0.bias": (8 * 49,),
    }
    x = torch.randn(1, 48, 11, 13)
    with torch.no_grad():
        y = layer(x)
        weight = layer.conv2(layer.conv1(x)).view(1, 8, 7, 7, 11, 13)
    assert y.shape == x.shape
    assert torch.allclose(y, dynamic_depthwise_conv2d(x, weight, padding=3))
    # the first group of 6 channels against the naive loop (a slice keeps the test fast)
    assert torch.allclose(y[:, :6, :4, :5], _naive(x[:, :6], weight[:, :1], 3)[:, :, :4, :5], atol=1e-5)


def test_memory_is_output_sized():
    """No unfold: no intermediate is larger than the padded input (the kernels are the largest tensor,
    as in the official operator). Every ATen op's output is recorded on meta tensors (no storage)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and not func.is_view:  # views allocate nothing
                Largest.numel = max(Largest.numel, out.numel())
            return out

    x = torch.empty(1, 48, 64, 64, device="meta")
    weight = torch.empty(1, 8, 7, 7, 64, 64, device="meta")
    with Largest():
        out = dynamic_depthwise_conv2d(x, weight, padding=3)
    assert out.shape == x.shape
    assert Largest.numel <= 48 * 70 * 70  # the padded input; an unfold would be 49x the input


def test_macs_helper():
    assert dynamic_conv_macs(48, 7, 10, 20) == 48 * 49 * 200
