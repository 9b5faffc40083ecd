"""A real (short) training run must beat bicubic: the whole pipeline learning, end to end."""

import json

import pytest
from PIL import Image

from conftest import photo
from srlab.cli.main import main

TRAIN = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "brick", "gravel")


@pytest.mark.slow
def test_short_training_run_beats_bicubic(tmp_path, capsys):
    for name in TRAIN:
        (tmp_path / "train").mkdir(exist_ok=True)
        Image.fromarray(photo(name)).save(tmp_path / "train" / f"{name}.png")
    (tmp_path / "val").mkdir()
    Image.fromarray(photo("coffee")).save(tmp_path / "val" / "coffee.png")
    argv = ["--train_dir", str(tmp_path / "train"), "--val_dir", str(tmp_path / "val"), "--scale", "2",
            "--epochs", "3", "--batch_size", "16", "--patch_size", "48", "--model", "rdsr_s", "--lr", "1e-3",
            "--set", "data.repeat=240", "--quiet"]
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 0
    assert main(["eval", "--model", "bicubic", "--scale", "2", "--data", str(tmp_path / "val"),
                 "--json", str(tmp_path / "bicubic.json"), "--quiet"]) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.safetensors"), "--data",
                 str(tmp_path / "val"), "--json", str(tmp_path / "model.json"), "--quiet"]) == 0
    bicubic = json.loads((tmp_path / "bicubic.json").read_text())["results"][0]["psnr_y"]
    model = json.loads((tmp_path / "model.json").read_text())["results"][0]["psnr_y"]
    assert model > bicubic + 0.5  # measured: 31.53 vs 30.59 dB after these 315 iterations
