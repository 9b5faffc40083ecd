import pytest
import torch
import torch.nn.functional as F

from srlab.layers import GatedFeedForward


@pytest.mark.parametrize(("expansion", "hidden"), [(1.0, 4), (2.66, 10), (2.0, 8)])
def test_gated_feed_forward_by_hand(expansion, hidden):
    torch.manual_seed(0)
    ffn = GatedFeedForward(4, expansion)
    x = torch.randn(1, 4, 5, 6)
    h = ffn.dwconv(ffn.project_in(x))
    assert h.shape[1] == 2 * hidden
    expected = ffn.project_out(F.gelu(h[:, :hidden]) * h[:, hidden:])
    torch.testing.assert_close(ffn(x), expected)


def test_depthwise_conv_mixes_space_not_channels():
    ffn = GatedFeedForward(4, 1.0)
    assert ffn.dwconv.groups == ffn.dwconv.in_channels == 8
    assert ffn.dwconv.weight.shape == (8, 1, 3, 3)


def test_biases_and_official_names():
    names = [k for k, _ in GatedFeedForward(4).named_parameters()]
    assert names == ["project_in.weight", "dwconv.weight", "project_out.weight"]
    names = [k for k, _ in GatedFeedForward(4, bias=True).named_parameters()]
    assert names == [
        "project_in.weight", "project_in.bias", "dwconv.weight", "dwconv.bias", "project_out.weight",
        "project_out.bias",
    ]
