"""Every objective trains from the command line with a YAML `losses` config and logs its terms; the
GAN's discriminator is saved and restored on resume; mixed precision; config errors."""

import math
import re

import pytest
import torch
import yaml
from safetensors.torch import load_file

import srlab
import srlab.train.step as step
import srlab.train.trainer as trainer
from srlab.cli.main import main
from srlab.errors import SrlabError
from srlab.losses import LOSS_NAMES
from srlab.train.config import TrainConfig, apply_overrides, validate

# Per objective: the loss terms of a tiny run (feature losses on seeded random VGG weights: no download).
TERMS = {
    "l1": [{"name": "l1"}],
    "l2": [{"name": "l2"}],
    "charbonnier": [{"name": "charbonnier", "params": {"eps": 1.0e-3}}],
    "udl": [{"name": "udl", "params": {"stage": "estimate"}}],
    "content": [{"name": "l1"}, {"name": "content", "weight": 0.1,
                                 "params": {"random_init": True, "layers": ["conv2_2"]}}],
    "texture": [{"name": "l1"}, {"name": "texture", "weight": 0.1, "params": {"random_init": True}}],
    "tv": [{"name": "l1"}, {"name": "tv", "weight": 0.01}],
    "gan": [{"name": "l1"}, {"name": "gan", "weight": 0.005,
                             "params": {"gan_type": "ragan", "discriminator": "vgg", "discriminator_channels": 4}}],
    "contrastive": [{"name": "l1"}, {"name": "contrastive", "weight": 0.1, "params": {"channels": 8}}],
    "exit_l1": [{"name": "l1"}, {"name": "exit_l1"}],
}
# The model a loss needs, where rdsr_s will not do (a multi-exit loss needs a model with exits).
MODELS = {"exit_l1": "rdsr_adaptive"}
# Losses of routing models trained in their models' own end-to-end tests.
TRAINED_ELSEWHERE = {
    "class_loss": "tests/train/test_classsr_training.py", "average_loss": "tests/train/test_classsr_training.py",
    "aux_penalty": "tests/train/test_adaptive_recipes.py", "pcsr_average": "tests/train/test_adaptive_recipes.py",
    "diffusion": "tests/train/test_diffusion_training.py",  # with step diffusion and an SR3 model
}


def _argv(tiny_photos, out, config, *extra, epochs=1, model="rdsr_s"):
    return [
        "train", "--config", str(config), "--train_dir", str(tiny_photos["train"]), "--val_dir",
        str(tiny_photos["val"]), "--scale", "2", "--epochs", str(epochs), "--batch_size", "4", "--patch_size", "32",
        "--model", model, "--lr", "2e-3", "--set", "model.args={channels: 8, num_blocks: 1}",
        "--set", "data.repeat=2", "--device", "cpu", "--out", str(out), "--quiet", *extra,
    ]


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def _last_validation(run):
    lines = [line for line in (run / "train.log").read_text().splitlines() if "val_psnr_y" in line]
    return lines[-1]


def test_every_objective_is_covered():
    assert set(TERMS) | set(TRAINED_ELSEWHERE) == set(LOSS_NAMES) and not set(TERMS) & set(TRAINED_ELSEWHERE)


@pytest.mark.parametrize("name", sorted(TERMS))
def test_each_objective_trains_from_a_yaml_config_and_logs_its_terms(name, tiny_photos, tmp_path):
    config = _write(tmp_path / "c.yaml", {"losses": TERMS[name]})
    model = MODELS.get(name, "rdsr_s")
    assert main(_argv(tiny_photos, tmp_path / "run", config, model=model)) == 0
    line = _last_validation(tmp_path / "run")
    for term in TERMS[name]:
        value = float(re.search(rf"loss_{term['name']} (\S+)", line).group(1))
        assert math.isfinite(value), (term["name"], line)
    assert ("loss_discriminator" in line) == (name == "gan")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert [t["name"] for t in saved["losses"]] == [t["name"] for t in TERMS[name]]
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert (state["d_optimizer"] is not None) == (name == "gan")
    assert (state["head"] is not None) == (name == "udl")
    # the weights are the plain model (no UDL head, no discriminator)
    fresh = srlab.create_model(model, scale=2, args={"channels": 8, "num_blocks": 1})
    assert load_file(str(tmp_path / "run" / "last.safetensors")).keys() == fresh.state_dict().keys()


def test_the_old_single_loss_key_is_an_error_naming_losses(tiny_photos, tmp_path, capsys):
    config = _write(tmp_path / "c.yaml", {"loss": "charbonnier"})
    assert main(_argv(tiny_photos, tmp_path / "run", config)) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'loss'" in err and "use losses: [{name: charbonnier, weight: 1.0}]" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SrlabError, match=re.escape("use losses: [{name: l2, weight: 1.0}]")):
        apply_overrides(TrainConfig(), {"loss": "l2"})


def test_a_run_saved_with_the_old_loss_key_resumes_with_that_loss(tiny_photos, tmp_path):
    config = _write(tmp_path / "c.yaml", {"losses": [{"name": "charbonnier"}]})
    assert main(_argv(tiny_photos, tmp_path / "run", config)) == 0
    # config.yaml as srlab wrote it before `losses` replaced `loss` (and before the later sections)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    for key in ("losses", "stages", "d_optim", "curriculum", "amp", "compile", "udl_head_channels"):
        del saved[key]
    saved["loss"] = "charbonnier"
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert "loss_charbonnier" in _last_validation(tmp_path / "run")
    resaved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert "loss" not in resaved and resaved["losses"] == [{"name": "charbonnier", "weight": 1.0, "params": {}}]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"losses": [{"name": "l1", "wieght": 1}]}, "unknown config key 'losses.0.wieght'"),
    ({"losses": "l1"}, "config key 'losses' must be a list of mappings"),
    ({"stages": [{"epochs": 1}], "stages.3": {"epochs": 1}}, None),
])
def test_bad_loss_entries_are_config_errors(overrides, message):
    if message is None:  # index edits of a list need the item: checked through parse_set below
        from srlab.train.config import parse_set

        config = TrainConfig()
        apply_overrides(config, {"stages": [{"epochs": 1}]})
        with pytest.raises(SrlabError, match=re.escape("config key 'stages.3': stages has 1 items")):
            apply_overrides(config, parse_set(["stages.3.epochs=2"]))
        apply_overrides(config, parse_set(["stages.0.epochs=2"]))
        assert config.stages[0].epochs == 2
        return
    with pytest.raises(SrlabError, match=re.escape(message)):
        apply_overrides(TrainConfig(), overrides)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"losses": [{"name": "l3"}]}, "losses.0: unknown loss 'l3': use one of l1, l2"),
    ({"losses": [{"name": "gan", "params": {"gan_typ": "ragan"}}]}, "unknown parameter 'gan_typ' for loss 'gan'"),
    ({"losses": [{"name": "l1", "weight": -1}]}, "the weight must be >= 0"),
    ({"losses": []}, "losses is empty: give at least one term"),
    ({"stages": [{"epochs": 1, "losses": [{"name": "udl", "params": {"stage": "weighted"}}]}], "epochs": 1},
     "needs an earlier stage with udl stage 'estimate'"),
    ({"stages": [{"epochs": 1}, {"epochs": 2}], "epochs": 4}, "--epochs 4 is more than the stages' 3 epochs"),
    ({"amp": "fp8"}, "unknown amp 'fp8'"),
    ({"curriculum": {"measure": "entropy"}}, "unknown curriculum.measure 'entropy'"),
])
def test_config_errors_are_one_line(overrides, message, tiny_photos, tmp_path):
    from srlab.train.stages import check_stages

    config = TrainConfig(out=str(tmp_path / "run"))
    config.data.train_dir, config.data.val_dir = str(tiny_photos["train"]), str(tiny_photos["val"])
    apply_overrides(config, overrides)
    with pytest.raises(SrlabError, match=re.escape(message)) as error:
        validate(config)
        check_stages(config)
    assert "\n" not in str(error.value)


GAN_CONFIG = {
    "losses": [{"name": "l1", "weight": 0.01}, {"name": "gan", "weight": 0.005,
               "params": {"gan_type": "ragan", "discriminator": "vgg", "discriminator_channels": 4}}],
    "d_optim": {"lr": 5.0e-4, "betas": [0.5, 0.99]},
    "schedule": {"kind": "cosine"},
    "checkpoint_every_iters": 1,
}


def test_gan_resume_mid_stage_restores_the_discriminator(tiny_photos, tmp_path, monkeypatch):
    config = _write(tmp_path / "gan.yaml", GAN_CONFIG)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_argv(tiny_photos, whole, config, "--deterministic", epochs=2)) == 0

    calls = {"n": 0}
    real_step = step.backward_step

    def crash_at_step_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # in epoch 2, after the checkpoint of iteration 2
            raise KeyboardInterrupt
        real_step(*args, **kwargs)

    monkeypatch.setattr(step, "backward_step", crash_at_step_3)
    assert main(_argv(tiny_photos, cut, config, "--deterministic", epochs=2)) != 0  # "srlab: interrupted"
    monkeypatch.setattr(step, "backward_step", real_step)
    interrupted = torch.load(cut / "state.pt", weights_only=True)
    assert interrupted["iteration"] == 2
    assert main(["train", "--out", str(cut), "--resume", "--quiet"]) == 0

    a = torch.load(whole / "state.pt", weights_only=True)
    b = torch.load(cut / "state.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 4
    disc_a, disc_b = a["discriminators"]["gan"], b["discriminators"]["gan"]
    assert disc_a.keys() == disc_b.keys() and len(disc_a) > 10
    assert all(torch.equal(disc_a[k], disc_b[k]) for k in disc_a)
    # the discriminator trained (it moved from its saved mid-run state) and its Adam moments match
    assert not all(torch.equal(interrupted["discriminators"]["gan"][k], disc_b[k]) for k in disc_b)
    moments_a, moments_b = a["d_optimizer"]["state"], b["d_optimizer"]["state"]
    assert all(torch.equal(moments_a[i][k], moments_b[i][k]) for i in moments_a for k in moments_a[i])
    assert tuple(a["d_optimizer"]["param_groups"][0]["betas"]) == (0.5, 0.99)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_discriminator_learning_rate_follows_the_schedule(tiny_photos, tmp_path, monkeypatch):
    config = _write(tmp_path / "gan.yaml", {**GAN_CONFIG, "schedule": {"kind": "step", "step_epochs": 1, "gamma": 0.5}})
    seen = []
    real = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    assert main(_argv(tiny_photos, tmp_path / "run", config, epochs=2)) == 0
    # generator, discriminator per iteration; 2 iterations per epoch; halved after epoch 1
    assert seen == pytest.approx([2e-3, 5e-4] * 2 + [1e-3, 2.5e-4] * 2)


def test_amp(tiny_photos, tmp_path, monkeypatch, capsys):
    config = _write(tmp_path / "c.yaml", {"losses": [{"name": "l1"}]})
    assert main(_argv(tiny_photos, tmp_path / "fp16", config, "--amp", "fp16")) != 0
    assert "--amp fp16 needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "fp16").exists()
    monkeypatch.setattr(trainer, "_cpu_has_native_bf16", lambda: False)
    assert main(_argv(tiny_photos, tmp_path / "bf16", config, "--amp", "bf16")) == 0
    log = (tmp_path / "bf16" / "train.log").read_text()
    assert "--amp bf16 on a CPU without native bf16" in log
    assert yaml.safe_load((tmp_path / "bf16" / "config.yaml").read_text())["amp"] == "bf16"


@pytest.mark.slow
def test_two_process_gan_training_matches_one_process(tiny_photos, tmp_path):
    """Under torchrun the discriminator's gradients are averaged over the ranks like the model's (DDP).

    lsgan on a U-Net discriminator (no batch norm, per-pixel means): the two ranks' half-batch losses
    average to the single process's loss, so weights agree to float rounding."""
    import os
    import subprocess
    import sys

    config = _write(tmp_path / "gan.yaml", {"losses": [
        {"name": "l1"}, {"name": "gan", "weight": 0.1,
                         "params": {"gan_type": "lsgan", "discriminator": "unet", "discriminator_channels": 4}}]})
    assert main(_argv(tiny_photos, tmp_path / "one", config, epochs=2)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "srlab",
         *_argv(tiny_photos, tmp_path / "two", config, epochs=2)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "state.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "state.pt", weights_only=True)
    assert one["iteration"] == two["iteration"] == 4
    # the Adam moments are linear in the gradients: they show that the ranks' gradients were averaged
    m_one, m_two = one["d_optimizer"]["state"], two["d_optimizer"]["state"]
    for i in m_one:
        torch.testing.assert_close(m_two[i]["exp_avg"], m_one[i]["exp_avg"], rtol=1e-3, atol=1e-9)
    d_one, d_two = one["discriminators"]["gan"], two["discriminators"]["gan"]
    for key in d_one:
        torch.testing.assert_close(d_two[key], d_one[key], rtol=0, atol=1e-6)
    for key in one["model"]:
        torch.testing.assert_close(two["model"][key], one["model"][key], rtol=0, atol=1e-6)


def test_esrgan_recipe_in_two_runs_with_init_from(tiny_photos, tmp_path):
    """Stage 2 as a run of its own: pixel + content + gan, warm-started from a pixel-loss run."""
    pixel = _write(tmp_path / "pixel.yaml", {"losses": [{"name": "l1"}]})
    assert main(_argv(tiny_photos, tmp_path / "psnr", pixel)) == 0
    gan = _write(tmp_path / "gan.yaml", {"losses": TERMS["gan"] + [TERMS["content"][1]]})
    weights = tmp_path / "psnr" / "last.safetensors"
    assert main(_argv(tiny_photos, tmp_path / "gan", gan, "--init_from", str(weights))) == 0
    log = (tmp_path / "gan" / "train.log").read_text()
    assert "warm start from" in log and "kept the fresh init of 0" in log
    assert all(f"loss_{name}" in log for name in ("l1", "gan", "content", "discriminator"))
