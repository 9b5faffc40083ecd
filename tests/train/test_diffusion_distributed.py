"""``step: diffusion`` under torchrun (two Gloo processes on the CPU): it trains, and the ranks stay in step.

A one-process run with the same global batch is no reference here, unlike supervised training
(tests/train/test_distributed.py): each rank draws the noise levels and noises of its half of the batch
from its own RNG, so the two runs train on different noise. What DDP must guarantee is checked instead:
every rank ends with the same weights, bit for bit, and rank 0 alone writes the run.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from conftest import CONFIGS

# Runs srlab's CLI and then saves this rank's final weights and the noise levels it drew at its first step,
# which the run's own files (written by rank 0 alone) cannot show.
RANK_SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    from safetensors.torch import save_file
    from srlab.cli.main import main
    from srlab.models.sr3 import SR3
    from srlab.train import trainer

    rank, out = os.environ["RANK"], sys.argv[1]
    levels = []
    draw = SR3.draw_training_noise

    def draw_and_keep(self, hr):
        noisy, level, noise = draw(self, hr)
        levels.append(level.clone())
        return noisy, level, noise

    run = trainer._Trainer.run

    def run_and_save(self):
        result = run(self)
        weights = {k: v.contiguous() for k, v in self.run_state.model.state_dict().items()}
        save_file({**weights, "first_levels": levels[0]}, os.path.join(out, f"rank{rank}.safetensors"))
        return result

    SR3.draw_training_noise, trainer._Trainer.run = draw_and_keep, run_and_save
    sys.exit(main(sys.argv[2:]))
""")


@pytest.fixture(scope="module")
def two_process_run(tiny_photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_diffusion")
    (root / "rank.py").write_text(RANK_SCRIPT)
    args = [
        "train", "--config", str(CONFIGS / "sr3_tiny_x4.yaml"), "--train_dir", str(tiny_photos["train"]),
        "--val_dir", str(tiny_photos["val"]), "--epochs", "2", "--batch_size", "4", "--patch_size", "32",
        "--set", "model.args={channels: 8, groups: 4, steps: 2}", "--set", "data.repeat=2",
        "--set", "val_every_iters=2", "--out", str(root / "run"), "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    # --standalone: a local rendezvous on a free port, so parallel test runs do not collide.
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(root / "rank.py"), str(root), *args],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root, done.stdout


@pytest.mark.slow
def test_two_process_diffusion_training_keeps_the_ranks_in_step(two_process_run):
    root, stdout = two_process_run
    assert stdout.count("done: 2 epochs, 4 iterations") == 1  # rank 0 alone reports
    log = (root / "run" / "train.log").read_text()
    assert "processes 2 (batch 2 each)" in log and log.count("val_psnr_y") == 2  # written once, by rank 0
    ranks = [load_file(str(root / f"rank{r}.safetensors")) for r in (0, 1)]
    weights = [{k: v for k, v in rank.items() if k != "first_levels"} for rank in ranks]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the same weights on both ranks
    assert all(torch.isfinite(v).all() for v in weights[0].values())
    state = torch.load(root / "run" / "state.pt", weights_only=True)
    assert state["iteration"] == 4 and len(state["rng"]) == 2  # one RNG state per rank
    assert all(torch.equal(state["model"][k], weights[0][k]) for k in weights[0])  # rank 0's weights are saved


@pytest.mark.slow
def test_the_ranks_draw_different_noise(two_process_run):  # srlab.train.diffusion_step.draw_seed
    root, _ = two_process_run
    first = [load_file(str(root / f"rank{r}.safetensors"))["first_levels"] for r in (0, 1)]
    assert not torch.equal(first[0], first[1])
