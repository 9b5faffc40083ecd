"""Overhead of srlab's trainer against a minimal PyTorch loop: iterations per second and data wait.

Usage: python bench/bench_train.py [--model rdsr_s] [--scale 4] [--batch 16] [--patch 96] [--iters 20]
                                   [--rounds 6] [--steps 30] [--threads 1] [--workers 1]

Two measurements, each interleaving srlab and the plain loop so that load from other jobs on a shared
machine falls on both alike:

1. One step on one batch held in memory (no data loading): srlab's training step
   (:func:`srlab.train.steps.train_step`: the weighted objective, the finite-loss check, the
   optimiser step) plus what the trainer's loop does with its result (the terms and the loss as
   floats), against ``opt.zero_grad(); l1(model(lr), hr).backward(); opt.step()`` on a copy of the
   same model: median of ``--steps`` steps each (half of them with the plain step first, half second,
   as the order within a round shifts the medians a little). The least noisy view of the per-iteration
   overhead.
2. Whole runs, the data loader included: both train the same model (default rdsr_s x4) with Adam and
   L1 on the same patches (srlab's PatchDataset: random aligned crops, flips, rotations; a DataLoader
   with ``--workers`` processes) of a temporary folder of scikit-image photos, at the same batch and
   patch size, for ``--iters`` iterations:

- ``srlab train``: the library trainer (:func:`srlab.train.trainer.train`, the function the command
  calls), one epoch, validated (on one small image) at its middle and its end. Its speed is the one it
  logs in ``train.log`` for the second half (``it/s``: iterations over the training loop's time, from
  asking the loader for a batch to the end of the step, validation and checkpoints left out) with its
  ``data_wait`` (the share of that time spent waiting for a batch). The second half is the steady
  state: the first holds the loader worker's start (~0.1 s here), paid once per epoch.
- ``plain loop``: ``for lr, hr in loader: opt.zero_grad(); l1(model(lr), hr).backward(); opt.step()``,
  timed the same way over its second half (the time inside ``next`` is its data wait).

``wall`` is the whole call, model building, data loading, validations and checkpoints included (the
fixed costs; the first trainer run also pays imports).

The runs alternate (trainer, plain, plain, trainer, ...); the table gives the median of ``--rounds``
runs each and the ratio of the medians (target: trainer >= 0.95x the plain loop, data wait <= 5% with
>= 1 worker). Timings on a shared machine are noisy: read the ratios, and rerun when the runs' spreads
overlap widely.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data as photos
from torch.utils.data import DataLoader

from machine import cpu_model, median_ms  # bench/machine.py: scripts run as python bench/<name>.py
from srlab.data.datasets import PatchDataset, discover_pairs
from srlab.models.registry import build_model
from srlab.report.training_curves import read_train_log
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.schedule import learning_rate
from srlab.train.stages import stage_at
from srlab.train.state import RunState, enter_stage
from srlab.train.steps import train_step
from srlab.train.trainer import train

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "coins",
          "cat")


def make_data(root: Path) -> tuple[Path, Path]:
    """train/: 8 photos at 256x192; val/: one at 64x48 (validation is not what is measured)."""
    train_dir, val_dir = root / "train", root / "val"
    train_dir.mkdir()
    val_dir.mkdir()
    for name in PHOTOS:
        image = Image.fromarray(getattr(photos, name)()).convert("RGB")
        image.resize((256, 192), Image.BICUBIC).save(train_dir / f"{name}.png")
    Image.fromarray(photos.astronaut()).resize((64, 48), Image.BICUBIC).save(val_dir / "astronaut.png")
    return train_dir, val_dir


def config_for(args: argparse.Namespace, train_dir: Path, val_dir: Path, out: Path) -> TrainConfig:
    config = TrainConfig(scale=args.scale, epochs=1, out=str(out), seed=0, device="cpu")
    config.model.name = args.model
    config.data.train_dir, config.data.val_dir = str(train_dir), str(val_dir)
    config.data.batch_size, config.data.patch_size, config.data.num_workers = args.batch, args.patch, args.workers
    # One epoch of exactly --iters batches, validated at its middle (and end).
    config.data.repeat = -(-args.iters * args.batch // len(PHOTOS))
    config.val_every_iters = args.iters // 2
    return config


def run_trainer(config: TrainConfig) -> dict[str, float]:
    start = time.perf_counter()
    result = train(config, progress=False)
    wall = time.perf_counter() - start
    record = read_train_log(Path(config.out) / "train.log")[-1]  # the second half
    return {"it/s": record.iters_per_s, "data wait": record.data_wait, "wall": wall, "iters": result.iterations}


def run_plain(config: TrainConfig) -> dict[str, float]:
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = build_model(config.model.name, scale=config.scale, args=config.model.args)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr, betas=config.optim.betas)
    pairs = discover_pairs(config.data.train_dir, config.scale).pairs
    dataset = PatchDataset(pairs, scale=config.scale, patch_size=config.data.patch_size,
                           repeat=config.data.repeat, seed=config.seed)
    loader = DataLoader(dataset, batch_size=config.data.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.data.num_workers)
    model.train()
    times = []  # (waiting for the batch, the rest of the step) per iteration
    asked = time.perf_counter()
    for lr, hr in loader:
        fetched = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(model(lr), hr).backward()
        optimizer.step()
        times.append((fetched - asked, time.perf_counter() - fetched))
        asked = time.perf_counter()
    half = times[config.val_every_iters:]
    waited, total = sum(w for w, _ in half), sum(w + s for w, s in half)
    return {"it/s": len(half) / total, "data wait": waited / total, "wall": time.perf_counter() - start,
            "iters": len(times)}


def time_steps(config: TrainConfig, steps: int) -> dict[str, float]:
    """Median ms of srlab's step and of the plain step on one in-memory batch (see the docstring, 1.)."""
    torch.manual_seed(config.seed)
    model = build_model(config.model.name, scale=config.scale, args=config.model.args)
    plain_model = copy.deepcopy(model)
    run = RunState(model, None, rank=0, device=torch.device("cpu"))
    enter_stage(run, stage_at(config, 0), config, Dist(), restoring=False)
    run.net.train()
    plain_model.train()
    optimizer = torch.optim.Adam(plain_model.parameters(), lr=config.optim.lr, betas=config.optim.betas)
    lr_size = config.data.patch_size // config.scale
    lr = torch.rand(config.data.batch_size, 3, lr_size, lr_size)
    hr = torch.rand(config.data.batch_size, 3, config.data.patch_size, config.data.patch_size)

    def srlab_step() -> None:
        rate = learning_rate(config, run.iteration, 1000)
        loss, terms = train_step(run, lr, hr, config=config, dist=Dist(), lr=rate, d_lr=rate)
        _ = ({key: float(value) for key, value in terms.items()}, loss.item())
        run.iteration += 1

    def plain_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(plain_model(lr), hr).backward()
        optimizer.step()

    first = median_ms({"srlab": srlab_step, "plain": plain_step}, runs=steps // 2, warmup=2)
    second = median_ms({"plain": plain_step, "srlab": srlab_step}, runs=steps - steps // 2, warmup=0)
    return {name: (first[name] + second[name]) / 2 for name in first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rdsr_s")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96, help="HR patch side")
    parser.add_argument("--iters", type=int, default=20, help="iterations per whole run")
    parser.add_argument("--rounds", type=int, default=6, help="whole runs of each (median)")
    parser.add_argument("--steps", type=int, default=30, help="timed in-memory steps of each (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a busy 2-core machine 2 threads run ~10x slower)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} torch thread(s), "
          f"{args.workers} loader worker(s), load average {os.getloadavg()[0]:.1f} (shared machine: noisy)")
    print(f"{args.model} x{args.scale}, batch {args.batch}, HR patch {args.patch}\n")
    with tempfile.TemporaryDirectory() as tmp:
        step_ms = time_steps(config_for(args, Path(tmp), Path(tmp), Path(tmp) / "run"), args.steps)
    print(f"1. one step on an in-memory batch, median of {args.steps} interleaved steps each:")
    print(f"   srlab step {step_ms['srlab']:.1f} ms, plain step {step_ms['plain']:.1f} ms: "
          f"srlab / plain {step_ms['plain'] / step_ms['srlab']:.3f}x steps per second\n")
    print(f"2. whole runs of {args.iters} iterations with the data loader (speed of the second half), "
          f"median of {args.rounds} interleaved runs each:")
    results: dict[str, list[dict[str, float]]] = {"srlab train": [], "plain loop": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_dir, val_dir = make_data(root)
        runners = {"srlab train": run_trainer, "plain loop": run_plain}
        for round_ in range(args.rounds):
            order = list(runners) if round_ % 2 == 0 else list(reversed(runners))
            for name in order:
                config = config_for(args, train_dir, val_dir, root / f"run{round_}_{name.split()[0]}")
                results[name].append(runners[name](config))

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"   {'':<13}{'it/s':>7}{'data wait':>11}{'wall s':>8}   it/s of each run")
    for name, runs in results.items():
        spread = " ".join(f"{r['it/s']:.2f}" for r in runs)
        print(f"   {name:<13}{median(name, 'it/s'):>7.2f}{100 * median(name, 'data wait'):>10.1f}%"
              f"{median(name, 'wall'):>8.1f}   {spread}")
    ratio = median("srlab train", "it/s") / median("plain loop", "it/s")
    print(f"   trainer / plain: {ratio:.3f}x iterations per second (target >= 0.95); "
          f"trainer data wait {100 * median('srlab train', 'data wait'):.1f}% (target <= 5%)")
    assert all(r["iters"] == args.iters for runs in results.values() for r in runs), "unequal run lengths"


if __name__ == "__main__":
    main()
