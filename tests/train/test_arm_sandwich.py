"""ARM supernet training: the sandwich rule (arm_sandwich) and the official one-width rule (arm_sampled)."""

import os
import random
import subprocess
import sys
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import srlab
from srlab.cli.main import main
from srlab.errors import SrlabError
from srlab.losses import build_weighted_objective
from srlab.train.arm_sampled_step import arm_sampled_step, sampling_weights
from srlab.train.arm_sandwich_step import arm_sandwich_step, iteration_rng, sandwich_widths
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.stages import TrainNet
from srlab.train.state import RunState
from srlab.train.steps import step_names
from srlab.train.trainer import train


def _run(model: torch.nn.Module) -> RunState:
    """A run state with plain SGD (lr set by the step), so an update is exactly -lr x the gradient."""
    run = RunState(model, None, rank=0, device=torch.device("cpu"))
    run.objective = build_weighted_objective([("l1", 1.0, {})])
    run.optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    run.net = TrainNet(model)
    return run


def test_both_steps_are_registered():
    assert {"arm_sandwich", "arm_sampled"} <= set(step_names())


def test_sandwich_takes_the_largest_the_smallest_and_two_random_others():
    assert sandwich_widths((16, 36, 56), random.Random(0)) == [56, 16, 36]
    for seed in range(5):
        widths = sandwich_widths((8, 16, 24, 32, 40, 48), random.Random(seed))
        assert widths[:2] == [48, 8] and len(widths) == 4 and len(set(widths)) == 4
        assert set(widths[2:]) <= {16, 24, 32, 40}


def test_a_sandwich_step_sums_the_gradients_of_every_width():
    torch.manual_seed(0)
    model = srlab.create_model("arm_fsrcnn", scale=4).double()
    lr_batch, hr_batch = torch.rand(2, 3, 6, 6, dtype=torch.float64), torch.rand(2, 3, 24, 24, dtype=torch.float64)
    before = {k: v.clone() for k, v in model.named_parameters()}
    expected = {k: torch.zeros_like(v) for k, v in before.items()}
    for width in model.widths:
        model.zero_grad()
        F.l1_loss(model(lr_batch, width=width), hr_batch).backward()
        for k, p in model.named_parameters():
            expected[k] += p.grad
    losses = [F.l1_loss(model(lr_batch, width=w), hr_batch).item() for w in model.widths]
    loss, terms = arm_sandwich_step(_run(model), lr_batch, hr_batch, config=TrainConfig(), dist=Dist(), lr=0.1, d_lr=0)
    assert loss.item() == pytest.approx(sum(losses), rel=1e-6)  # the objective sees sr.float()
    assert set(terms) == {"l1_w16", "l1_w36", "l1_w56"}
    for k, p in model.named_parameters():
        assert torch.allclose(p.detach(), before[k] - 0.1 * expected[k], atol=1e-6, rtol=0), k
    assert model.active_width is None  # the model is left at full width


def test_the_official_rule_draws_one_width_by_its_cost_squared():
    model = srlab.create_model("arm_fsrcnn", scale=4)
    weights = sampling_weights(model)
    # The official cost_list (FLOPs on 32x32) [141262852, 304570372, 467877892] = 2 x MACs (+-4).
    assert [round(2 * w**0.5 / 1000) for w in weights] == [141263, 304570, 467878]
    config, run = TrainConfig(seed=3), _run(model)
    drawn = Counter()
    for iteration in range(600):
        run.iteration = iteration
        drawn[iteration_rng(config, run).choices(model.widths, weights=weights)[0]] += 1
    # Probabilities 0.060 / 0.280 / 0.660.
    assert 20 <= drawn[16] <= 60 and 130 <= drawn[36] <= 210 and 350 <= drawn[56] <= 440
    run.iteration = 7
    lr_batch, hr_batch = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 24, 24)
    _, terms = arm_sampled_step(run, lr_batch, hr_batch, config=config, dist=Dist(), lr=1e-3, d_lr=0)
    width = iteration_rng(config, run).choices(model.widths, weights=weights)[0]
    assert list(terms) == [f"l1_w{width}"]


def test_a_model_that_is_not_a_supernet_is_refused():
    run = _run(srlab.create_model("fsrcnn", scale=4))
    batch = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 24, 24)
    for step, name in ((arm_sandwich_step, "arm_sandwich"), (arm_sampled_step, "arm_sampled")):
        with pytest.raises(SrlabError, match=f"step {name} trains a slimmable ARM supernet .* not model 'fsrcnn'"):
            step(run, *batch, config=TrainConfig(), dist=Dist(), lr=1e-3, d_lr=0)


@pytest.mark.parametrize("step", ["arm_sandwich", "arm_sampled"])
def test_training_a_supernet_end_to_end(tiny_photos, tmp_path, step):
    config = TrainConfig(scale=4, epochs=2, out=str(tmp_path / "run"), seed=0, step=step)
    config.model.name = "arm_fsrcnn"
    config.data.train_dir, config.data.val_dir = str(tiny_photos["train"]), str(tiny_photos["val"])
    config.data.patch_size, config.data.batch_size, config.data.repeat = 32, 4, 2
    config.optim.lr = 1e-3
    train(config, progress=False)
    log = (tmp_path / "run" / "train.log").read_text()
    assert ("loss_l1_w16" in log and "loss_l1_w56" in log) if step == "arm_sandwich" else "loss_l1_w" in log
    model = srlab.create_model(checkpoint=tmp_path / "run" / "last.safetensors")
    assert type(model).__name__ == "ArmFSRCNN"
    assert set(load_file(str(tmp_path / "run" / "last.safetensors"))) == set(model.state_dict())


@pytest.mark.slow
def test_two_process_sandwich_training_matches_one_process(tiny_photos, tmp_path):
    """Under torchrun (Gloo) the widths but the last accumulate locally (no_sync) and the last backward
    averages the summed gradients: the weights equal a single process's with the same global batch."""
    def args(out):
        return ["train", "--train_dir", tiny_photos["train"], "--val_dir", tiny_photos["val"], "--scale", "4",
                "--epochs", "1", "--batch_size", "4", "--patch_size", "32", "--model", "arm_fsrcnn", "--lr", "1e-3",
                "--set", "step=arm_sandwich", "--set", "data.repeat=3", "--out", out, "--quiet"]

    assert main([str(a) for a in args(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "srlab",
         *map(str, args(tmp_path / "two"))],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processes 2 (batch 2 each)" in (tmp_path / "two" / "train.log").read_text()
    one = load_file(str(tmp_path / "one" / "last.safetensors"))
    two = load_file(str(tmp_path / "two" / "last.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, args", [("arm_carn", {}), ("arm_srresnet", {"nb": 1})])
def test_a_sandwich_step_trains_every_supernet(name, args):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4, args=args)
    before = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    _, terms = arm_sandwich_step(_run(model), torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32), config=TrainConfig(),
                                 dist=Dist(), lr=1e-3, d_lr=0)
    assert set(terms) == {f"l1_w{w}" for w in model.widths}
    unchanged = [k for k, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[k])]
    assert unchanged == []
