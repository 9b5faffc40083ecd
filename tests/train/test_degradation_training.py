"""Training with ``degradation:``: LR patches made on the fly from HR patches by δ drawn from (seed, epoch,
index); the run records its degradation and a resumed run stays bit-exact."""

import torch
import yaml
from safetensors.torch import load_file

from srlab.cli.main import main
from srlab.data.datasets import EpochSampler, PatchDataset, discover_pairs
from srlab.data.degrade import apply_ops, parse_degradation


def _args(tiny_photos, out, *extra, epochs=2):
    return [
        "train", "--train_dir", str(tiny_photos["train"]), "--val_dir", str(tiny_photos["val"]), "--scale", "2",
        "--epochs", str(epochs), "--batch_size", "4", "--patch_size", "24", "--model", "rdsr_s", "--lr", "2e-3",
        "--set", "model.args={channels: 8, num_blocks: 1}", "--set", "data.repeat=3",
        "--set", "degradation={preset: realesrgan}", "--deterministic", "--out", str(out), "--quiet", *extra,
    ]


def test_patches_are_degraded_by_the_delta_of_their_index(tiny_photos):
    pairs = discover_pairs(tiny_photos["train"], 2).pairs
    dataset = PatchDataset(pairs, scale=2, patch_size=24, repeat=3, seed=4,
                           degradation=parse_degradation({"preset": "realesrgan"}, 2))
    sampler = EpochSampler(len(dataset), seed=4)
    sampler.set_epoch(1)
    index = next(iter(sampler))
    lr, hr = dataset[index]
    assert lr.shape == (3, 12, 12) and hr.shape == (3, 24, 24)
    assert torch.equal(apply_ops(hr, dataset.delta(index)), lr)
    assert torch.equal(dataset[index][0], lr)  # a pure function of the index
    assert dataset.delta(index) != dataset.delta(index + len(dataset))  # the next epoch's δ differs


def test_degraded_run_in_two_parts_equals_one_run_and_records_its_degradation(tiny_photos, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_args(tiny_photos, whole, "--set", "schedule.total_epochs=2")) == 0
    assert main(_args(tiny_photos, parts, "--set", "schedule.total_epochs=2", epochs=1)) == 0
    assert main(["train", "--out", str(parts), "--resume", "--epochs", "2", "--quiet"]) == 0
    a, b = load_file(str(whole / "last.safetensors")), load_file(str(parts / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert yaml.safe_load((whole / "config.yaml").read_text())["degradation"] == {"preset": "realesrgan"}
    assert "LR by degradation {'preset': 'realesrgan'}" in (whole / "train.log").read_text()


def test_unknown_preset_is_refused_before_training(tiny_photos, tmp_path, capsys):
    args = _args(tiny_photos, tmp_path / "run")
    args[args.index("degradation={preset: realesrgan}")] = "degradation={preset: realesrgan3}"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("srlab: error: unknown degradation preset 'realesrgan3': "
                           "use one of bicubic, realesrgan, bsrgan")


def test_gt_usm_sharpens_the_target_and_the_lr_is_made_from_it(tiny_photos):
    from srlab.data.degrade.usm import usm_sharpen

    pairs = discover_pairs(tiny_photos["train"], 2).pairs
    plain = PatchDataset(pairs, scale=2, patch_size=48, seed=4, degradation=parse_degradation({"preset": "realesrgan"}, 2))
    spec = {"preset": "realesrgan", "gt_usm": True}
    sharpened = PatchDataset(pairs, scale=2, patch_size=48, seed=4, degradation=parse_degradation(spec, 2))
    lr, hr = sharpened[5]
    assert torch.equal(hr, usm_sharpen(plain[5][1]))  # the same crop, sharpened
    assert torch.equal(lr, apply_ops(hr, sharpened.delta(5)))  # degraded from the sharpened patch
    assert parse_degradation(spec, 2).describe() == spec


def test_bad_gt_usm_and_unknown_keys_are_refused():
    import pytest

    from srlab.errors import SrlabError

    with pytest.raises(SrlabError, match=r"^degradation gt_usm must be true or false, got 'yes'$"):
        parse_degradation({"preset": "realesrgan", "gt_usm": "yes"}, 2)
    with pytest.raises(SrlabError, match=r"a mapping may add gt_usm: true\), got \{'preset': 'bsrgan', 'usm': True\}"):
        parse_degradation({"preset": "bsrgan", "usm": True}, 2)


def test_degraded_validation_images_are_what_srlab_degrade_writes(tiny_photos, tmp_path):
    from srlab.data.degrade.files import degrade_file
    from srlab.data.io import read_rgb
    from srlab.train.config import TrainConfig
    from srlab.train.data import validation_image

    config = TrainConfig(scale=2, seed=3, degradation={"preset": "realesrgan"})
    config.data.val_degradation = True
    degradation = parse_degradation(config.degradation, 2)
    pair = discover_pairs(tiny_photos["val"], 2).pairs[0]
    name, lr, hr = validation_image(pair, config, degradation)
    png, _ = degrade_file(pair.hr, tmp_path, degradation, seed=3, version="test")
    assert name == pair.name and torch.equal(lr, read_rgb(png)) and hr.shape == (3, 48, 60)
    config.data.val_degradation = False  # the folder's clean pair
    assert not torch.equal(validation_image(pair, config, degradation)[1], lr)


def test_degraded_validation_needs_a_degradation(tiny_photos, tmp_path, capsys):
    args = _args(tiny_photos, tmp_path / "run", "--set", "data.val_degradation=true")
    args[args.index("degradation={preset: realesrgan}")] = "degradation=null"
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        "srlab: error: data.val_degradation degrades the validation images by the run's degradation: "
        "set degradation (e.g. {preset: realesrgan}) or drop data.val_degradation")


def test_a_run_validates_on_degraded_images(tiny_photos, tmp_path):
    out = tmp_path / "run"
    assert main(_args(tiny_photos, out, "--set", "data.val_degradation=true", epochs=1)) == 0
    assert "val LR degraded too" in (out / "train.log").read_text()
