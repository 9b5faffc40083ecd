"""Stages (a pure function of the epoch, restarted schedules, resume across a boundary), the UDL
two-stage scheme, the patch-difficulty curriculum, and torch.compile."""

import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from srlab.cli.main import main
from srlab.data.datasets import PatchDataset, discover_pairs
from srlab.train.config import TrainConfig, apply_overrides
from srlab.train.stages import CurriculumSampler, stage_at, stages
from srlab.train.schedule import learning_rate

STAGED = {
    "stages": [
        {"name": "pixel", "epochs": 2, "lr": 1.0e-3, "losses": [{"name": "l1"}]},
        {"name": "finetune", "epochs": 1, "lr": 1.0e-4, "losses": [{"name": "l2"}]},
    ],
}


def _argv(tiny_photos, out, config, *extra, epochs):
    return [
        "train", "--config", str(config), "--train_dir", str(tiny_photos["train"]), "--val_dir",
        str(tiny_photos["val"]), "--scale", "2", "--epochs", str(epochs), "--batch_size", "4", "--patch_size", "24",
        "--model", "rdsr_s", "--set", "model.args={channels: 8, num_blocks: 1}", "--set", "data.repeat=2",
        "--device", "cpu", "--deterministic", "--out", str(out), "--quiet", *extra,
    ]


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_stage_is_a_pure_function_of_the_epoch_and_the_schedule_restarts():
    config = TrainConfig(epochs=3)
    apply_overrides(config, STAGED)
    assert [stage_at(config, e).name for e in range(4)] == ["pixel", "pixel", "finetune", "finetune"]
    assert [(s.start_epoch, s.end_epoch) for s in stages(config)] == [(0, 2), (2, 3)]
    iters = 10
    # cosine over each stage, from each stage's base rate
    assert learning_rate(config, 0, iters) == pytest.approx(1e-3)
    assert learning_rate(config, 10, iters) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi / 2))))
    assert learning_rate(config, 20, iters) == pytest.approx(1e-4)
    assert learning_rate(config, 25, iters) == pytest.approx(1e-4 * (0.01 + 0.99 * 0.5))
    config.schedule.warmup_iters = 4  # warm-up at the start of every stage
    assert learning_rate(config, 21, iters) == pytest.approx(0.5e-4)
    # without stages: one stage of `epochs` with optim.lr (the old behaviour)
    plain = TrainConfig(epochs=5)
    assert [s.lr for s in stages(plain)] == [plain.optim.lr] and stages(plain)[0].epochs == 5
    assert stages(plain)[0].terms == (("l1", 1.0, {}),)


def test_staged_run_logs_stages_and_resumes_across_the_boundary(tiny_photos, tmp_path):
    config = _write(tmp_path / "staged.yaml", STAGED)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_argv(tiny_photos, whole, config, epochs=3)) == 0
    log = (whole / "train.log").read_text()
    assert "stage 1/2 (pixel): epochs 1-2 loss 1*l1 base lr 0.001" in log
    assert "stage 2/2 (finetune): epochs 3-3 loss 1*l2 base lr 0.0001" in log
    vals = [line for line in log.splitlines() if "val_psnr_y" in line]
    assert ["stage 1 (pixel)" in v for v in vals] == [True, True, False]
    assert "stage 2 (finetune)" in vals[2] and "loss_l2" in vals[2] and "loss_l1" not in vals[2]
    state = torch.load(whole / "state.pt", weights_only=True)
    assert state["stage"] == 1
    # a fresh Adam per stage: stage 2's optimiser has seen its 2 iterations only
    assert all(int(s["step"]) == 2 for s in state["optimizer"]["state"].values())

    # in parts: stop at the boundary, resume into stage 2
    assert main(_argv(tiny_photos, parts, config, epochs=2)) == 0
    assert torch.load(parts / "state.pt", weights_only=True)["stage"] == 0
    assert main(["train", "--out", str(parts), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert "stage 2/2 (finetune)" in (parts / "train.log").read_text()
    a, b = load_file(str(whole / "last.safetensors")), load_file(str(parts / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


UDL = {
    "udl_head_channels": 4,
    "checkpoint_every_iters": 1,
    "stages": [
        {"name": "estimate", "epochs": 1, "lr": 2.0e-3, "losses": [{"name": "udl", "params": {"stage": "estimate"}}]},
        {"name": "weighted", "epochs": 2, "lr": 1.0e-3, "losses": [{"name": "udl", "params": {"stage": "weighted"}}]},
    ],
}


def test_udl_two_stages_end_to_end_and_resume_in_stage_two(tiny_photos, tmp_path, monkeypatch):
    import srlab.train.step as step

    config = _write(tmp_path / "udl.yaml", UDL)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_argv(tiny_photos, whole, config, epochs=3)) == 0
    state = torch.load(whole / "state.pt", weights_only=True)
    assert state["head"] is None and state["estimator"] is not None
    # the estimator is the model as stage 1 left it (frozen): it differs from the trained model now
    estimator_model = {k[len("model."):]: v for k, v in state["estimator"].items() if k.startswith("model.")}
    assert estimator_model.keys() == state["model"].keys()
    assert not all(torch.equal(estimator_model[k], state["model"][k]) for k in estimator_model)
    log = (whole / "train.log").read_text()
    assert "udl estimate" in log and "udl weighted" in log

    calls = {"n": 0}
    real_step = step.backward_step

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the second iteration of stage 2
            raise KeyboardInterrupt
        real_step(*args, **kwargs)

    monkeypatch.setattr(step, "backward_step", crash)
    assert main(_argv(tiny_photos, cut, config, epochs=3)) != 0
    monkeypatch.setattr(step, "backward_step", real_step)
    mid = torch.load(cut / "state.pt", weights_only=True)
    assert (mid["stage"], mid["iteration"]) == (1, 3)
    assert main(["train", "--out", str(cut), "--resume", "--quiet"]) == 0
    resumed = torch.load(cut / "state.pt", weights_only=True)
    for part in ("model", "estimator"):
        assert all(torch.equal(state[part][k], resumed[part][k]) for k in state[part]), part


def _dataset(tiny_photos):
    pairs = discover_pairs(tiny_photos["train"], 2).pairs
    return PatchDataset(pairs, scale=2, patch_size=24, repeat=3, seed=0)


@pytest.mark.parametrize("measure", ["gradient", "bicubic"])
def test_curriculum_samples_the_easiest_patches_and_widens(tiny_photos, measure):
    dataset = _dataset(tiny_photos)
    n = len(dataset)
    sampler = CurriculumSampler(dataset, seed=0, measure=measure, start_fraction=0.25, epochs=3, scale=2)
    assert [sampler.fraction(e) for e in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    means = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        chosen = list(sampler)
        assert len(chosen) == n and len(set(chosen)) == n  # same length every epoch, no repeats
        candidates = [epoch * sampler.stride + j for j in range(math.ceil(n / sampler.fraction(epoch)))]
        assert set(chosen) <= set(candidates)
        scores = dict(zip(candidates, sampler.scores(candidates).tolist()))
        kept = sorted(scores[i] for i in chosen)
        dropped = [scores[i] for i in candidates if i not in set(chosen)]
        assert not dropped or max(kept) <= min(dropped)  # the easiest of the epoch's candidates
        means.append(sum(kept) / n)
    assert means[0] < means[1] < means[2] and means[3] > means[0]
    # resumable: the order depends on (seed, epoch) only; a start position skips into it
    again = CurriculumSampler(dataset, seed=0, measure=measure, start_fraction=0.25, epochs=3, scale=2)
    again.set_epoch(1, start=4)
    sampler.set_epoch(1)
    assert list(again) == list(sampler)[4:]
    # two ranks split the same order
    ranks = [CurriculumSampler(dataset, seed=0, measure=measure, start_fraction=0.25, epochs=3, scale=2,
                               rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(1)
    assert sorted(list(ranks[0]) + list(ranks[1])) == sorted(list(sampler))


def test_curriculum_run_from_the_cli(tiny_photos, tmp_path):
    config = _write(tmp_path / "c.yaml", {"curriculum": {"measure": "gradient", "start_fraction": 0.5, "epochs": 1}})
    assert main(_argv(tiny_photos, tmp_path / "run", config, epochs=2)) == 0
    vals = [line for line in (tmp_path / "run" / "train.log").read_text().splitlines() if "val_psnr_y" in line]
    assert "curriculum_fraction 0.500" in vals[0] and "curriculum_fraction 1.000" in vals[1]


@pytest.mark.slow
def test_compile_trains(tiny_photos, tmp_path):
    """torch.compile on CPU: about 45 s on the 2-core machine (C++ code generation), hence slow."""
    config = _write(tmp_path / "c.yaml", {})
    assert main(_argv(tiny_photos, tmp_path / "run", config, "--compile", epochs=1)) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["compile"] is True
