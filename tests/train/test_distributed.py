"""Data-parallel training (torchrun, Gloo on CPU) matches a single process with the same global batch."""

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from srlab.cli.main import main
from srlab.data.datasets import EpochSampler
from srlab.errors import SrlabError
from srlab.train.config import TrainConfig
from srlab.train.trainer import train


def _args(tiny_photos, out, *extra):
    return [
        "train", "--train_dir", str(tiny_photos["train"]), "--val_dir", str(tiny_photos["val"]), "--scale", "2",
        "--epochs", "2", "--batch_size", "4", "--patch_size", "24", "--model", "rdsr_s", "--lr", "2e-3",
        "--set", "model.args={channels: 8, num_blocks: 1}", "--set", "data.repeat=3", "--set", "ema_decay=0.9",
        "--set", "val_every_iters=4", "--out", str(out), "--quiet", *extra,
    ]


def test_sampler_shards_one_permutation_across_ranks_and_resumes():
    single = list(EpochSampler(10, seed=3))
    for start in (0, 4):
        shards = []
        for rank in range(2):
            sampler = EpochSampler(10, seed=3, rank=rank, world_size=2)
            sampler.set_epoch(0, start=start)
            shards.append(list(sampler))
            assert len(sampler) == len(shards[-1]) == (10 - start) // 2
        assert not set(shards[0]) & set(shards[1])  # disjoint
        # Step i of rank r holds the samples of the single process's global batch i (batch 2 per rank).
        for i in range(len(shards[0]) // 2):
            ranks = set(shards[0][2 * i:2 * i + 2]) | set(shards[1][2 * i:2 * i + 2])
            assert ranks == set(single[start + 4 * i:start + 4 * i + 4])
    odd = EpochSampler(7, seed=0, rank=1, world_size=2)
    assert len(list(odd)) == len(odd) == 3  # the last sample is dropped so that the ranks stay in step
    with pytest.raises(SrlabError, match="cannot be shared by 4 processes"):
        EpochSampler(3, seed=0, rank=0, world_size=4)


def test_global_batch_must_divide_by_the_processes(tiny_photos, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    config = TrainConfig(out=str(tmp_path / "run"))
    config.data.train_dir, config.data.val_dir, config.data.batch_size = str(tiny_photos["train"]), "v", 4
    with pytest.raises(SrlabError, match="batch_size 4 .* not divisible by the 3 processes"):
        train(config, progress=False)
    monkeypatch.delenv("LOCAL_RANK")
    with pytest.raises(SrlabError, match="incomplete distributed environment .*LOCAL_RANK"):
        train(config, progress=False)


def test_two_process_gloo_training_matches_one_process(tiny_photos, tmp_path):
    """``torchrun --nproc_per_node=2`` with global batch 4 (2 per rank) vs one process with batch 4.

    Both see the same samples at every step (the sampler gives each rank every other sample of the same
    permutation, i.e. half of the single process's batch), start from the same seeded weights, and DDP
    averages the two ranks' gradients. Each rank's L1 loss is the mean over its half, so the averaged
    gradient equals the gradient of the mean over the whole batch in exact arithmetic; in floating point
    the sums are taken in another order (two half-batch reductions, then the all-reduce), so the weights
    agree to rounding (~1e-7 here), not bit for bit. Validation scores are gathered from both ranks and
    averaged in image order, so for equal weights they would equal the single-process mean exactly.
    """
    assert main(_args(tiny_photos, tmp_path / "one")) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    # --standalone: a local rendezvous on a free port, so parallel test runs do not collide.
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "srlab",
         *_args(tiny_photos, tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: 2 epochs, 6 iterations") == 1  # rank 0 alone reports
    one = load_file(str(tmp_path / "one" / "last.safetensors"))
    two = load_file(str(tmp_path / "two" / "last.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6)
    state_one = torch.load(tmp_path / "one" / "state.pt", weights_only=True)
    state_two = torch.load(tmp_path / "two" / "state.pt", weights_only=True)
    assert state_two["iteration"] == state_one["iteration"] == 6
    for key in state_one["model"]:
        torch.testing.assert_close(state_two["model"][key], state_one["model"][key], rtol=0, atol=1e-6)
    assert len(state_two["rng"]) == 2  # one RNG state per rank
    assert abs(state_two["last_psnr"] - state_one["last_psnr"]) < 1e-3
    log = (tmp_path / "two" / "train.log").read_text()
    assert "processes 2 (batch 2 each)" in log and log.count("val_psnr_y") == 2  # written once, by rank 0
