"""The learning-rate schedule: a pure function of the iteration, so resuming needs no scheduler state."""

from __future__ import annotations

import math

from srlab.train.config import TrainConfig
from srlab.train.stages import stage_at


def learning_rate(config: TrainConfig, iteration: int, iters_per_epoch: int) -> float:
    """The learning rate of an iteration (0-based).

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
