"""The arbitrary-scale upsamplers ``meta``, ``liif`` and ``lte`` behind the upsampler contract."""

import math

import pytest
import torch

from srlab.layers.upsamplers import build_upsampler, list_upsamplers
from srlab.layers.upsamplers.liif import cell_centres


@pytest.mark.parametrize("name", ["meta", "liif", "lte"])
@pytest.mark.parametrize("scale", [1.5, 2.7, 4])
def test_registered_and_any_real_scale(name, scale):
    assert name in list_upsamplers()
    torch.manual_seed(0)
    head = build_upsampler(name, in_channels=4, out_channels=3, scale=scale, options={"hidden": 8})
    with torch.no_grad():
        out = head(torch.rand(2, 4, 5, 7))
        assert out.shape == (2, 3, math.ceil(scale * 5), math.ceil(scale * 7))
        assert head(torch.rand(1, 4, 5, 7), size=(9, 4)).shape == (1, 3, 9, 4)


def test_cell_centres_are_the_official_make_coord():
    # r = 1/n; centres -1 + r + 2r*i
    torch.testing.assert_close(cell_centres(4), torch.tensor([-0.75, -0.25, 0.25, 0.75]), rtol=0, atol=0)


def _nearest_meta(scale, channels=2):
    # A filter network that always answers "the centre tap of my own channel": Meta-Upscale then
    # copies LR pixel (floor(i/s), floor(j/s)) to output (i, j), which exposes its pixel mapping.
    head = build_upsampler("meta", in_channels=channels, out_channels=channels, scale=scale)
    last = head.meta_block[2]
    with torch.no_grad():
        last.weight.zero_()
        filt = torch.zeros(channels * 9, channels)
        for c in range(channels):
            filt[c * 9 + 4, c] = 1  # unfold order: channel-major, then the 3x3 taps; centre = 4
        last.bias.copy_(filt.flatten())
    return head


@pytest.mark.parametrize("scale", [1.5, 2, 2.5, 3.3])
def test_meta_output_pixel_reads_lr_pixel_floor_i_over_s(scale):
    head = _nearest_meta(scale)
    feat = torch.rand(1, 2, 6, 7)
    with torch.no_grad():
        out = head(feat)
    rows = [min(math.floor(i / scale + 1e-9), 5) for i in range(out.shape[-2])]
    cols = [min(math.floor(j / scale + 1e-9), 6) for j in range(out.shape[-1])]
    torch.testing.assert_close(out, feat[:, :, rows][:, :, :, cols], rtol=0, atol=1e-6)


def test_meta_filters_see_the_inverse_scale_and_the_sub_pixel_offsets():
    head = _nearest_meta(2.5)
    seen = []
    head.meta_block[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    with torch.no_grad():
        head(torch.rand(1, 2, 2, 2), size=(5, 5))
    position = seen[0].view(5, 5, 3)
    torch.testing.assert_close(position[..., 0], torch.full((5, 5), 0.4))
    # i/2.5 for i = 0..4: 0, 0.4, 0.8, 1.2, 1.6 -> offsets 0, 0.4, 0.8, 0.2, 0.6
    offsets = torch.tensor([0, 0.4, 0.8, 0.2, 0.6])
    torch.testing.assert_close(position[:, 0, 1], offsets, rtol=0, atol=1e-6)
    torch.testing.assert_close(position[0, :, 2], offsets, rtol=0, atol=1e-6)


def test_liif_blend_weights_sum_to_one():
    # An MLP that answers a constant: the local ensemble's area weights must sum to one everywhere.
    head = build_upsampler("liif", in_channels=3, out_channels=1, scale=2.7, options={"hidden": 4, "depth": 1})
    with torch.no_grad():
        head.imnet.layers[-1].weight.zero_()
        head.imnet.layers[-1].bias.fill_(0.25)
        out = head(torch.rand(1, 3, 4, 5))
    torch.testing.assert_close(out, torch.full_like(out, 0.25))
