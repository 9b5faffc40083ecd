"""CAR's resampler and upscaler: the official parameter layout, shapes, kernel normalisation, loading."""

import pytest
import torch

from srlab.models.car import CarPair, CarResampler, CarUpscaler, car_downscale, load_official_car, quantize_8bit
from srlab.models.registry import build_model

# Read from sunwj/CAR modules.py (class DSN), commit 05b22776b9f690dac94ced8baeb455bb722c0997: every
# state-dict key (each conv has .weight and .bias).
OFFICIAL_DSN_CONVS = [
    "sub_mean", "ds_1.1", "ds_2.downsample.1", "ds_4.downsample.1",
    *(f"res_4.{i}.transform.{j}" for i in range(5) for j in (1, 4)),
    "ds_8.downsample.1",
    *(f"{trunk}.{j}" for trunk in ("kernels_trunk", "offsets_trunk") for j in (1, 4, 7, "9.upsample.0", 11)),
    *(f"{head}.{j}" for head in ("kernels_weight", "offsets_h_generation", "offsets_v_generation") for j in (1, 4)),
]
# EDSR/edsr.py of the same commit, EDSR(n_resblocks=2, n_feats=...) at x4: two 2x upsampling convs.
OFFICIAL_EDSR_CONVS_X4_2_BLOCKS = [
    "sub_mean", "add_mean", "head.0", "body.0.body.0", "body.0.body.2", "body.1.body.0", "body.1.body.2", "body.2",
    "tail.0.0", "tail.0.2", "tail.1",
]


def keys(convs):
    return sorted(f"{c}.{p}" for c in convs for p in ("weight", "bias"))


def test_resampler_keys_are_the_official_ones():
    assert sorted(CarResampler(scale=4, channels=16).state_dict()) == keys(OFFICIAL_DSN_CONVS)


def test_upscaler_keys_are_the_official_ones():
    assert sorted(CarUpscaler(scale=4, channels=8, num_blocks=2).state_dict()) == keys(OFFICIAL_EDSR_CONVS_X4_2_BLOCKS)


def test_official_resampler_shapes_at_x4():
    """The paper's network: 64/128/256 channels, 13 x 13 = 169 taps at x4."""
    shapes = {k: tuple(v.shape) for k, v in CarResampler(scale=4).state_dict().items()}
    assert shapes["ds_1.1.weight"] == (64, 3, 5, 5)
    assert shapes["ds_2.downsample.1.weight"] == (128, 256, 1, 1)
    assert shapes["ds_8.downsample.1.weight"] == (256, 512, 1, 1)
    assert shapes["kernels_trunk.9.upsample.0.weight"] == (1024, 256, 1, 1)
    assert shapes["kernels_weight.4.weight"] == (169, 256, 3, 3)


@pytest.mark.parametrize("scale", [2, 4])
def test_kernels_are_normalised_and_offsets_bounded(scale):
    resampler = CarResampler(scale=scale, channels=16)
    kernels, offsets_h, offsets_v = resampler(torch.rand(2, 3, 32, 40))
    k2 = (3 * scale + 1) ** 2
    for t in (kernels, offsets_h, offsets_v):
        assert t.shape == (2, k2, 32 // scale, 40 // scale)
    torch.testing.assert_close(kernels.sum(1), torch.ones(2, 32 // scale, 40 // scale))
    assert kernels.min() > 0 and offsets_h.abs().max() <= 1 and offsets_v.abs().max() <= 1


def test_scale_3_is_refused():
    with pytest.raises(ValueError, match="CAR downscales by 2 or 4, not 3"):
        CarResampler(scale=3)


def tiny_pair(scale: int) -> CarPair:
    return CarPair(CarResampler(scale=scale, channels=16), CarUpscaler(scale=scale, channels=8, num_blocks=1))


def test_pair_round_trip_shapes_and_8_bit_lr():
    pair = tiny_pair(4)
    hr = torch.rand(1, 3, 32, 48)
    reconstruction, lr, *_ = pair(hr)
    assert reconstruction.shape == hr.shape and lr.shape == (1, 3, 8, 12)
    torch.testing.assert_close(lr * 255, torch.round(lr * 255))
    torch.testing.assert_close(pair.downscale(hr), lr)
    torch.testing.assert_close(car_downscale(pair.resampler, torch.cat([hr, hr[:, :, :5]], 2)[0]), lr[0])


def test_car_edsr_is_the_registered_upscaler_with_official_names():
    model = build_model("car_edsr", scale=4, args={"channels": 8, "num_blocks": 2})
    assert isinstance(model, CarUpscaler) and sorted(model.state_dict()) == keys(OFFICIAL_EDSR_CONVS_X4_2_BLOCKS)


def test_quantisation_passes_the_gradient_straight_through():
    x = torch.tensor([-0.2, 0.3, 1.4], requires_grad=True)
    y = quantize_8bit(x)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, round(0.3 * 255) / 255, 1.0]))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(3))


def test_official_data_parallel_state_dicts_load_strictly():
    source = tiny_pair(2)
    kgn = {f"module.{k}": v for k, v in source.resampler.state_dict().items()}
    usn = {f"module.{k}": v for k, v in source.upscaler.state_dict().items()}
    target = tiny_pair(2)
    load_official_car(target, kgn, usn)
    hr = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(target(hr)[0], source(hr)[0])
    del usn["module.tail.1.bias"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "tail.1.bias"'):
        load_official_car(target, kgn, usn)
