"""``step: diffusion`` with ``losses: [{name: diffusion}]``: SR3 and ResShift runs train, and resume bit-exactly."""

import pytest
import torch
from safetensors.torch import load_file

import srlab
from conftest import CONFIGS, config_as_written
from srlab.cli.main import main
from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective
from srlab.train.diffusion_step import draw_seed


# Per model: its config and hyper-parameters made tiny (8 channels, 2 sampling steps where the model respaces).
TINY = {
    "sr3_tiny": ("sr3_tiny_x4.yaml", {"channels": 8, "groups": 4, "steps": 2}),
    "resshift_tiny": ("resshift_tiny_x4.yaml", {"channels": 8, "groups": 4, "swin_embed_dim": 16, "steps": 2}),
}


def _args(tiny_photos, out, name, *extra, epochs=2):
    """The model's tiny config: one batch of four 32x32 patches an epoch."""
    config, args = TINY[name]
    model_args = "{" + ", ".join(f"{k}: {v}" for k, v in args.items()) + "}"
    return [
        "train", "--config", str(CONFIGS / config), "--train_dir", str(tiny_photos["train"]),
        "--val_dir", str(tiny_photos["val"]), "--epochs", str(epochs), "--batch_size", "4", "--patch_size", "32",
        "--set", f"model.args={model_args}", "--set", "data.repeat=1", "--set", "val_every=1",
        "--deterministic", "--out", str(out), "--quiet", *extra,
    ]


@pytest.mark.parametrize("name", sorted(TINY))
def test_diffusion_run_in_two_parts_equals_one_run(tiny_photos, tmp_path, name):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_args(tiny_photos, whole, name, "--set", "schedule.total_epochs=2")) == 0  # 2 iterations
    assert main(_args(tiny_photos, parts, name, "--set", "schedule.total_epochs=2", epochs=1)) == 0
    assert main(["train", "--out", str(parts), "--resume", "--epochs", "2", "--quiet"]) == 0
    a, b = load_file(str(whole / "last.safetensors")), load_file(str(parts / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = torch.load(whole / "state.pt", weights_only=True)
    assert state["iteration"] == 2
    initial = srlab.create_model(name, scale=4, args=TINY[name][1])
    assert any(not torch.equal(initial.state_dict()[k], v) for k, v in state["model"].items())  # it trained


@pytest.mark.parametrize(("config", "name"), [("sr3_x4.yaml", "sr3_tiny"), ("resshift_x4.yaml", "resshift_tiny")])
def test_the_gpu_recipes_run_end_to_end_with_a_tiny_model(tiny_photos, tmp_path, config, name):
    # Their step, loss, schedule (warm-up, constant) and EMA, on the CPU, with the tiny model of the same family.
    args = _args(tiny_photos, tmp_path / "run", name, "--model", name, "--set", "amp='off'",
                 "--set", "checkpoint_every_iters=0", "--set", "data.num_workers=0", epochs=1)
    args[args.index("--config") + 1] = str(CONFIGS / config)
    assert main(args) == 0
    assert (tmp_path / "run" / "best.safetensors").is_file()


def test_resshift_trains_on_the_clean_image_with_the_official_mse():
    # The draw's target is x_0 = 2 hr - 1, the training forward predicts it, and its clean image is the
    # prediction mapped back to [0, 1]; the loss is the mean squared error (official `mse`).
    torch.manual_seed(0)
    model = srlab.create_model("resshift_tiny", scale=4, args={"channels": 8, "groups": 4, "swin_embed_dim": 16})
    hr, lr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 8, 8)
    draw = model.draw_training(lr, hr)
    assert torch.equal(draw.target, hr * 2 - 1) and set(draw.inputs) == {"noisy", "step"}
    predicted = model(lr, **draw.inputs)
    assert predicted.shape == hr.shape
    assert torch.equal(draw.clean(torch.tensor([-3.0, -1.0, 0.0, 1.0])), torch.tensor([0.0, 0.0, 0.5, 1.0]))
    inputs = LossInputs(sr=draw.clean(predicted), hr=hr, lr=lr, scale=4,
                        aux={"prediction": predicted, "target": draw.target})
    expected = (predicted - draw.target).square().mean()
    assert torch.allclose(build_objective("diffusion", params={"norm": "l2"})(inputs), expected)


def test_sr3_draw_keeps_its_noise_target():
    model = srlab.create_model("sr3_tiny", scale=4, args={"channels": 8, "groups": 4})
    hr, lr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 4, 4)
    torch.manual_seed(3)
    draw = model.draw_training(lr, hr)
    torch.manual_seed(3)
    noisy, level, noise = model.draw_training_noise(hr)  # the same RNG draws, in the same order
    assert torch.equal(draw.target, noise) and torch.equal(draw.inputs["noisy"], noisy)
    assert torch.equal(draw.inputs["noise_level"], level)
    assert torch.allclose(draw.clean(noise), hr, atol=1e-4)  # the true noise implies the HR image


def test_models_without_a_draw_are_refused(tiny_photos, tmp_path, capsys):
    args = _args(tiny_photos, tmp_path / "r", "sr3_tiny", "--set", "model.name=rdsr_s", "--set", "model.args={}")
    assert main(args) == 2
    refusal = "step diffusion trains a diffusion model (sr3, sr3_tiny, resshift, resshift_tiny), not rdsr_s"
    assert refusal in capsys.readouterr().err


def test_the_loss_compares_prediction_and_target():
    predicted, noise = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    inputs = LossInputs(sr=torch.zeros(1, 3, 2, 2), hr=torch.zeros(1, 3, 2, 2), lr=torch.zeros(1, 3, 1, 1), scale=2,
                        aux={"prediction": predicted, "target": noise})
    assert build_objective("diffusion")(inputs).item() == 0.5
    assert build_objective("diffusion", params={"norm": "l2"})(inputs).item() == 0.25
    with pytest.raises(SrlabError, match="loss diffusion needs the denoiser's prediction and target of `step: diff"):
        build_objective("diffusion")(LossInputs(sr=predicted, hr=noise, lr=noise, scale=2))


def test_the_tiny_config_is_valid_as_written():
    config = config_as_written("sr3_tiny_x4")
    assert config.step == "diffusion" and config.model.name == "sr3_tiny" and config.scale == 4
    assert [(t.name, t.params) for t in config.losses] == [("diffusion", {"norm": "l1"})]


def test_the_resshift_config_is_valid_as_written():
    config = config_as_written("resshift_tiny_x4")
    assert config.step == "diffusion" and config.model.name == "resshift_tiny" and config.scale == 4
    assert [(t.name, t.params) for t in config.losses] == [("diffusion", {"norm": "l2"})]
    assert config.ema_decay == 0.0 and config.data.patch_size == 64
    assert dict(config.model.args) == {"prediction": "preconditioned", "temperature": 0.0, "kappa": 0.1}


def test_each_rank_and_iteration_draws_with_its_own_seed():
    seeds = {draw_seed(seed, iteration, rank) for seed in (0, 1) for iteration in range(50) for rank in range(8)}
    assert len(seeds) == 2 * 50 * 8
