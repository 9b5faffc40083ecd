"""The ``scheduled`` training step: ``supervised``, after telling the model and the losses the epoch.

Some official recipes change the model or the objective with the epoch: SMSR anneals its Gumbel-softmax
temperature, ``tau = max(1 - (epoch - 1) / 500, 0.4)``, and ramps its sparsity weight in over 50 epochs.
Before each step, the model and every loss term that has a ``set_training_epoch(epoch)`` method get
the epoch being trained, counted from 1 as those formulas count it. The epoch is the run's (its
``epoch`` counter), so a resumed run continues the schedule where it stopped.
"""

from __future__ import annotations

import torch

from srlab.errors import SrlabError
from srlab.models.registry import spec_of
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import register_step, supervised_step


@register_step("scheduled")
def scheduled_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Hand the epoch (from 1) to whatever follows it, then one supervised step."""
    followers = [m for m in (run.model, *run.objective.objectives.values()) if hasattr(m, "set_training_epoch")]
    if not followers:
        raise SrlabError(
            f"step scheduled: neither model {spec_of(run.model).name!r} nor its losses follow an epoch "
            "schedule: use step: supervised"
        )
    for module in followers:
        module.set_training_epoch(run.epoch + 1)
    return supervised_step(run, lr_batch, hr_batch, config=config, dist=dist, lr=lr, d_lr=d_lr)
