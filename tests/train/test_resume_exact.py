"""Resuming restores everything: a killed run, or a run trained in parts, ends bit-identical to one run."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

from srlab.cli.main import main
from srlab.train.state import rng_state, set_rng_state

TOTAL_ITERS = 36  # 12 epochs of 3 batches


def _args(tiny_photos, out, *extra, epochs=12):
    return [
        "train", "--train_dir", str(tiny_photos["train"]), "--val_dir", str(tiny_photos["val"]), "--scale", "2",
        "--epochs", str(epochs), "--batch_size", "4", "--patch_size", "24", "--model", "rdsr_s", "--lr", "2e-3",
        "--set", "model.args={channels: 8, num_blocks: 1}", "--set", "data.repeat=3", "--set", "ema_decay=0.9",
        "--deterministic", "--out", str(out), "--quiet", *extra,
    ]


def _assert_same_run(a, b):
    """Same weights, EMA, optimiser moments, position and RNG states, bit for bit."""
    state_a = torch.load(a / "state.pt", weights_only=True)
    state_b = torch.load(b / "state.pt", weights_only=True)
    assert state_a["iteration"] == state_b["iteration"] and state_a["epoch"] == state_b["epoch"]
    for part in ("model", "ema"):
        assert all(torch.equal(state_a[part][k], state_b[part][k]) for k in state_a[part]), part
    moments_a, moments_b = state_a["optimizer"]["state"], state_b["optimizer"]["state"]
    assert all(torch.equal(moments_a[i][k], moments_b[i][k]) for i in moments_a for k in moments_a[i])
    assert torch.equal(state_a["rng"][0]["torch"], state_b["rng"][0]["torch"])
    last_a, last_b = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)


def test_sigkilled_run_resumes_bit_identical(tiny_photos, tmp_path):
    """SIGKILL leaves no chance to save anything: the resume starts from the last periodic checkpoint
    (checkpoint_every_iters=1 here), and must still end with the uninterrupted run's weights."""
    extra = ("--set", "checkpoint_every_iters=1", "--set", "val_every=4")
    killed = tmp_path / "killed"
    # One intra-op thread, as the in-process runs below (conftest): CPU kernels are deterministic for a
    # given thread count.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "srlab", *_args(tiny_photos, killed, *extra)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (killed / "state.pt").exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    stopped_at = torch.load(killed / "state.pt", weights_only=True)["iteration"]
    assert 1 <= stopped_at < TOTAL_ITERS  # killed mid-run

    assert main(_args(tiny_photos, tmp_path / "whole", *extra)) == 0
    # The resumed run takes its settings from the run directory's config.yaml.
    assert main(["train", "--out", str(killed), "--resume", "--quiet"]) == 0
    assert torch.load(killed / "state.pt", weights_only=True)["iteration"] == TOTAL_ITERS
    _assert_same_run(tmp_path / "whole", killed)


def test_epochs_in_two_parts_equal_one_run(tiny_photos, tmp_path):
    """`--epochs 1` then `--epochs 2 --resume` equals one `--epochs 2` run.

    The cosine learning rate depends on the run's length, so the two parts follow the single run's
    curve only if the first part already knows the final length: schedule.total_epochs=2 (a pure
    function of the iteration, recomputed on resume, so there is no scheduler state to restore). Without
    it the first part decays to the floor within its one epoch and the runs differ (checked below)."""
    whole, parts, stretched = tmp_path / "whole", tmp_path / "parts", tmp_path / "stretched"
    assert main(_args(tiny_photos, whole, epochs=2)) == 0
    assert main(_args(tiny_photos, parts, "--set", "schedule.total_epochs=2", epochs=1)) == 0
    assert main(["train", "--out", str(parts), "--resume", "--epochs", "2", "--quiet"]) == 0
    _assert_same_run(whole, parts)

    assert main(_args(tiny_photos, stretched, epochs=1)) == 0
    assert main(["train", "--out", str(stretched), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert "the cosine schedule now spans 2 epochs (was 1)" in (stretched / "train.log").read_text()
    a, b = load_file(str(whole / "last.safetensors")), load_file(str(stretched / "last.safetensors"))
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    torch.save({"rng": rng_state(torch.device("cpu"))}, tmp_path / "state.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), [random.random() for _ in range(3)])
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(torch.load(tmp_path / "state.pt", weights_only=True)["rng"], torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.standard_normal(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
