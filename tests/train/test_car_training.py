"""CAR's joint training: the regularisers, a few iterations of both modes, saving, loading, evaluation."""

import dataclasses
import math

import pytest
import torch

from srlab.data.io import write_image
from srlab.errors import SrlabError
from srlab.train.car import CarTrainConfig, evaluate_round_trip, load_pair, offset_loss, train_car, tv_loss

TINY = CarTrainConfig(scale=4, iterations=3, patch_size=32, batch_size=2, lr=1e-4, resampler_channels=16,
                      upscaler_channels=8, upscaler_blocks=1, log_every=1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hr")
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 7, generator=g), size=(40, 48), mode="bilinear")
        write_image(folder / f"im{i}.png", smooth[0])
    return folder


def test_offset_loss_weighs_each_tap_by_its_distance_from_k_over_2():
    """k = 13: a single offset (dx, dy) = (0.6, 0.8) at tap (ky, kx) = (0, 3), one pixel of a batch of 2."""
    offsets_h, offsets_v = torch.zeros(2, 169, 1, 1), torch.zeros(2, 169, 1, 1)
    offsets_h[1, 3], offsets_v[1, 3] = 0.6, 0.8
    distance = math.hypot(0 - 6.5, 3 - 6.5) / 13
    torch.testing.assert_close(offset_loss(offsets_h, offsets_v), torch.tensor(1.0 * distance / 2))


def test_tv_loss_takes_horizontal_steps_of_dy_and_vertical_steps_of_dx():
    kernels = torch.full((1, 1, 2, 2), 0.5)
    offsets_h = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])  # dx changes from row to row only
    offsets_v = torch.tensor([[[[0.0, 0.4], [0.0, 0.4]]]])  # dy changes from column to column only
    torch.testing.assert_close(tv_loss(offsets_h, offsets_v, kernels), torch.tensor(2 * 0.5 * 1.0 + 2 * 0.5 * 0.4))
    torch.testing.assert_close(tv_loss(offsets_v, offsets_h, kernels), torch.tensor(0.0))


@pytest.mark.parametrize("downscaler", ["car", "bicubic"])
def test_a_few_iterations_train_save_and_load(photos, tmp_path, downscaler):
    lines = []
    config = dataclasses.replace(TINY, downscaler=downscaler)
    pair = train_car(config, photos, tmp_path / "pair.pt", log=lines.append)
    assert len(lines) == 3 and lines[-1].startswith("iter 3 ")
    assert all(math.isfinite(float(line.split(" l1 ")[1].split()[0])) for line in lines)
    loaded, loaded_config = load_pair(tmp_path / "pair.pt")
    assert loaded_config == config
    hr = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(hr)[0], pair.eval()(hr)[0])
    scores = evaluate_round_trip(loaded, photos, downscaler)
    assert set(scores) == {"im0.png", "im1.png", "mean"} and all(math.isfinite(v) for v in scores.values())


def test_joint_training_moves_the_resampler_and_bicubic_training_does_not(photos, tmp_path):
    before = train_car(dataclasses.replace(TINY, iterations=0), photos, tmp_path / "0.pt").resampler.state_dict()
    for downscaler, moves in (("car", True), ("bicubic", False)):
        after = train_car(dataclasses.replace(TINY, downscaler=downscaler), photos, tmp_path / "3.pt", log=str)
        changed = not torch.equal(after.resampler.ds_1[1].weight, before["ds_1.1.weight"])
        assert changed is moves, downscaler


def test_a_corrupt_checkpoint_is_one_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SrlabError, match=r"bad.pt is not a CAR checkpoint written by train_car"):
        load_pair(bad)


def test_patch_size_must_be_a_multiple_of_8(photos, tmp_path):
    with pytest.raises(SrlabError, match="patch_size must be a positive multiple of 8, got 36"):
        train_car(dataclasses.replace(TINY, patch_size=36), photos, tmp_path / "x.pt")


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "batch_size must be >= 1, got 0"),
    ("resampler_channels", 18, "resampler_channels must be a multiple of 4"),
    ("lr", 0.0, "iterations must be >= 0 and lr > 0, got 3 and 0.0"),
])
def test_bad_settings_are_one_error(photos, tmp_path, field, value, message):
    with pytest.raises(SrlabError, match=message):
        train_car(dataclasses.replace(TINY, **{field: value}), photos, tmp_path / "x.pt")
