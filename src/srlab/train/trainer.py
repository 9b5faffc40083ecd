"""The training loop: one readable function, configured by :class:`~srlab.train.config.TrainConfig`.

A run directory holds everything a run produces:

- ``config.yaml``: the resolved configuration;
- ``state.pt``: what resuming needs (weights, EMA, optimiser, position, best score), a plain
  tensor/number dict loaded with ``weights_only=True``;
- ``last.safetensors`` / ``best.safetensors``: the weights evaluated at the last and the best
  validation, with the model's name, hyper-parameters and scale in their metadata;
- ``train.log``: one line per validation.

Every file is written atomically. The order of training samples and their crops depends only on the
seed, the epoch and the position in the epoch, so a resumed run continues exactly where its last
checkpoint left it, whether that was at the end of an epoch or in its middle.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from srlab.data.datasets import EpochSampler, PatchDataset, discover_pairs, load_pair
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.evaluate import evaluate_images
from srlab.inference.upscale import resolve_device
from srlab.losses import build_pixel_loss
from srlab.models.registry import build_model, count_parameters
from srlab.models.weights import load_matching, read_checkpoint, save_weights
from srlab.train.config import TrainConfig, apply_overrides, to_dict, validate

STATE_FILE = "state.pt"


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    iterations: int
    last_psnr: float
    last_ssim: float
    best_psnr: float
    best_epoch: int


def learning_rate(config: TrainConfig, iteration: int, iters_per_epoch: int) -> float:
    """The learning rate for an iteration: a pure function, so resuming needs no scheduler state."""
    base, schedule = config.optim.lr, config.schedule
    if schedule.warmup_iters and iteration < schedule.warmup_iters:
        return base * (iteration + 1) / schedule.warmup_iters
    if schedule.kind == "constant":
        return base
    if schedule.kind == "step":
        return base * schedule.gamma ** (iteration // (schedule.step_epochs * iters_per_epoch))
    total = max(1, config.epochs * iters_per_epoch - schedule.warmup_iters)
    progress = min(1.0, (iteration - schedule.warmup_iters) / total)
    floor = base * schedule.min_lr_ratio
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def save_config(config: TrainConfig, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(_plain(to_dict(config)), sort_keys=False))


def _plain(value):
    """YAML-safe copy: tuples become lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Run:
    """The mutable state of a run; its fields are exactly what ``state.pt`` stores."""

    def __init__(self, model: nn.Module, ema: nn.Module | None, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.ema, self.optimizer = model, ema, optimizer
        self.epoch = 0  # completed epochs
        self.batches_in_epoch = 0  # batches done in the current epoch
        self.iteration = 0
        self.best_psnr = -math.inf
        self.best_epoch = 0
        self.last_scores = {"psnr_y": math.nan, "ssim_y": math.nan}
        self.validated_at = -1  # the iteration of the last validation

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "iteration": self.iteration,
            "best_psnr": self.best_psnr,
            "best_epoch": self.best_epoch,
            "last_psnr": self.last_scores["psnr_y"],
            "last_ssim": self.last_scores["ssim_y"],
            "validated_at": self.validated_at,
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state["ema"] is None:
                raise SrlabError("the run was trained without EMA: keep ema_decay at 0 to resume it")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.batches_in_epoch = state["epoch"], state["batches_in_epoch"]
        self.iteration, self.best_psnr, self.best_epoch = state["iteration"], state["best_psnr"], state["best_epoch"]
        self.last_scores = {"psnr_y": state["last_psnr"], "ssim_y": state["last_ssim"]}
        self.validated_at = state["validated_at"]

    @property
    def evaluated(self) -> nn.Module:
        return self.model if self.ema is None else self.ema


def load_run_config(run_dir: Path) -> dict:
    path = run_dir / "config.yaml"
    if not (run_dir / STATE_FILE).is_file() or not path.is_file():
        raise SrlabError(f"nothing to resume in '{run_dir}': it has no {STATE_FILE} and config.yaml (drop --resume)")
    return yaml.safe_load(path.read_text())


def _check_resumable(config: TrainConfig, run_dir: Path) -> None:
    """A resumed run keeps its architecture and scale: its weights fit no other."""
    saved = TrainConfig()
    apply_overrides(saved, load_run_config(run_dir))
    for key, old, new in (
        ("scale", saved.scale, config.scale),
        ("model.name", saved.model.name, config.model.name),
        ("model.args", saved.model.args, config.model.args),
    ):
        if old != new:
            raise SrlabError(
                f"cannot resume '{run_dir}' with {key} {new!r}: the run was trained with {key} {old!r} "
                "(drop that setting, or start a new run with another --out)"
            )


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    validate(config)
    # Absolute paths in the saved config, so that a run resumes from any working directory.
    for section, key in ((config.data, "train_dir"), (config.data, "val_dir"), (config, "out"), (config, "init_from")):
        if getattr(section, key):
            setattr(section, key, str(Path(getattr(section, key)).expanduser().absolute()))
    run_dir = Path(config.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise SrlabError(f"--out '{run_dir}' is a file: give a folder for the run")
    if resume:
        _check_resumable(config, run_dir)
    elif (run_dir / STATE_FILE).exists():
        raise SrlabError(
            f"run directory '{run_dir}' already holds a run: pass --resume to continue it, or choose another --out"
        )
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    train_folder = discover_pairs(config.data.train_dir, config.scale)
    val_folder = discover_pairs(config.data.val_dir, config.scale)
    train_set = PatchDataset(
        train_folder.pairs, scale=config.scale, patch_size=config.data.patch_size,
        repeat=config.data.repeat, seed=config.seed,
    )
    val_pairs = val_folder.pairs[: config.data.val_max_images or None]
    val_images = [(p.name, *load_pair(p, config.scale)) for p in val_pairs]
    sampler = EpochSampler(len(train_set), seed=config.seed)
    loader = DataLoader(
        train_set, batch_size=config.data.batch_size, sampler=sampler, num_workers=config.data.num_workers,
        drop_last=len(train_set) >= config.data.batch_size, pin_memory=device.type == "cuda",
    )
    iters_per_epoch = len(loader)

    model = build_model(config.model.name, scale=config.scale, args=config.model.args)
    warm_start = None
    if config.init_from and not resume:
        warm_start = load_matching(model, read_checkpoint(config.init_from))
    model = model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.optim.lr, betas=config.optim.betas, weight_decay=config.optim.weight_decay
    )
    loss_fn = build_pixel_loss(config.loss)
    run = _Run(model, ema, optimizer)
    if resume:
        run.restore(torch.load(run_dir / STATE_FILE, map_location=device, weights_only=True))

    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    log = _Log(run_dir / "train.log", echo=progress)
    if not resume:
        log.write(
            f"model {config.model.name} x{config.scale} params {count_parameters(model)} "
            f"train {len(train_folder.pairs)} images ({train_folder.layout}) val {len(val_images)} images "
            f"iters/epoch {iters_per_epoch} device {device}"
        )
        if warm_start is not None:
            loaded, skipped = warm_start
            log.write(
                f"warm start from {config.init_from}: loaded {len(loaded)} tensors, "
                f"kept the fresh init of {len(skipped)}: {', '.join(skipped) or 'none'}"
            )
    elif run.epoch >= config.epochs:
        log.write(f"run already trained for {run.epoch} epochs; raise --epochs to train further")

    def validate_and_save() -> None:
        run.evaluated.eval()
        scores, _ = evaluate_images(run.evaluated, val_images)
        run.evaluated.train()
        run.last_scores = scores
        run.validated_at = run.iteration
        improved = scores["psnr_y"] > run.best_psnr
        if improved:
            run.best_psnr, run.best_epoch = scores["psnr_y"], run.epoch
        _save(run, run_dir, improved)
        log.write(
            f"epoch {run.epoch} iter {run.iteration} lr {learning_rate(config, run.iteration, iters_per_epoch):.3e} "
            f"val_psnr_y {scores['psnr_y']:.4f} val_ssim_y {scores['ssim_y']:.4f} "
            f"best_psnr_y {run.best_psnr:.4f} (epoch {run.best_epoch}) time {time.perf_counter() - started:.1f}s"
        )

    started = time.perf_counter()
    model.train()
    while run.epoch < config.epochs:
        skip = run.batches_in_epoch  # > 0 when resuming in the middle of an epoch
        sampler.set_epoch(run.epoch, start=skip * config.data.batch_size)
        bar = tqdm(total=iters_per_epoch, initial=skip, disable=not progress, unit="it", dynamic_ncols=True,
                   leave=False, desc=f"epoch {run.epoch + 1}/{config.epochs}")
        for index, (lr_batch, hr_batch) in enumerate(loader, start=skip):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, run.iteration, iters_per_epoch)
            lr_batch = lr_batch.to(device, non_blocking=True)
            hr_batch = hr_batch.to(device, non_blocking=True)
            loss = loss_fn(model(lr_batch), hr_batch)
            if not torch.isfinite(loss):
                raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            if ema is not None:
                _update_ema(ema, model, config.ema_decay)
            run.iteration += 1
            run.batches_in_epoch = index + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            if config.val_every_iters and run.iteration % config.val_every_iters == 0:
                validate_and_save()
        bar.close()
        run.epoch += 1
        run.batches_in_epoch = 0
        if not config.val_every_iters and (run.epoch % config.val_every == 0 or run.epoch == config.epochs):
            validate_and_save()
    if run.validated_at != run.iteration:
        validate_and_save()
    return TrainResult(
        run_dir, run.epoch, run.iteration, run.last_scores["psnr_y"], run.last_scores["ssim_y"],
        run.best_psnr, run.best_epoch,
    )


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters()):
        ema_p.lerp_(p, 1 - decay)
    for ema_b, b in zip(ema.buffers(), model.buffers()):
        ema_b.copy_(b)


def _save(run: _Run, run_dir: Path, improved: bool) -> None:
    # The state goes first: if the process dies between the writes, the weights files are at most one
    # validation behind the state, never ahead of it.
    with atomic_path(run_dir / STATE_FILE) as tmp:
        torch.save(run.state(), tmp)
    metadata = {
        "srlab.epoch": str(run.epoch), "srlab.iteration": str(run.iteration),
        "srlab.val_psnr_y": f"{run.last_scores['psnr_y']:.4f}",
    }
    save_weights(run_dir / "last.safetensors", run.evaluated, metadata=metadata)
    if improved:
        save_weights(run_dir / "best.safetensors", run.evaluated, metadata=metadata)


class _Log:
    def __init__(self, path: Path, *, echo: bool) -> None:
        self.path, self.echo = path, echo

    def write(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a") as f:
            f.write(f"{stamp} {line}\n")
            f.flush()
        if self.echo:
            tqdm.write(line)
