"""Overhead of srlab's trainer against a minimal PyTorch loop: iterations per second and data wait.

Usage: python bench/bench_train.py [--model rdsr_s] [--scale 4] [--batch 16] [--patch 96] [--iters 40]
                                   [--rounds 3] [--threads N] [--workers 1]

Both train the same model (default rdsr_s x4) with Adam and L1 on the same patches (srlab's
PatchDataset: random aligned crops, flips, rotations; a DataLoader with ``--workers`` processes) of a
temporary folder of scikit-image photos, at the same batch and patch size, for ``--iters`` iterations:

- ``srlab train``: the library trainer (:func:`srlab.train.trainer.train`, the function the command
  calls), one epoch, validated once at its end on one small image. Its speed is the one it logs in
  ``train.log`` (``it/s``: iterations over the training loop's time, from asking the loader for the
  first batch to the end of the last step, validation and checkpoints left out) and its ``data_wait``
  (the share of that time spent waiting for a batch). ``wall`` is the whole call, model building,
  data loading, validation and the checkpoint included, for the fixed costs.
- ``plain loop``: ``for lr, hr in loader: opt.zero_grad(); l1(model(lr), hr).backward(); opt.step()``,
  timed the same way (from the first ``next`` to the end of the last step; the time inside ``next``
  is its data wait).

The runs alternate (trainer, plain, plain, trainer, ...) so that load from other jobs on a shared
machine falls on both alike; the table gives the median of ``--rounds`` runs each and the ratio of the
medians (target: trainer >= 0.95x the plain loop, data wait <= 5% with >= 1 worker). Timings on a shared
machine are noisy: read the ratio, and rerun when the two columns' spreads overlap widely.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data as photos
from torch.utils.data import DataLoader

from machine import cpu_model  # bench/machine.py: scripts run as python bench/<name>.py
from srlab.data.datasets import PatchDataset, discover_pairs
from srlab.models.registry import build_model
from srlab.report.training_curves import read_train_log
from srlab.train.config import TrainConfig
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
    # One epoch of exactly --iters batches.
    config.data.repeat = -(-args.iters * args.batch // len(PHOTOS))
    return config


def run_trainer(config: TrainConfig) -> dict[str, float]:
    start = time.perf_counter()
    result = train(config, progress=False)
    wall = time.perf_counter() - start
    record = read_train_log(Path(config.out) / "train.log")[-1]
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
    waited, iterations = 0.0, 0
    loop_start = end = time.perf_counter()
    batches = iter(loader)
    while True:
        asked = time.perf_counter()
        try:
            lr, hr = next(batches)
        except StopIteration:
            break
        waited += time.perf_counter() - asked
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(model(lr), hr)
        loss.backward()
        optimizer.step()
        iterations += 1
        end = time.perf_counter()
    loop = end - loop_start
    return {"it/s": iterations / loop, "data wait": waited / loop, "wall": time.perf_counter() - start,
            "iters": iterations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rdsr_s")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96, help="HR patch side")
    parser.add_argument("--iters", type=int, default=40, help="iterations per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a busy 2-core machine 2 threads run ~10x slower)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} torch thread(s), "
          f"{args.workers} loader worker(s), load average {os.getloadavg()[0]:.1f} (shared machine: noisy)")
    print(f"{args.model} x{args.scale}, batch {args.batch}, HR patch {args.patch}, {args.iters} iterations per run, "
          f"median of {args.rounds} interleaved runs each\n")
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

    print(f"{'':<13}{'it/s (median)':>15}{'it/s (runs)':>24}{'data wait':>11}{'wall s':>9}")
    for name, runs in results.items():
        spread = " ".join(f"{r['it/s']:.2f}" for r in runs)
        print(f"{name:<13}{median(name, 'it/s'):>15.2f}{spread:>24}{100 * median(name, 'data wait'):>10.1f}%"
              f"{median(name, 'wall'):>9.1f}")
    ratio = median("srlab train", "it/s") / median("plain loop", "it/s")
    print(f"\ntrainer / plain: {ratio:.3f}x iterations per second (target >= 0.95); "
          f"trainer data wait {100 * median('srlab train', 'data wait'):.1f}% (target <= 5%)")
    assert all(r["iters"] == args.iters for runs in results.values() for r in runs), "unequal run lengths"


if __name__ == "__main__":
    main()
