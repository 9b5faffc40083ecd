"""The training loop, configured by :class:`~srlab.train.config.TrainConfig`.

Its parts, each in its own module:

- :mod:`srlab.train.checkpoint`: the run directory, the order its files are written in (a kill at any
  instant leaves a consistent or repairable run) and reading them back;
- :mod:`srlab.train.state`: the run's mutable state (what ``state.pt`` stores) and building a stage;
- :mod:`srlab.train.schedule`: the learning rate, a pure function of the iteration (no scheduler state);
- :mod:`srlab.train.data`: the training loader and the validation images;
- :mod:`srlab.train.step`: one training step (generator, discriminator, EMA);
- :mod:`srlab.train.validate`: the validation scores;
- :mod:`srlab.train.stages`: stages, the UDL head and the curriculum;
- :mod:`srlab.train.tensorboard`: TensorBoard logging (``logging.tensorboard``).

Every validation line of ``train.log`` also gives the training speed since the previous line
(``it/s``, iterations per second of the training loop, validation and checkpoints left out) and the
share of that time spent waiting for the next batch (``data_wait``): a loader that cannot keep up
shows there (raise ``data.num_workers``). ``srlab plot RUN_DIR`` draws the log's curves.

Under ``torchrun`` the same loop runs data-parallel (:mod:`srlab.train.distributed`): every process
trains a DistributedDataParallel copy on its share of each global batch, validates its share of the
images, and only rank 0 writes files.
"""

from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from srlab.errors import SrlabError
from srlab.inference.upscale import resolve_device
from srlab.models.color_space import COLOR_SPACE_ARG, build_in_color_space, warm_start_target
from srlab.models.registry import count_parameters
from srlab.models.weights import load_matching, read_checkpoint
from srlab.train import distributed
from srlab.train.checkpoint import (
    BEST_FILE, LAST_FILE, STATE_FILE, RunFiles, check_resumable, export_metadata, load_state, restore, save_config,
)
from srlab.train.config import TrainConfig, validate
from srlab.train.data import TrainData, build_data
from srlab.train.distributed import Dist
from srlab.train.multitask_step import validation_accuracy
from srlab.train.schedule import learning_rate, schedule_epochs
from srlab.train.stages import Stage, check_stages, stage_at, stages
from srlab.train.state import RunState, enter_stage, freeze, rng_state
from srlab.train.step_modules import validation_lr_maker
from srlab.train.steps import step_names, train_step
from srlab.train.tensorboard import Board, require_tensorboard
from srlab.train.validate import validation_scores


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    iterations: int
    last_psnr: float
    last_ssim: float
    best_psnr: float
    best_epoch: int


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or, with ``resume``, continue) the run in ``config.out``.

    Under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK set) this joins the process group and trains
    data-parallel; ``config.data.batch_size`` is the global batch, split evenly across the processes."""
    if config.step not in step_names():
        raise SrlabError(f"unknown training step {config.step!r}: set step to one of {', '.join(step_names())}")
    validate(config)
    check_stages(config)
    if config.logging.tensorboard:
        require_tensorboard()
    # Absolute paths in the saved config, so that a run resumes from any working directory.
    for section, key in ((config.data, "train_dir"), (config.data, "val_dir"), (config, "out"), (config, "init_from")):
        if getattr(section, key):
            setattr(section, key, str(Path(getattr(section, key)).expanduser().absolute()))
    run_dir = Path(config.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise SrlabError(f"--out '{run_dir}' is a file: give a folder for the run")
    if resume:
        check_resumable(config, run_dir)
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
        trainer = _Trainer.start(config, run_dir, dist, device, resume=resume, progress=progress and dist.is_main)
        try:
            result = trainer.run()
        finally:
            trainer.board.close()  # also when interrupted: what was logged reaches the event file
        distributed.wait_for_every_rank(dist)
        return result
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


@dataclass
class _LoopTime:
    """The training loop's time since the last log line: waiting for batches, and the rest of the steps."""

    data_s: float = 0.0
    step_s: float = 0.0
    iterations: int = 0

    def add(self, data_s: float, step_s: float) -> None:
        self.data_s, self.step_s, self.iterations = self.data_s + data_s, self.step_s + step_s, self.iterations + 1

    def summary(self) -> dict[str, float]:
        total = max(self.data_s + self.step_s, 1e-9)
        return {"iters_per_s": self.iterations / total, "data_wait": self.data_s / total}


class _Trainer:
    """A run being trained: its state, data and files, the loop over epochs, validation and checkpoints."""

    def __init__(self, config: TrainConfig, run: RunState, data: TrainData, files: RunFiles, dist: Dist,
                 log: _Log, board: Board) -> None:
        self.config, self.run_state, self.data, self.files, self.dist, self.log = config, run, data, files, dist, log
        self.board = board
        # Mean of every loss term since the last log line (rank 0's share of the batch), for the log.
        self.term_sums: dict[str, tuple[float, int]] = {}
        self.loop_time = _LoopTime()
        self.started = time.perf_counter()
        self.progress = log.echo

    @classmethod
    def start(cls, config: TrainConfig, run_dir: Path, dist: Dist, device: torch.device, *, resume: bool,
              progress: bool) -> _Trainer:
        """Build the run (fresh, or from ``state.pt``), prepare its directory and write the log's header."""
        # Every rank seeds alike, so the ranks start from the same weights (DDP checks it by broadcasting).
        _seed_everything(config.seed)
        data = build_data(config, dist, device)
        model = build_in_color_space(
            config.model.name, scale=config.scale, args={**config.model.args, COLOR_SPACE_ARG: config.data.color_space}
        )
        warm_start = None
        if config.init_from and not resume:
            checkpoint = read_checkpoint(config.init_from)
            warm_start = load_matching(warm_start_target(model, checkpoint.state_dict), checkpoint)
        freeze(model, config.model.freeze)
        model = model.to(device)
        ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
        run = RunState(model, ema, rank=dist.rank, device=device)
        files = RunFiles(run_dir)
        log = _Log(run_dir / "train.log", echo=progress, enabled=dist.is_main)
        rewritten: list[str] = []
        state = load_state(run_dir, device) if resume else None
        if state is not None:
            enter_stage(run, stages(config)[min(state.get("stage", 0), len(stages(config)) - 1)], config, dist,
                        restoring=True)
            restore(run, state, run_dir)
            if dist.is_main:
                rewritten = files.resume(state, run.exported())
        else:
            enter_stage(run, stage_at(config, 0), config, dist, restoring=False)
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, run_dir)
        dist.barrier()
        board = Board.open(config, run_dir, enabled=dist.is_main, iteration=run.iteration,
                           resumed=state is not None, images=data.val_images)
        trainer = cls(config, run, data, files, dist, log, board)
        if state is None:
            trainer.log_header(warm_start)
        else:
            trainer.log_resume(state.get("schedule_epochs"), rewritten)
        return trainer

    def log_header(self, warm_start: tuple[list[str], list[str]] | None) -> None:
        config, dist, run = self.config, self.dist, self.run_state
        self._warn_slow_bf16()
        self.log.write(
            f"model {config.model.name} x{config.scale} params {count_parameters(run.model)} "
            f"{self.data.description} device {run.device}"
            + (f" processes {dist.world_size} (batch {config.data.batch_size // dist.world_size} each)"
               if dist.enabled else "")
        )
        if config.model.freeze:
            frozen = sum(p.numel() for p in run.model.parameters() if not p.requires_grad)
            self.log.write(f"frozen {frozen} parameters (model.freeze: {', '.join(config.model.freeze)})")
        if warm_start is not None:
            loaded, skipped = warm_start
            self.log.write(
                f"warm start from {config.init_from}: loaded {len(loaded)} tensors, "
                f"kept the fresh init of {len(skipped)}: {', '.join(skipped) or 'none'}"
            )
        self.log.write(self.describe(stages(config)[run.stage]))

    def log_resume(self, saved_schedule: int | None, rewritten: list[str]) -> None:
        config, run = self.config, self.run_state
        self._warn_slow_bf16()
        if rewritten:
            self.log.write(
                f"resumed: rewrote {', '.join(rewritten)} from {STATE_FILE} (a kill had cut its last checkpoint short)"
            )
        if run.epoch >= config.epochs:
            self.log.write(f"run already trained for {run.epoch} epochs; raise --epochs to train further")
        if (not config.stages and config.schedule.kind == "cosine"
                and saved_schedule not in (None, schedule_epochs(config))):
            self.log.write(
                f"resumed: the cosine schedule now spans {schedule_epochs(config)} epochs (was {saved_schedule}); "
                "set schedule.total_epochs to the final length up front to follow one curve"
            )

    def _warn_slow_bf16(self) -> None:
        if self.config.amp == "bf16" and self.run_state.device.type == "cpu" and not _cpu_has_native_bf16():
            self.log.write(
                "warning: --amp bf16 on a CPU without native bf16 (AVX512-BF16 / AMX) is slow: use --amp off"
            )

    def describe(self, stage: Stage) -> str:
        config = self.config
        losses = " + ".join(f"{w:g}*{name}" + (f"{params}" if params else "") for name, w, params in stage.terms)
        udl = stage.udl_stage()
        return (
            (f"stage {stage.index + 1}/{len(stages(config))} ({stage.name}): epochs {stage.start_epoch + 1}-"
             f"{stage.end_epoch} " if config.stages else "")
            + f"loss {losses} base lr {stage.lr:g}"
            + (f" discriminator lr {config.d_optim.lr:g}" if self.run_state.d_optimizer is not None else "")
            + (f" udl {udl}" if udl else "")
        )

    def run(self) -> TrainResult:
        config, run = self.config, self.run_state
        run.net.train()
        while run.epoch < config.epochs:
            stage = stage_at(config, run.epoch)
            if stage.index != run.stage:
                enter_stage(run, stage, config, self.dist, restoring=False)
                run.net.train()
                self.log.write(self.describe(stage))
            self.train_epoch(stage)
            run.epoch += 1
            run.batches_in_epoch = 0
            if not config.val_every_iters and (run.epoch % config.val_every == 0 or run.epoch == config.epochs):
                self.validate()
        if run.validated_at != run.iteration:
            self.validate()
        return TrainResult(
            self.files.run_dir, run.epoch, run.iteration, run.last_scores["psnr_y"], run.last_scores["ssim_y"],
            run.best_psnr, run.best_epoch,
        )

    def train_epoch(self, stage: Stage) -> None:
        """The rest of epoch ``run.epoch`` (all of it, or what a resumed checkpoint left of it)."""
        config, run, data = self.config, self.run_state, self.data
        skip = run.batches_in_epoch  # > 0 when resuming in the middle of an epoch
        data.start_epoch(run.epoch, skip_batches=skip, batch_size=config.data.batch_size)
        bar = tqdm(total=data.iters_per_epoch, initial=skip, disable=not self.progress, unit="it",
                   dynamic_ncols=True, leave=False, desc=f"epoch {run.epoch + 1}/{config.epochs}")
        waiting = time.perf_counter()
        for index, (lr_batch, hr_batch, *labels) in enumerate(data.loader, start=skip):
            fetched = time.perf_counter()
            lr_now = learning_rate(config, run.iteration, data.iters_per_epoch)
            loss, terms = train_step(
                run, lr_batch.to(run.device, non_blocking=True), hr_batch.to(run.device, non_blocking=True),
                config=config, dist=self.dist, lr=lr_now,
                # The discriminator's rate follows the generator's schedule.
                d_lr=config.d_optim.lr * lr_now / stage.lr,
                labels=labels[0].to(run.device) if labels else None,  # data.labels: the images' categories
            )
            values = {key: float(value) for key, value in terms.items()}
            self.add_terms(values)
            run.iteration += 1
            run.batches_in_epoch = index + 1
            loss_value = loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr_now:.2e}")
            self.board.add_step(run.iteration, loss_value, values, lr_now)
            self.loop_time.add(fetched - waiting, time.perf_counter() - fetched)
            if config.val_every_iters and run.iteration % config.val_every_iters == 0:
                self.validate()
            elif config.checkpoint_every_iters and run.iteration % config.checkpoint_every_iters == 0:
                self.checkpoint(improved=None)
            waiting = time.perf_counter()
        bar.close()

    def add_terms(self, terms: dict[str, float]) -> None:
        for key, value in terms.items():
            total, count = self.term_sums.get(key, (0.0, 0))
            self.term_sums[key] = (total + value, count + 1)

    def validate(self) -> None:
        """Score the evaluated weights, checkpoint, and log a line."""
        config, run, data = self.config, self.run_state, self.data
        images = self.validation_images()
        scores = validation_scores(run.evaluated, images, data.val_indices, self.dist)
        if data.val_labels is not None:
            scores.update(validation_accuracy(run.evaluated, run.step_modules, config, images, data.val_labels,
                                              data.val_indices, self.dist))
        run.last_scores = scores
        run.validated_at = run.iteration
        improved = scores["psnr_y"] > run.best_psnr
        if improved:
            run.best_psnr, run.best_epoch = scores["psnr_y"], run.epoch
        self.checkpoint(improved)
        fraction = data.curriculum_fraction()
        timing = self.loop_time.summary() if self.loop_time.iterations else {}
        self.log.write(
            f"epoch {run.epoch} iter {run.iteration} "
            f"lr {learning_rate(config, run.iteration, data.iters_per_epoch):.3e} "
            f"val_psnr_y {scores['psnr_y']:.4f} val_ssim_y {scores['ssim_y']:.4f} "
            + (f"val_acc {scores['acc']:.4f} " if "acc" in scores else "")
            + f"best_psnr_y {run.best_psnr:.4f} (epoch {run.best_epoch}) time {time.perf_counter() - self.started:.1f}s"
            + (f" stage {run.stage + 1} ({stages(config)[run.stage].name})" if config.stages else "")
            + (f" curriculum_fraction {fraction:.3f}" if fraction is not None else "")
            + "".join(f" loss_{key} {total / count:.4g}" for key, (total, count) in self.term_sums.items())
            + (f" it/s {timing['iters_per_s']:.3g} data_wait {100 * timing['data_wait']:.1f}%" if timing else "")
        )
        self.term_sums.clear()
        self.loop_time = _LoopTime()
        self.board.add_validation(run.iteration, scores, run.best_psnr, timing)
        self.board.add_images(run.iteration, run.evaluated, images)

    def validation_images(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """This rank's (name, LR, HR) validation images: the folder's, or with LR images that the step's
        networks make from the HR images (``register_step(validation_lr=...)``), the HR image cropped to fit."""
        make_lr = validation_lr_maker(self.config.step)
        if make_lr is None:
            return self.data.val_images
        modules, scale, images = self.run_state.step_modules, self.config.scale, []
        with torch.no_grad():
            for name, _, hr in self.data.val_images:
                lr = make_lr(modules, hr)
                images.append((name, lr, hr[..., : lr.shape[-2] * scale, : lr.shape[-1] * scale]))
        return images

    def checkpoint(self, improved: bool | None) -> None:
        """Rank 0 writes ``state.pt`` and, at a validation (``improved`` not None), ``last`` and, if
        ``improved``, ``best``; the other ranks wait."""
        run = self.run_state
        self.board.write_means(run.iteration)
        rng = self.dist.all_gather_object(rng_state(run.device))
        if self.dist.is_main:
            state = {**run.state(rng), "schedule_epochs": schedule_epochs(self.config)}
            exports = () if improved is None else (LAST_FILE, BEST_FILE) if improved else (LAST_FILE,)
            self.files.write(state, run.exported(), exports, export_metadata(run))
        self.dist.barrier()


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class _Log:
    """``train.log`` (rank 0 only), one time-stamped line per event, echoed with ``echo``."""

    def __init__(self, path: Path, *, echo: bool, enabled: bool) -> None:
        self.path, self.echo, self.enabled = path, echo, enabled

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a") as f:
            f.write(f"{stamp} {line}\n")
            f.flush()
        if self.echo:
            tqdm.write(line)
