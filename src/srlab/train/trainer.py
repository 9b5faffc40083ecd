"""The training loop: one readable function, configured by :class:`~srlab.train.config.TrainConfig`.

A run directory holds everything a run produces:

- ``config.yaml``: the resolved configuration;
- ``state.pt``: what resuming needs (weights, EMA, optimiser, position in the data, RNG states, best
  score, the stage and its extra modules: the discriminators of a ``gan`` loss and their optimiser,
  the UDL uncertainty head and estimator, the fp16 gradient scaler), a plain tensor/number dict loaded
  with ``weights_only=True``. The learning-rate schedule has no state: it is a pure function of the
  iteration (:func:`learning_rate`), and so is the stage (:func:`srlab.train.stages.stage_at`);
- ``last.safetensors`` / ``best.safetensors``: the weights evaluated at the last and the best
  validation, with the model's name, hyper-parameters and scale in their metadata;
- ``train.log``: one line per validation.

Every file is written atomically. The order of training samples and their crops depends only on the
seed, the epoch and the position in the epoch, so a resumed run continues exactly where its last
checkpoint left it, whether that was at the end of an epoch or in its middle.

One training step: the model's forward (under autocast with ``amp``), the weighted objective
(:class:`srlab.losses.WeightedObjective`) on ``LossInputs(sr, hr, lr, scale, uncertainty)``, the
generator's step; then, with a ``gan`` term, the discriminator's step on its own optimiser
(``d_optim``), on the same detached ``sr``; under torchrun the discriminator's gradients are
averaged over the ranks. Stages, the UDL head and the curriculum are in :mod:`srlab.train.stages`.

Under ``torchrun`` the same loop runs data-parallel (:mod:`srlab.train.distributed`): every process
trains a DistributedDataParallel copy on its share of each global batch, validates its share of the
images, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from srlab.data.datasets import EpochSampler, PatchDataset, discover_pairs, load_pair
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.evaluate import evaluate_images
from srlab.inference.upscale import resolve_device
from srlab.losses import LossInputs, WeightedObjective, build_weighted_objective
from srlab.metrics.protocol import MeanMeter
from srlab.models.registry import build_model, count_parameters
from srlab.models.weights import load_matching, read_checkpoint, save_weights
from srlab.train import distributed
from srlab.train.config import TrainConfig, apply_overrides, to_dict, validate
from srlab.train.distributed import Dist
from srlab.train.stages import (
    CurriculumSampler, Stage, TrainNet, UncertaintyHead, check_stages, stage_at, stages,
)

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
    """The learning rate for an iteration: a pure function, so resuming needs no scheduler state.

    In a staged run the schedule restarts at every stage, from the stage's base rate."""
    stage = stage_at(config, iteration // iters_per_epoch)
    base, schedule = stage.lr, config.schedule
    iteration -= stage.start_epoch * iters_per_epoch
    if schedule.warmup_iters and iteration < schedule.warmup_iters:
        return base * (iteration + 1) / schedule.warmup_iters
    if schedule.kind == "constant":
        return base
    if schedule.kind == "step":
        return base * schedule.gamma ** (iteration // (schedule.step_epochs * iters_per_epoch))
    total = max(1, stage.epochs * iters_per_epoch - schedule.warmup_iters)
    progress = min(1.0, (iteration - schedule.warmup_iters) / total)
    floor = base * schedule.min_lr_ratio
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def schedule_epochs(config: TrainConfig) -> int:
    """The number of epochs the cosine curve spans."""
    return config.schedule.total_epochs or config.epochs


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

    def __init__(
        self, model: nn.Module, ema: nn.Module | None, optimizer: torch.optim.Optimizer, *, rank: int = 0,
        device: torch.device = torch.device("cpu"),
    ) -> None:
        self.model, self.ema, self.optimizer = model, ema, optimizer
        self.rank, self.device = rank, device
        self.epoch = 0  # completed epochs
        self.batches_in_epoch = 0  # batches done in the current epoch
        self.iteration = 0
        self.best_psnr = -math.inf
        self.best_epoch = 0
        self.last_scores = {"psnr_y": math.nan, "ssim_y": math.nan}
        self.validated_at = -1  # the iteration of the last validation
        # The stage's pieces (see _StageRunner): its index, objective, UDL head / estimator, the
        # discriminators' optimiser and the fp16 gradient scaler.
        self.stage = 0
        self.objective: WeightedObjective | None = None
        self.head: UncertaintyHead | None = None
        self.estimator: TrainNet | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None

    def discriminators(self) -> dict[str, nn.Module]:
        if self.objective is None:
            return {}
        return {key: m.discriminator for key, m in self.objective.adversarial_objectives().items()}

    def state(self, rng: list[dict] | None = None) -> dict:
        """``rng``: every rank's RNG states (:func:`_rng_state`), in rank order."""
        return {
            "rng": rng,
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
            "stage": self.stage,
            "head": None if self.head is None else self.head.state_dict(),
            "estimator": None if self.estimator is None else self.estimator.state_dict(),
            "discriminators": {key: d.state_dict() for key, d in self.discriminators().items()},
            "d_optimizer": None if self.d_optimizer is None else self.d_optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state["ema"] is None:
                raise SrlabError("the run was trained without EMA: keep ema_decay at 0 to resume it")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, module in (("head", self.head), ("estimator", self.estimator)):
            if module is not None:
                if state.get(name) is None:
                    raise SrlabError(
                        f"state.pt has no UDL {name}: the run's stages changed; resume with its own config"
                    )
                module.load_state_dict(state[name])
        saved = state.get("discriminators") or {}
        for key, discriminator in self.discriminators().items():
            if key not in saved:
                raise SrlabError(f"state.pt has no discriminator for loss {key!r}: the run's losses changed; "
                                 "resume with its own config")
            discriminator.load_state_dict(saved[key])
        if self.d_optimizer is not None:
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batches_in_epoch = state["epoch"], state["batches_in_epoch"]
        self.iteration, self.best_psnr, self.best_epoch = state["iteration"], state["best_psnr"], state["best_epoch"]
        self.last_scores = {"psnr_y": state["last_psnr"], "ssim_y": state["last_ssim"]}
        self.validated_at = state["validated_at"]
        if state.get("rng") is not None:  # absent in runs saved before RNG states were
            # A run resumed on another number of processes reuses the saved states cyclically.
            _set_rng_state(state["rng"][self.rank % len(state["rng"])], self.device)

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
    """Train (or, with ``resume``, continue) the run in ``config.out``.

    Under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK set) this joins the process group and trains
    data-parallel; ``config.data.batch_size`` is the global batch, split evenly across the processes."""
    validate(config)
    check_stages(config)
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
    world = (distributed.environment() or (0, 1, 0))[1]
    if config.data.batch_size % world:
        raise SrlabError(
            f"--batch_size {config.data.batch_size} (the global batch) is not divisible by the {world} processes: "
            f"use a multiple of {world}"
        )
    device = resolve_device(config.device)
    if config.amp == "fp16" and device.type != "cuda":
        raise SrlabError("--amp fp16 needs a CUDA GPU (fp16 with a gradient scaler): use --amp bf16 or off on CPU")
    was_deterministic = (
        torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    )
    cudnn_flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    dist, device = distributed.setup(device)
    try:
        if config.deterministic:
            _make_deterministic()
        return _train(config, run_dir, dist, device, resume=resume, progress=progress and dist.is_main)
    finally:
        torch.use_deterministic_algorithms(was_deterministic[0], warn_only=was_deterministic[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn_flags
        distributed.teardown(dist)


def _make_deterministic() -> None:
    """Deterministic kernels (an error names any op that has none), no cuDNN autotuning."""
    # cuBLAS needs a fixed workspace for reproducible results; it is read when cuBLAS starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also every CUDA device


def _train(
    config: TrainConfig, run_dir: Path, dist: Dist, device: torch.device, *, resume: bool, progress: bool
) -> TrainResult:
    # Every rank seeds alike, so the ranks start from the same weights (DDP checks it by broadcasting).
    _seed_everything(config.seed)
    train_folder = discover_pairs(config.data.train_dir, config.scale)
    val_folder = discover_pairs(config.data.val_dir, config.scale)
    train_set = PatchDataset(
        train_folder.pairs, scale=config.scale, patch_size=config.data.patch_size,
        repeat=config.data.repeat, seed=config.seed,
    )
    val_pairs = val_folder.pairs[: config.data.val_max_images or None]
    # Each rank validates every world_size-th image; the per-image scores are gathered in rank 0's order.
    val_images = [(p.name, *load_pair(p, config.scale)) for p in val_pairs[dist.rank::dist.world_size]]
    val_indices = list(range(len(val_pairs)))[dist.rank::dist.world_size]
    if config.curriculum.measure != "off":
        sampler = CurriculumSampler(
            train_set, seed=config.seed, measure=config.curriculum.measure,
            start_fraction=config.curriculum.start_fraction, epochs=config.curriculum.epochs, scale=config.scale,
            rank=dist.rank, world_size=dist.world_size,
        )
    else:
        sampler = EpochSampler(len(train_set), seed=config.seed, rank=dist.rank, world_size=dist.world_size)
    loader = DataLoader(
        train_set, batch_size=config.data.batch_size // dist.world_size, sampler=sampler,
        num_workers=config.data.num_workers, drop_last=len(train_set) >= config.data.batch_size,
        pin_memory=device.type == "cuda",
        # Its own generator: the loader draws a seed for its workers at every epoch, and drawing it from
        # the global RNG would shift that RNG between an interrupted and an uninterrupted run.
        generator=torch.Generator().manual_seed(config.seed),
    )
    iters_per_epoch = len(loader)

    model = build_model(config.model.name, scale=config.scale, args=config.model.args)
    warm_start = None
    if config.init_from and not resume:
        warm_start = load_matching(model, read_checkpoint(config.init_from))
    model = model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
    run = _Run(model, ema, None, rank=dist.rank, device=device)  # type: ignore[arg-type]
    net: nn.Module = model

    def enter_stage(stage: Stage, *, restoring: bool) -> None:
        """Build the stage's objective, UDL head / estimator, optimisers and the module to call.

        Seeded by (seed, stage), apart from the global RNG: a resumed run builds the same modules."""
        nonlocal net
        udl = stage.udl_stage()
        if udl == "weighted":
            # The estimator: the model and head as they are when the weighted stage starts, frozen.
            if run.head is None and not restoring:
                raise SrlabError(f"{stage.name}: no uncertainty head to freeze: train an udl estimate stage first")
            head = run.head if run.head is not None else UncertaintyHead(channels=config.udl_head_channels)
            run.estimator = TrainNet(copy.deepcopy(model), copy.deepcopy(head).to(device)).requires_grad_(False).eval()
        else:
            run.estimator = None
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed * 1009 + 17 * (stage.index + 1))
            run.objective = build_weighted_objective(stage.terms).to(device)
            run.head = UncertaintyHead(channels=config.udl_head_channels).to(device) if udl == "estimate" else None
        if run.objective.needs_uncertainty and udl is None:
            raise SrlabError(f"{stage.name}: a loss needs the uncertainty map, which only the udl loss provides")
        params = list(model.parameters()) + ([] if run.head is None else list(run.head.parameters()))
        run.optimizer = torch.optim.Adam(
            params, lr=stage.lr, betas=config.optim.betas, weight_decay=config.optim.weight_decay
        )
        discriminators = run.discriminators()
        run.d_optimizer = None
        if discriminators:
            run.d_optimizer = torch.optim.Adam(
                [p for d in discriminators.values() for p in d.parameters()], lr=config.d_optim.lr,
                betas=config.d_optim.betas, weight_decay=config.d_optim.weight_decay,
            )
        run.scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
        run.stage = stage.index
        # The forward/backward pass goes through the DDP wrapper (it averages the gradients over the
        # ranks); `model` itself is what is saved, validated and EMA-averaged. Every rank steps the same
        # optimiser on the same averaged gradients, so the weights and the EMA stay equal on all ranks.
        net = TrainNet(model, run.head)
        if dist.enabled:
            net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if config.compile:
            net = torch.compile(net)

    saved_schedule = None
    if resume:
        state = torch.load(run_dir / STATE_FILE, map_location=device, weights_only=True)
        enter_stage(stages(config)[min(state.get("stage", 0), len(stages(config)) - 1)], restoring=True)
        run.restore(state)
        saved_schedule = state.get("schedule_epochs")
    else:
        enter_stage(stage_at(config, 0), restoring=False)

    log = _Log(run_dir / "train.log", echo=progress) if dist.is_main else None

    def write_log(line: str) -> None:
        if log is not None:
            log.write(line)

    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    dist.barrier()
    if config.amp == "bf16" and device.type == "cpu" and not _cpu_has_native_bf16():
        write_log("warning: --amp bf16 on a CPU without native bf16 (AVX512-BF16 / AMX) is slow: use --amp off")
    if not resume:
        write_log(
            f"model {config.model.name} x{config.scale} params {count_parameters(model)} "
            f"train {len(train_folder.pairs)} images ({train_folder.layout}) val {len(val_pairs)} images "
            f"iters/epoch {iters_per_epoch} device {device}"
            + (f" processes {dist.world_size} (batch {config.data.batch_size // dist.world_size} each)"
               if dist.enabled else "")
        )
        if warm_start is not None:
            loaded, skipped = warm_start
            write_log(
                f"warm start from {config.init_from}: loaded {len(loaded)} tensors, "
                f"kept the fresh init of {len(skipped)}: {', '.join(skipped) or 'none'}"
            )
    else:
        if run.epoch >= config.epochs:
            write_log(f"run already trained for {run.epoch} epochs; raise --epochs to train further")
        if (not config.stages and config.schedule.kind == "cosine"
                and saved_schedule not in (None, schedule_epochs(config))):
            write_log(
                f"resumed: the cosine schedule now spans {schedule_epochs(config)} epochs (was {saved_schedule}); "
                "set schedule.total_epochs to the final length up front to follow one curve"
            )

    def save(improved: bool | None) -> None:
        """Checkpoint (rank 0 writes; the others wait). ``improved`` None: the resume state only."""
        rng = dist.all_gather_object(_rng_state(device))
        if dist.is_main:
            state = run.state(rng)
            state["schedule_epochs"] = schedule_epochs(config)
            _save(state, run, run_dir, improved)
        dist.barrier()

    def validate_and_save() -> None:
        run.evaluated.eval()
        _, mine = evaluate_images(run.evaluated, val_images)
        run.evaluated.train()
        gathered = dist.all_gather_object([(i, s.scores) for i, s in zip(val_indices, mine)])
        # Averaged in image order, as one process does: the mean is the single-process mean to the bit.
        meters: dict[str, MeanMeter] = {}
        for _, scores in sorted(pair for part in gathered for pair in part):
            for key, value in scores.items():
                meters.setdefault(key, MeanMeter()).update(value)
        scores = {key: meter.mean for key, meter in meters.items()}
        run.last_scores = scores
        run.validated_at = run.iteration
        improved = scores["psnr_y"] > run.best_psnr
        if improved:
            run.best_psnr, run.best_epoch = scores["psnr_y"], run.epoch
        save(improved)
        write_log(
            f"epoch {run.epoch} iter {run.iteration} lr {learning_rate(config, run.iteration, iters_per_epoch):.3e} "
            f"val_psnr_y {scores['psnr_y']:.4f} val_ssim_y {scores['ssim_y']:.4f} "
            f"best_psnr_y {run.best_psnr:.4f} (epoch {run.best_epoch}) time {time.perf_counter() - started:.1f}s"
            + (f" stage {run.stage + 1} ({stages(config)[run.stage].name})" if config.stages else "")
            + (f" curriculum_fraction {sampler.fraction(sampler.epoch):.3f}"
               if isinstance(sampler, CurriculumSampler) else "")
            + "".join(f" loss_{key} {total / count:.4g}" for key, (total, count) in term_sums.items())
        )
        term_sums.clear()

    # Mean of every loss term since the last log line (rank 0's share of the batch), for the log.
    term_sums: dict[str, tuple[float, int]] = {}

    def add_terms(terms: dict[str, torch.Tensor]) -> None:
        for key, value in terms.items():
            total, count = term_sums.get(key, (0.0, 0))
            term_sums[key] = (total + float(value), count + 1)

    def describe(stage: Stage) -> str:
        losses = " + ".join(f"{w:g}*{name}" + (f"{params}" if params else "") for name, w, params in stage.terms)
        udl = stage.udl_stage()
        return (
            (f"stage {stage.index + 1}/{len(stages(config))} ({stage.name}): epochs {stage.start_epoch + 1}-"
             f"{stage.end_epoch} " if config.stages else "")
            + f"loss {losses} base lr {stage.lr:g}"
            + (f" discriminator lr {config.d_optim.lr:g}" if run.d_optimizer is not None else "")
            + (f" udl {udl}" if udl else "")
        )

    if not resume:
        write_log(describe(stages(config)[run.stage]))
    autocast = (
        (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype is not None else contextlib.nullcontext
    )

    started = time.perf_counter()
    net.train()
    while run.epoch < config.epochs:
        stage = stage_at(config, run.epoch)
        if stage.index != run.stage:
            enter_stage(stage, restoring=False)
            net.train()
            write_log(describe(stage))
        skip = run.batches_in_epoch  # > 0 when resuming in the middle of an epoch
        sampler.set_epoch(run.epoch, start=skip * config.data.batch_size)
        bar = tqdm(total=iters_per_epoch, initial=skip, disable=not progress, unit="it", dynamic_ncols=True,
                   leave=False, desc=f"epoch {run.epoch + 1}/{config.epochs}")
        for index, (lr_batch, hr_batch) in enumerate(loader, start=skip):
            lr_now = learning_rate(config, run.iteration, iters_per_epoch)
            for group in run.optimizer.param_groups:
                group["lr"] = lr_now
            lr_batch = lr_batch.to(device, non_blocking=True)
            hr_batch = hr_batch.to(device, non_blocking=True)
            with autocast():
                sr, uncertainty = net(lr_batch)
            if run.estimator is not None:  # udl stage 2: the frozen stage-1 estimate
                with torch.no_grad(), autocast():
                    uncertainty = run.estimator(lr_batch)[1]
            inputs = LossInputs(sr=sr.float(), hr=hr_batch, lr=lr_batch, scale=config.scale,
                                uncertainty=None if uncertainty is None else uncertainty.float())
            loss, terms = run.objective(inputs)
            if not torch.isfinite(loss):
                raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
            _step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
            if run.d_optimizer is not None:
                # The discriminator's step, after the generator's, on the same (detached) sr.
                for group in run.d_optimizer.param_groups:
                    group["lr"] = config.d_optim.lr * lr_now / stage.lr
                d_loss = run.objective.discriminator_loss(inputs)
                run.d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                _average_gradients(run.d_optimizer, dist)
                run.d_optimizer.step()
                terms = {**terms, "discriminator": d_loss.detach()}
            add_terms(terms)
            if ema is not None:
                _update_ema(ema, model, config.ema_decay)
            run.iteration += 1
            run.batches_in_epoch = index + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_now:.2e}")
            if config.val_every_iters and run.iteration % config.val_every_iters == 0:
                validate_and_save()
            elif config.checkpoint_every_iters and run.iteration % config.checkpoint_every_iters == 0:
                save(None)
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


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, scaler: torch.amp.GradScaler | None,
          grad_clip: float) -> None:
    """Backward and step, through the fp16 gradient scaler when there is one; clip the gradient norm."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


def _average_gradients(optimizer: torch.optim.Optimizer, dist: Dist) -> None:
    """Average the gradients over the ranks (the discriminator is not DDP-wrapped)."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                tdist.all_reduce(p.grad)
                p.grad.div_(dist.world_size)


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _rng_state(device: torch.device) -> dict:
    """This process's RNG states (torch, CUDA, NumPy, Python) as tensors and numbers: ``weights_only``-loadable."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].cpu().numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss_next"]))


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters()):
        ema_p.lerp_(p, 1 - decay)
    for ema_b, b in zip(ema.buffers(), model.buffers()):
        ema_b.copy_(b)


def _save(state: dict, run: _Run, run_dir: Path, improved: bool | None) -> None:
    """Write ``state`` and, unless ``improved`` is None (a resume checkpoint only), the weights."""
    # The state goes first: if the process dies between the writes, the weights files are at most one
    # validation behind the state, never ahead of it.
    with atomic_path(run_dir / STATE_FILE) as tmp:
        torch.save(state, tmp)
    if improved is None:
        return
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
