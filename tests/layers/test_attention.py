import torch
import torch.nn.functional as F

from srlab.layers import ESA, ChannelAttention


def test_channel_attention_gates_each_channel_by_its_global_context():
    torch.manual_seed(0)
    layer = ChannelAttention(16, reduction=4)
    x = torch.rand(2, 16, 9, 7)
    y = layer(x)
    gate = y / x
    # One gate per (image, channel), in (0, 1), the same at every position.
    assert torch.allclose(gate, gate[..., :1, :1].expand_as(gate), atol=1e-6)
    assert ((gate > 0) & (gate < 1)).all()
    assert sum(p.numel() for p in layer.parameters()) == 16 * 4 + 4 + 4 * 16 + 16


def test_esa_shapes_for_both_grids():
    x = torch.rand(1, 16, 31, 45)
    assert ESA(16, grid_aligned=True)(x).shape == x.shape
    assert ESA(16, grid_aligned=False)(x).shape == x.shape  # RFANet's original needs >= 15 pixels


def test_grid_aligned_esa_is_translation_consistent_on_the_6_pixel_grid():
    """A crop starting on the 6-pixel grid sees the whole image's mask away from its edges (the mask's
    reach is ~36 pixels); a crop off the grid does not."""
    torch.manual_seed(0)
    layer = ESA(16, grid_aligned=True)
    x = torch.rand(1, 16, 192, 192)
    with torch.no_grad():
        whole = layer(x)
        on_grid = layer(x[..., 48:144, 54:150])
        off_grid = layer(x[..., 49:145, 55:151])
    inner = (..., slice(36, -36), slice(36, -36))
    assert torch.allclose(on_grid[inner], whole[..., 48:144, 54:150][inner], atol=1e-6)
    assert not torch.allclose(off_grid[inner], whole[..., 49:145, 55:151][inner], atol=1e-4)


def test_spatial_gate_by_hand():
    from srlab.layers.attention import SpatialGate

    torch.manual_seed(0)
    gate = SpatialGate(kernel_size=3)
    x = torch.randn(2, 5, 6, 7)
    max_map, mean_map = x.max(dim=1, keepdim=True).values, x.sum(dim=1, keepdim=True) / 5
    w, b = gate.conv.weight, gate.conv.bias
    logits = F.conv2d(max_map, w[:, :1], padding=1) + F.conv2d(mean_map, w[:, 1:], padding=1) + b.view(1, -1, 1, 1)
    assert torch.allclose(gate(x), x / (1 + torch.exp(-logits)), atol=1e-6)


def test_mixed_attention_is_channel_then_spatial():
    from srlab.layers.attention import MixedAttention

    torch.manual_seed(0)
    layer = MixedAttention(8, reduction=4, kernel_size=3)
    x = torch.randn(2, 8, 5, 6)
    mlp = lambda v: layer.excite(torch.relu(layer.squeeze(v)))  # noqa: E731
    avg = x.flatten(2).mean(-1)[..., None, None]
    peak = x.flatten(2).max(-1).values[..., None, None]
    channel = x * torch.sigmoid(mlp(avg) + mlp(peak))
    assert torch.allclose(layer(x), layer.spatial(channel), atol=1e-6)
    # the channel gate alone rescales whole channels: a constant input keeps a constant map per channel
    const = torch.ones(1, 8, 4, 4)
    scaled = const * torch.sigmoid(mlp(const.mean((2, 3), keepdim=True)) + mlp(const.amax((2, 3), keepdim=True)))
    assert torch.allclose(scaled.std(dim=(2, 3)), torch.zeros(1, 8))
    assert sum(p.numel() for p in layer.parameters()) == (8 * 2 + 2) + (2 * 8 + 8) + (2 * 9 + 1)


def test_unpadded_esa_runs_on_small_inputs_and_is_unchanged_on_large_ones():
    torch.manual_seed(0)
    esa = ESA(16, grid_aligned=False)
    small = torch.rand(1, 16, 7, 3)
    assert esa(small).shape == small.shape
    large = torch.rand(1, 16, 15, 20)
    reduced = esa.conv1(large)
    coarse = F.max_pool2d(esa.conv2(reduced), kernel_size=7, stride=3)
    coarse = esa.conv3_(F.relu(esa.conv3(F.relu(esa.conv_max(coarse)))))
    coarse = F.interpolate(coarse, size=(15, 20), mode="bilinear", align_corners=False)
    expected = large * torch.sigmoid(esa.conv4(coarse + esa.conv_f(reduced)))
    assert torch.equal(esa(large), expected)  # the official computation, untouched at >= 15 px
