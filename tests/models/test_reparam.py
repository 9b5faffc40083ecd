"""The kernel algebra of re-parameterisation, checked against the unfused layers it replaces."""

import torch
import torch.nn.functional as F
from torch import nn

import srlab
from srlab.models.reparam import (
    conv_from,
    deploy,
    fuse_conv_bn,
    has_deploy_form,
    identity_kernel,
    is_deployed,
    merge_1x1_then_kxk,
    pad_kernel,
)


def _x():
    torch.manual_seed(0)
    return torch.randn(2, 4, 9, 11, dtype=torch.float64)


def test_a_padded_1x1_kernel_is_the_same_convolution():
    w = torch.randn(5, 4, 1, 1, dtype=torch.float64)
    x = _x()
    assert torch.allclose(F.conv2d(x, pad_kernel(w, 3), padding=1), F.conv2d(x, w), atol=1e-12)
    assert pad_kernel(torch.randn(5, 4, 3, 3), 5).shape == (5, 4, 5, 5)


def test_the_identity_kernel_returns_its_input():
    x = _x()
    assert torch.allclose(F.conv2d(x, identity_kernel(4, 3, like=x), padding=1), x, atol=0)


def test_conv_then_batch_norm_fuses_exactly():
    conv = nn.Conv2d(4, 6, 3, padding=1).double()
    bn = nn.BatchNorm2d(6).double()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_()
        bn.bias.normal_()
    bn.eval()
    x = _x()
    for bias in (conv.bias, None):
        reference = bn(F.conv2d(x, conv.weight, bias, padding=1))
        w, b = fuse_conv_bn(conv.weight, bias, bn)
        assert torch.allclose(conv_from(w, b)(x), reference, atol=1e-10)


def test_a_1x1_then_3x3_sequence_is_one_3x3_convolution_with_bias_padding():
    x = _x()
    w1, b1 = torch.randn(7, 4, 1, 1, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    w2, b2 = torch.randn(6, 7, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    mid = F.conv2d(x, w1, b1)
    # the border of the intermediate map is filled with b1, as ECBSR's sequential blocks do
    mid = F.pad(mid - b1.view(1, -1, 1, 1), (1, 1, 1, 1)) + b1.view(1, -1, 1, 1)
    reference = F.conv2d(mid, w2, b2)
    w, b = merge_1x1_then_kxk(w1, b1, w2, b2)
    assert w.shape == (6, 4, 3, 3)
    assert torch.allclose(F.conv2d(x, w, b, padding=1), reference, atol=1e-10)


def test_conv_from_keeps_dtype_device_and_padding():
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    conv = conv_from(w, None, padding=0)
    assert conv.weight.dtype == torch.float64 and conv.bias is None and conv.padding == (0, 0)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    assert torch.equal(conv(x), F.conv2d(x, w))


def test_models_without_training_branches_deploy_to_themselves():
    model = srlab.create_model("imdn", scale=2)
    assert not has_deploy_form(model)
    assert deploy(model) is model and not is_deployed(model)
