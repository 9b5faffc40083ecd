"""Issue 19: "a tiny configuration trains on a CPU in minutes and beats bicubic upsampling in PSNR on its
validation images", for each tiny diffusion model with its configs/<model>_x4.yaml (made shorter here)."""

import json

import pytest
from PIL import Image

from conftest import CONFIGS, photo
from srlab.cli.main import main

TRAIN = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "brick", "gravel")
# Per model: the budget that replaces its config's (sr3_tiny: 280 iterations of batch 8, 64x64 HR patches; about
# 107 s to 400 s on the 2-core Xeon, with other jobs). A model joins with its row here and in MODELS.
TRAINING = {
    "sr3_tiny": ["--epochs", "2", "--batch_size", "8", "--patch_size", "64", "--lr", "1e-3", "--set", "ema_decay=0",
                 "--set", "data.repeat=160", "--set", "val_every=2"],
    # resshift_tiny: 140 iterations of batch 8, raw weights (no EMA), its config's preconditioned prediction and 4-step
    # sampler at temperature 0; measured 27.77 dB against bicubic's 27.29 (README, "Diffusion SR: ResShift"; the
    # former recipe passed only with an EMA).
    "resshift_tiny": ["--epochs", "1", "--batch_size", "8", "--patch_size", "64", "--lr", "5e-4",
                      "--set", "ema_decay=0", "--set", "data.repeat=160", "--set", "val_every=1"],
}
# sr3_tiny does not get there: measured 14.33 dB (mean of 2 samples, 4 DDIM steps) against bicubic's 27.29 dB
# after this budget; its noise prediction is not yet accurate enough where the noise is large, and the clean
# estimate divides its error by the noise level (README, "Diffusion SR: SR3").
MODELS = [pytest.param("sr3_tiny", marks=pytest.mark.xfail(
    strict=True, raises=AssertionError, reason="sr3_tiny stays far below bicubic at a CPU-minutes budget")),
          "resshift_tiny"]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_a_tiny_diffusion_model_trains_in_minutes_and_beats_bicubic(model, tmp_path):
    (tmp_path / "train").mkdir()
    for name in TRAIN:
        Image.fromarray(photo(name)).save(tmp_path / "train" / f"{name}.png")
    (tmp_path / "val").mkdir()
    Image.fromarray(photo("coffee")).save(tmp_path / "val" / "coffee.png")
    argv = ["--config", str(CONFIGS / f"{model}_x4.yaml"), "--train_dir", str(tmp_path / "train"),
            "--val_dir", str(tmp_path / "val"), *TRAINING[model], "--quiet"]
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 0
    assert main(["eval", "--model", "bicubic", "--scale", "4", "--data", str(tmp_path / "val"),
                 "--json", str(tmp_path / "bicubic.json"), "--quiet"]) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.safetensors"), "--data",
                 str(tmp_path / "val"), "--samples", "2", "--json", str(tmp_path / "model.json"),
                 "--quiet"]) == 0
    bicubic = json.loads((tmp_path / "bicubic.json").read_text())["results"][0]["psnr_y"]
    model_psnr = json.loads((tmp_path / "model.json").read_text())["results"][0]["psnr_y"]  # mean over samples
    assert model_psnr > bicubic, (model_psnr, bicubic)
