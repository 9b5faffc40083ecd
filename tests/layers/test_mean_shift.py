import torch

from srlab.layers import DIV2K_RGB_MEAN, MeanShift


def test_mean_shift_subtracts_and_adds_the_scaled_div2k_mean():
    x = torch.rand(2, 3, 4, 5) * 255
    mean = 255 * torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1)
    sub, add = MeanShift(255.0, sign=-1), MeanShift(255.0, sign=1)
    with torch.no_grad():
        torch.testing.assert_close(sub(x), x - mean)
        torch.testing.assert_close(add(sub(x)), x)


def test_mean_shift_is_frozen_and_keeps_conv_keys():
    shift = MeanShift(1.0, sign=1, mean=(0.5, 0.25, 0.0))
    assert not any(p.requires_grad for p in shift.parameters())
    assert {k: tuple(v.shape) for k, v in shift.state_dict().items()} == {"weight": (3, 3, 1, 1), "bias": (3,)}
    assert shift.bias.tolist() == [0.5, 0.25, 0.0]
