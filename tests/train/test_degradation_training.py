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
