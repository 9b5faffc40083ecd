"""TensorBoard logging of a run (``logging: {tensorboard: true}`` or ``srlab train --tensorboard``).

Event files go to ``RUN_DIR/tensorboard``; ``tensorboard --logdir RUN_DIR`` shows them. Written:

- ``train/loss`` (the objective), ``train/loss_<term>`` (each term, e.g. ``train/loss_l1``) and
  ``train/lr``: means since the previous write, written every ``logging.every_iters`` iterations and at
  every checkpoint, at the iteration they end on;
- ``val/psnr_y``, ``val/ssim_y``, ``val/best_psnr_y`` at every validation, with ``time/iters_per_s`` and
  ``time/data_wait`` (the fraction of the training loop's time spent waiting for a batch) since the
  previous one;
- ``val/<image>``: the first ``logging.val_images`` validation images super-resolved by the evaluated
  weights at every validation, and ``val_hr/<image>``, their HR originals, once;
- ``config``: the resolved configuration (YAML), at step 0, and on resume at the first step the
  resumed run trains.

Resume: a resumed run adds a new event file to the same folder, opened with ``purge_step`` set to the
first iteration it trains (one past its checkpoint's). TensorBoard then discards what the interrupted
run wrote from that iteration on (the resumed run trains those iterations again), so every step
appears once and the curves continue as one run's would. What was written up to the checkpoint stays:
an iteration's values are written before the checkpoint that ends it. The means restart at every
checkpoint, so a resumed run averages over the same iterations as an uninterrupted one and its curves
are the same numbers.

Under torchrun only rank 0 writes. Without the ``tensorboard`` package the run stops before training,
with a one-line error naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.inference.upscale import upscale_tensor
from srlab.train.checkpoint import CONFIG_FILE
from srlab.train.config import TrainConfig

BOARD_DIR = "tensorboard"


def require_tensorboard() -> None:
    """The one-line error a user sees when the optional ``tensorboard`` package is missing."""
    try:
        import torch.utils.tensorboard  # noqa: F401 - imports the tensorboard package
    except ImportError:
        raise SrlabError(
            "logging.tensorboard (--tensorboard) needs the tensorboard package: pip install tensorboard "
            "(or pip install 'srlab[tensorboard]'), or turn TensorBoard logging off"
        ) from None


class Board:
    """The run's TensorBoard writer; every method does nothing when logging is off (or on ranks > 0)."""

    def __init__(self, writer: Any | None, every_iters: int, val_images: int) -> None:
        self.writer, self.every_iters, self.val_images = writer, every_iters, val_images
        # Sums since the last write: {scalar tag: (sum, count)}.
        self.sums: dict[str, tuple[float, int]] = {}

    @classmethod
    def open(cls, config: TrainConfig, run_dir: Path, *, enabled: bool, iteration: int, resumed: bool,
             images: list[tuple[str, torch.Tensor, torch.Tensor]]) -> Board:
        """The writer of ``run_dir`` (none unless ``enabled`` and ``logging.tensorboard``) for a run
        that has trained ``iteration`` iterations; a fresh run also shows the HR originals of the first
        validation ``images`` (name, lr, hr)."""
        settings = config.logging
        if not (enabled and settings.tensorboard):
            return cls(None, settings.every_iters, 0)
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        first = iteration + 1 if resumed else 0
        # The HR originals once: in a fresh run, or a resumed one that turns TensorBoard on.
        new_board = not resumed or not any((run_dir / BOARD_DIR).glob("events.out.tfevents.*"))
        # A fresh run purges from step 0: events of an attempt in this folder that never checkpointed.
        writer = SummaryWriter(str(run_dir / BOARD_DIR), purge_step=first)
        # Markdown: four leading spaces make a code block, so the YAML keeps its indentation.
        saved = (run_dir / CONFIG_FILE).read_text()
        writer.add_text("config", "\n".join("    " + line for line in saved.splitlines()), first)
        if new_board:
            for name, _, hr in images[: settings.val_images]:
                writer.add_image(f"val_hr/{name}", hr.clamp(0, 1), first)
        return cls(writer, settings.every_iters, settings.val_images)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def add_step(self, iteration: int, loss: float, terms: dict[str, float], lr: float) -> None:
        """One training iteration's values (``iteration``: the number of iterations done)."""
        if self.writer is None:
            return
        for tag, value in {"train/loss": loss, "train/lr": lr,
                           **{f"train/loss_{key}": v for key, v in terms.items()}}.items():
            total, count = self.sums.get(tag, (0.0, 0))
            self.sums[tag] = (total + value, count + 1)
        if iteration % self.every_iters == 0:
            self.write_means(iteration)

    def write_means(self, iteration: int) -> None:
        """Write the training means since the last write (at a checkpoint: see the module docstring)."""
        if self.writer is None:
            return
        for tag, (total, count) in self.sums.items():
            self.writer.add_scalar(tag, total / count, iteration)
        self.sums.clear()

    def add_validation(self, iteration: int, scores: dict[str, float], best_psnr: float,
                       timing: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key in ("psnr_y", "ssim_y", "acc"):  # acc: the category accuracy of step multitask
            if key in scores:
                self.writer.add_scalar(f"val/{key}", scores[key], iteration)
        self.writer.add_scalar("val/best_psnr_y", best_psnr, iteration)
        for key, value in timing.items():
            self.writer.add_scalar(f"time/{key}", value, iteration)
        self.writer.flush()  # a kill loses nothing validated

    @torch.no_grad()
    def add_images(self, iteration: int, model: nn.Module,
                   images: list[tuple[str, torch.Tensor, torch.Tensor]]) -> None:
        """The first ``val_images`` of ``images`` (name, lr, hr) super-resolved by ``model``."""
        if self.writer is None or not self.val_images:
            return
        was_training = model.training
        model.eval()
        for name, lr, hr in images[: self.val_images]:
            sr = upscale_tensor(model, lr).float().clamp(0, 1).cpu()
            self.writer.add_image(f"val/{name}", sr, iteration)
        model.train(was_training)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
