"""``step: arm_sampled``: the official ARM training rule (chenbong/ARM-Net ``main.py::train``).

Each iteration trains ONE subnet of the supernet on the batch, the width drawn with probability
proportional to the square of its cost (``random.choices(..., weights=cost_list[1:] ** 2)``: the FLOPs
of the subnet on a 32x32 LR patch), so the largest subnets get most of the updates (ARM-FSRCNN
16 / 36 / 56: 6 % / 28 % / 66 %). The loss is the run's objective on that subnet's output (the official
recipes: L1, Adam 1e-3 (FSRCNN) / 2e-4 (CARN, SRResNet), betas 0.9 / 0.99, cosine to 1e-7 over 2M
iterations, batch 16 of 128x128 HR patches from DIV2K sub-images). The widths are drawn from the seed and
the iteration (:func:`srlab.train.arm_sandwich_step.iteration_rng`): the same on every rank, and a
resumed run draws what the uninterrupted one would have. See :mod:`srlab.train.arm_sandwich_step` for
the sandwich rule and the checks both make.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from srlab.models.arm import Subnet
from srlab.models.complexity import count_macs
from srlab.train.arm_sandwich_step import iteration_rng, supernet_of, train_widths
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import register_step

# The LR patch on which the official code measures each subnet's cost.
COST_PATCH = (32, 32)

_weights_of: weakref.WeakKeyDictionary[nn.Module, list[float]] = weakref.WeakKeyDictionary()



def sampling_weights(supernet: nn.Module) -> list[float]:
    """Each width's cost squared (MACs on a 32x32 patch: proportional to the official FLOPs), cached."""
    if supernet not in _weights_of:
        _weights_of[supernet] = [float(count_macs(Subnet(supernet, w), COST_PATCH)) ** 2 for w in supernet.widths]
    return _weights_of[supernet]


@register_step("arm_sampled")
def arm_sampled_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One subnet per iteration, drawn with probability proportional to its cost squared."""
    supernet = supernet_of(run, "arm_sampled")
    width = iteration_rng(config, run).choices(supernet.widths, weights=sampling_weights(supernet))[0]
    return train_widths(run, lr_batch, hr_batch, [width], config=config, dist=dist, lr=lr)
