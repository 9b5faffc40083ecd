"""``step: arbitrary_scale``: LIIF's training rule (a random scale per batch, sampled HR pixels)."""

import random

import pytest
import torch

import srlab
from srlab.errors import SrlabError
from srlab.layers.upsamplers.liif import grid_coords
from srlab.train.arbitrary_scale_step import sample_pixels, sample_scale_batch
from srlab.train.config import TrainConfig
from srlab.train.trainer import train

SMALL = {
    "liif_edsr_baseline": {"channels": 8, "num_blocks": 1, "hidden": 16, "depth": 2},
    "metasr_rdn": {"channels": 8, "num_blocks": 1, "num_convs": 2, "growth": 8},
}


def _config(tiny_photos, out, name) -> TrainConfig:
    config = TrainConfig(scale=4, epochs=1, out=str(out), seed=0, step="arbitrary_scale")
    config.model.name, config.model.args = name, SMALL[name]
    config.data.train_dir, config.data.val_dir = str(tiny_photos["train"]), str(tiny_photos["val"])
    config.data.patch_size, config.data.batch_size, config.data.repeat = 32, 4, 2
    config.optim.lr = 1e-3
    return config


def test_a_batch_draws_one_scale_in_range_and_crops_round_lr_times_s():
    hr = torch.rand(3, 3, 32, 32)
    scales = set()
    for seed in range(20):
        scale, lr, crops = sample_scale_batch(hr, lr_size=8, scale_max=4, rng=random.Random(seed))
        assert 1 <= scale <= 4
        assert lr.shape == (3, 3, 8, 8) and crops.shape == (3, 3, round(8 * scale), round(8 * scale))
        scales.add(round(scale, 3))
    assert len(scales) == 20


def test_sampled_pixels_are_the_crops_pixels_at_their_coordinates():
    crops = torch.rand(2, 3, 10, 7)
    coord, cell, colour = sample_pixels(crops, 15, random.Random(0))
    assert coord.shape == (2, 15, 2) and colour.shape == (2, 3, 15)
    grid = grid_coords(10, 7)
    for n in range(2):
        for q in range(15):
            index = int(((grid - coord[n, q]).abs().sum(dim=1) == 0).nonzero())
            assert torch.equal(colour[n, :, q], crops[n].flatten(1)[:, index])
    torch.testing.assert_close(cell[0, 0], torch.tensor([2 / 10, 2 / 7]))


@pytest.mark.parametrize("name", ["liif_edsr_baseline", "metasr_rdn"])
def test_training_at_random_scales_runs_and_saves_a_model_that_loads(tiny_photos, tmp_path, name):
    result = train(_config(tiny_photos, tmp_path / "run", name), progress=False)
    assert result.iterations == 2  # 4 photos x repeat 2, batches of 4
    model = srlab.create_model(checkpoint=tmp_path / "run" / "last.safetensors", scale=2.5)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 6)).shape == (1, 3, 20, 15)


def test_integer_only_models_are_refused(tiny_photos, tmp_path):
    config = _config(tiny_photos, tmp_path / "run", "liif_edsr_baseline")
    config.model.name, config.model.args = "rdsr_s", {"channels": 8, "num_blocks": 1}
    with pytest.raises(SrlabError, match=r"step arbitrary_scale: model 'rdsr_s' takes integer scales only"):
        train(config, progress=False)
