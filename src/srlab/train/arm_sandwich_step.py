"""Training an ARM supernet (Chen et al., ECCV 2022): every iteration trains subnets of several widths.

``step: arm_sandwich`` -- the sandwich rule of universally slimmable networks (Yu & Huang, ICCV 2019):
each iteration runs the largest width, the smallest and up to two others drawn at random (the ARM
supernets have three trained widths, so all three run), each on the whole batch against the ground
truth; the gradients of the widths' losses are summed (one backward pass per width, as the US-Nets code
does), then the optimiser steps once. The in-place distillation of US-Nets (the small widths learning
from the largest's output) is not used: SR has the HR image as its target.

``step: arm_sampled`` (:mod:`srlab.train.arm_sampled_step`) is the official ARM rule instead: ONE width
per iteration. The official ``main.py::train`` does not use the sandwich rule; ``arm_sandwich`` spends
``len(widths)`` forward/backward passes per iteration and trains every width at every step, which makes
short runs (CPU recipes) useful for all widths.

Both run the model through the trainer's wrapper (``run.net``: DDP, compile) inside
``model.at_width(w)``; under DDP the gradients of every width but the last are accumulated locally
(``no_sync``) and averaged over the ranks with the last one. A width's objective is the run's
(``losses``); its terms are logged per width (``loss_l1_w16`` ...). The EMA, when on, is updated after
the step. A model that is not a slimmable supernet (``widths`` and ``at_width``: ``arm_fsrcnn``,
``arm_carn``, ``arm_srresnet``) is refused, and so is a ``gan`` term (one discriminator step per width
is not defined).
"""

from __future__ import annotations

import contextlib
import random

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import clip_and_step, forward_objective, register_step, update_ema

# US-Nets trains this many random widths between the smallest and the largest in each iteration.
SANDWICH_RANDOM_WIDTHS = 2


def supernet_of(run: RunState, step: str) -> nn.Module:
    """The run's model if it is a slimmable supernet, else the one-line refusal."""
    model = run.model
    widths = getattr(model, "widths", None)
    if not (hasattr(model, "at_width") and isinstance(widths, tuple) and widths):
        name = getattr(getattr(model, "srlab_spec", None), "name", type(model).__name__)
        raise SrlabError(
            f"step {step} trains a slimmable ARM supernet (arm_fsrcnn, arm_carn, arm_srresnet), not model "
            f"{name!r}: set model.name to one of them, or step: supervised"
        )
    if run.d_optimizer is not None:
        raise SrlabError(f"step {step} trains with pixel losses only: remove the gan term from losses")
    return model


def sandwich_widths(widths: tuple[int, ...], rng: random.Random) -> list[int]:
    """Largest, smallest, then up to SANDWICH_RANDOM_WIDTHS others at random (no repeats)."""
    ordered = sorted(widths)
    middle = ordered[1:-1]
    picked = rng.sample(middle, min(SANDWICH_RANDOM_WIDTHS, len(middle)))
    return [ordered[-1], *([ordered[0]] if len(ordered) > 1 else []), *picked]


def iteration_rng(config: TrainConfig, run: RunState) -> random.Random:
    """A generator of the run's seed and iteration alone: every rank draws the same widths, and a resumed
    run draws what the uninterrupted one would have."""
    return random.Random(config.seed * 1_000_003 + run.iteration)


def train_widths(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, widths: list[int], *, config: TrainConfig,
    dist: Dist, lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimiser step on the summed losses of the subnets ``widths``; returns (sum, terms per width)."""
    supernet = run.model
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    losses = []
    terms: dict[str, torch.Tensor] = {}
    for k, width in enumerate(widths):
        last = k == len(widths) - 1
        # Under DDP, all but the last backward pass accumulate locally; the last one averages the sum.
        local = run.net.no_sync() if dist.enabled and not last else contextlib.nullcontext()
        with local, supernet.at_width(width):
            loss, width_terms, _ = forward_objective(run, lr_batch, hr_batch, config=config)
            (loss if run.scaler is None else run.scaler.scale(loss)).backward()
        losses.append(loss.detach())
        terms.update({f"{name}_w{width}": value.detach() for name, value in width_terms.items()})
    clip_and_step(run.optimizer, run.scaler, config.optim.grad_clip)
    if run.ema is not None:
        update_ema(run.ema, run.model, config.ema_decay)
    return torch.stack(losses).sum(), terms


@register_step("arm_sandwich")
def arm_sandwich_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The sandwich rule (module docstring)."""
    widths = sandwich_widths(supernet_of(run, "arm_sandwich").widths, iteration_rng(config, run))
    return train_widths(run, lr_batch, hr_batch, widths, config=config, dist=dist, lr=lr)
