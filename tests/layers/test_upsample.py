import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers import ProgressiveUpsampler, SubPixelHead


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sub_pixel_head_is_one_conv_then_pixel_shuffle(scale):
    torch.manual_seed(0)
    head = SubPixelHead(8, 3, scale)
    x = torch.randn(2, 8, 5, 7)
    expected = F.pixel_shuffle(F.conv2d(x, head[0].weight, head[0].bias, padding=1), scale)
    torch.testing.assert_close(head(x), expected)
    assert head(x).shape == (2, 3, 5 * scale, 7 * scale)


def test_sub_pixel_head_keys_under_the_models_attribute():
    model = nn.Module()
    model.upsampler = SubPixelHead(8, 1, 3, bias=False)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {"upsampler.0.weight": (9, 8, 3, 3)}
    model.upsampler = SubPixelHead(8, 3, 2)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        "upsampler.0.weight": (12, 8, 3, 3), "upsampler.0.bias": (12,)
    }


@pytest.mark.parametrize(
    ("scale", "convs"),
    [(1, {}), (2, {"0": 4}), (3, {"0": 9}), (4, {"0": 4, "2": 4}), (8, {"0": 4, "2": 4, "4": 4})],
)
def test_progressive_upsampler_stages_and_keys(scale, convs):
    up = ProgressiveUpsampler(6, scale)
    shapes = {k: tuple(v.shape) for k, v in up.state_dict().items()}
    expected = {}
    for index, factor in convs.items():
        expected[f"{index}.weight"] = (factor * 6, 6, 3, 3)
        expected[f"{index}.bias"] = (factor * 6,)
    assert shapes == expected
    x = torch.randn(1, 6, 4, 5)
    assert up(x).shape == (1, 6, 4 * scale, 5 * scale)


def test_progressive_upsampler_by_hand_at_x4():
    torch.manual_seed(0)
    up = ProgressiveUpsampler(4, 4)
    x = torch.randn(1, 4, 3, 3)
    y = F.pixel_shuffle(F.conv2d(x, up[0].weight, up[0].bias, padding=1), 2)
    y = F.pixel_shuffle(F.conv2d(y, up[2].weight, up[2].bias, padding=1), 2)
    torch.testing.assert_close(up(x), y)


@pytest.mark.parametrize("scale", [0, 5, 6, 12])
def test_progressive_upsampler_rejects_other_scales(scale):
    with pytest.raises(ValueError, match=f"powers of 2 or by 3, not {scale}"):
        ProgressiveUpsampler(4, scale)
