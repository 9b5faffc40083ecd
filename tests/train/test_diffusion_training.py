"""``step: diffusion`` with ``losses: [{name: diffusion}]``: an SR3 run trains, and resumes bit-exactly."""

import pytest
import torch
from safetensors.torch import load_file

import srlab
from conftest import CONFIGS, config_as_written
from srlab.cli.main import main
from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective


def _args(tiny_photos, out, *extra, epochs=2):
    """configs/sr3_tiny_x4.yaml made tiny: 8 channels, 2 sampling steps, one batch of four 32x32 patches an epoch."""
    return [
        "train", "--config", str(CONFIGS / "sr3_tiny_x4.yaml"), "--train_dir", str(tiny_photos["train"]),
        "--val_dir", str(tiny_photos["val"]), "--epochs", str(epochs), "--batch_size", "4", "--patch_size", "32",
        "--set", "model.args={channels: 8, groups: 4, steps: 2}", "--set", "data.repeat=1", "--set", "val_every=1",
        "--deterministic", "--out", str(out), "--quiet", *extra,
    ]


def test_diffusion_run_in_two_parts_equals_one_run(tiny_photos, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_args(tiny_photos, whole, "--set", "schedule.total_epochs=2")) == 0  # 2 iterations
    assert main(_args(tiny_photos, parts, "--set", "schedule.total_epochs=2", epochs=1)) == 0
    assert main(["train", "--out", str(parts), "--resume", "--epochs", "2", "--quiet"]) == 0
    a, b = load_file(str(whole / "last.safetensors")), load_file(str(parts / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = torch.load(whole / "state.pt", weights_only=True)
    assert state["iteration"] == 2
    initial = srlab.create_model("sr3_tiny", scale=4, args={"channels": 8, "groups": 4, "steps": 2})
    assert any(not torch.equal(initial.state_dict()[k], v) for k, v in state["model"].items())  # it trained


def test_the_loss_compares_predicted_and_true_noise():
    predicted, noise = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    inputs = LossInputs(sr=torch.zeros(1, 3, 2, 2), hr=torch.zeros(1, 3, 2, 2), lr=torch.zeros(1, 3, 1, 1), scale=2,
                        aux={"predicted_noise": predicted, "noise": noise})
    assert build_objective("diffusion")(inputs).item() == 0.5
    assert build_objective("diffusion", params={"norm": "l2"})(inputs).item() == 0.25
    with pytest.raises(SrlabError, match="loss diffusion needs the predicted and true noise of `step: diffusion`"):
        build_objective("diffusion")(LossInputs(sr=predicted, hr=noise, lr=noise, scale=2))


def test_the_tiny_config_is_valid_as_written():
    config = config_as_written("sr3_tiny_x4")
    assert config.step == "diffusion" and config.model.name == "sr3_tiny" and config.scale == 4
    assert [(t.name, t.params) for t in config.losses] == [("diffusion", {"norm": "l1"})]
