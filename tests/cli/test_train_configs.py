"""The example configs in configs/ load, validate and train end to end (made tiny with --set)."""


import pytest
import torch
import yaml

import srlab.train.step as step
from conftest import CONFIGS, config_as_written
from srlab.cli.main import main

NAMES = ("esrgan_two_stage", "rlfn_contrastive", "rfdn_l1_then_l2", "udl_two_stage", "curriculum_difficulty",
         "rdsr_adaptive_x4", "rdsr_adaptive_x4_distill", "liif_edsr_baseline", "upsampler_compare_x4", "mulut_x4")

# Tiny: a 3k-parameter model, 8 patches of 32 per epoch, one epoch per stage, no downloads.
TINY = (
    "--scale", "2", "--batch_size", "4", "--patch_size", "32", "--model", "rdsr_s", "--device", "cpu", "--quiet",
    "--set", "model.args={channels: 8, num_blocks: 1}", "--set", "data.repeat=2", "--set", "data.num_workers=0",
    "--set", "schedule.warmup_iters=0",
)
PER_CONFIG = {
    "esrgan_two_stage": (
        "--epochs", "2", "--set", "stages.0.epochs=1", "--set", "stages.1.epochs=1",
        "--set", "stages.1.losses.1.params={feature_weights: null, random_init: true, layers: [conv2_2]}",
        "--set", "stages.1.losses.2.params.discriminator_channels=4", "--set", "checkpoint_every_iters=1",
    ),
    "rlfn_contrastive": ("--epochs", "2", "--set", "stages.0.epochs=1", "--set", "stages.1.epochs=1"),
    "rfdn_l1_then_l2": ("--epochs", "2", "--set", "stages.0.epochs=1", "--set", "stages.1.epochs=1"),
    "udl_two_stage": ("--epochs", "2", "--set", "stages.0.epochs=1", "--set", "stages.1.epochs=1",
                      "--set", "udl_head_channels=4"),
    "curriculum_difficulty": ("--epochs", "2", "--set", "curriculum.epochs=1"),
    # its own model (exit_l1 needs exits), without the x4 warm start (the tiny model shares no shape with it)
    "rdsr_adaptive_x4": ("--epochs", "2", "--model", "rdsr_adaptive", "--init_from", ""),
    "rdsr_adaptive_x4_distill": ("--epochs", "2", "--model", "rdsr_adaptive", "--init_from", ""),
    # its own model (MuLUT's network), one stage of 4 channels
    "mulut_x4": ("--epochs", "2", "--model", "mulut_net", "--set", "model.args={channels: 4, stages: 1}",
                 "--set", "val_every=1", "--set", "data.num_workers=0"),
    # its own model and step (random scales in [1, 2] here, sampled HR pixels)
    "liif_edsr_baseline": ("--epochs", "2", "--model", "liif_edsr_baseline",
                           "--set", "model.args={channels: 8, num_blocks: 1, hidden: 16, depth: 2}"),
    # bench/upsampler_compare.py sets the upsampler per run (one that is not the default here) and, with
    # --freeze_backbone, freezes everything but tail.*
    "upsampler_compare_x4": ("--epochs", "2", "--set", "val_every=1",
                             "--set", "model.args={channels: 8, num_blocks: 1, upsampler: decomposed}",
                             "--set", "model.freeze=[blocks., esa., fuse., head.]"),
}
EXPECTED_TERMS = {
    "esrgan_two_stage": ["loss_l1", "loss_content", "loss_gan", "loss_discriminator"],
    "rlfn_contrastive": ["loss_l1", "loss_contrastive"],
    "rfdn_l1_then_l2": ["loss_l1"],
    "udl_two_stage": ["loss_udl"],
    "curriculum_difficulty": ["loss_l1", "curriculum_fraction 0.300"],
    "rdsr_adaptive_x4": ["loss_l1", "loss_exit_l1", "loss_exit_l1_2"],
    "rdsr_adaptive_x4_distill": ["loss_l1", "loss_exit_l1", "loss_exit_l1_2"],
    "mulut_x4": ["loss_l2"],
    "liif_edsr_baseline": ["loss_l1"],
    "upsampler_compare_x4": ["loss_l1"],
}


def _argv(name, tiny_photos, out, *extra):
    return [
        "train", "--config", str(CONFIGS / f"{name}.yaml"), "--train_dir", str(tiny_photos["train"]),
        "--val_dir", str(tiny_photos["val"]), "--out", str(out), *TINY, *PER_CONFIG[name], *extra,
    ]


# Configs of models with their own end-to-end tests (the generic one trains rdsr_s): ClassSR's three stages
# (tests/train/test_classsr_training.py), ARM's supernets (below), the internally adaptive models' recipes
# (tests/train/test_adaptive_recipes.py), unpaired training (tests/train/test_unpaired.py: it needs unpaired LR),
# CAR (tests/train/test_car_training.py: its own model and step, scored by `srlab car eval`), SR3 and ResShift
# (tests/train/test_diffusion_training.py: their own models, step and loss).
TESTED_ELSEWHERE = (
    "classsr_fsrcnn_stage1", "classsr_fsrcnn_stage2", "classsr_fsrcnn_stage3",
    "arm_fsrcnn_x4", "arm_carn_x4", "arm_srresnet_x4",
    "camixersr_x4", "smsr_x2", "pcsr_carn_x4_phase0", "pcsr_carn_x4_phase1", "unpaired_x4", "car_x4",
    "sr3_tiny_x4", "resshift_tiny_x4", "sr3_x4", "resshift_x4",
)


def test_every_example_config_is_tested():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(NAMES + TESTED_ELSEWHERE)


@pytest.mark.parametrize("name", sorted(NAMES + TESTED_ELSEWHERE))
def test_every_config_is_valid_as_written(name):
    assert config_as_written(name).epochs >= 1


@pytest.mark.parametrize("name", NAMES)
def test_example_config_trains_end_to_end(name, tiny_photos, tmp_path):
    out = tmp_path / "run"
    assert main(_argv(name, tiny_photos, out)) == 0
    vals = [line for line in (out / "train.log").read_text().splitlines() if "val_psnr_y" in line]
    assert len(vals) == 2
    first, last = vals
    for term in EXPECTED_TERMS[name]:
        assert term in first or term in last, (term, vals)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    if saved["stages"]:
        assert f"stage 2 ({saved['stages'][1]['name']})" in last
    if name == "rlfn_contrastive":
        assert "loss_l2" in last and "loss_contrastive" in first
    if name == "upsampler_compare_x4":
        assert saved["model"]["args"]["upsampler"] == "decomposed"
        assert saved["model"]["freeze"] == ["blocks.", "esa.", "fuse.", "head."]
        assert "frozen " in (out / "train.log").read_text()


def test_esrgan_resume_in_the_gan_stage_restores_the_discriminator(tiny_photos, tmp_path, monkeypatch):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_argv("esrgan_two_stage", tiny_photos, whole, "--deterministic")) == 0
    calls = {"n": 0}
    real_step = step.backward_step

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the second iteration of the GAN stage
            raise KeyboardInterrupt
        real_step(*args, **kwargs)

    monkeypatch.setattr(step, "backward_step", crash)
    assert main(_argv("esrgan_two_stage", tiny_photos, cut, "--deterministic")) != 0
    monkeypatch.setattr(step, "backward_step", real_step)
    mid = torch.load(cut / "state.pt", weights_only=True)
    assert (mid["stage"], mid["iteration"]) == (1, 3) and mid["discriminators"]["gan"]
    assert main(["train", "--out", str(cut), "--resume", "--quiet"]) == 0
    a = torch.load(whole / "state.pt", weights_only=True)
    b = torch.load(cut / "state.pt", weights_only=True)
    for part in ("model",):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    da, db = a["discriminators"]["gan"], b["discriminators"]["gan"]
    assert all(torch.equal(da[k], db[k]) for k in da)
    assert not all(torch.equal(mid["discriminators"]["gan"][k], db[k]) for k in db)


def test_the_arm_recipe_trains_its_supernet_with_the_sandwich_rule(tiny_photos, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--config", str(CONFIGS / "arm_fsrcnn_x4.yaml"), "--train_dir", str(tiny_photos["train"]),
            "--val_dir", str(tiny_photos["val"]), "--out", str(out), "--epochs", "1", "--batch_size", "4",
            "--patch_size", "32", "--device", "cpu", "--quiet", "--set", "data.repeat=1", "--set", "val_every=1"]
    assert main(argv) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["step"] == "arm_sandwich"
    assert any("val_psnr_y" in line for line in (out / "train.log").read_text().splitlines())


def test_model_arg_merges_into_the_configs_model_args():
    import argparse

    from srlab.cli.train import add_arguments, build_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", str(CONFIGS / "upsampler_compare_x4.yaml"),
                              "--model_arg", "upsampler=attention", "--model_arg", "channels=8"])
    assert build_config(args).model.args == {"init": "default", "upsampler": "attention", "channels": 8}
