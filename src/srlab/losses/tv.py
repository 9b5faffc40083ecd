"""Total variation (TV) regulariser of the study (section 3.2.1), isotropic as the study writes it::

    TV(y) = 1/N_y * sum_{i,j,k} sqrt( (y[i+1,j,k] - y[i,j,k])^2 + (y[i,j+1,k] - y[i,j,k])^2 )

i, j run over the rows and columns that have both a lower and a right neighbour (i < H-1, j < W-1),
k over channels; N_y = C * H * W, the number of values of y. Applied to ``sr``, averaged over the batch.
The square root's gradient at 0 is taken as 0 (a subgradient), so flat images train without NaNs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from srlab.losses.base import LossInputs, Objective, register_loss


def total_variation(y: Tensor) -> Tensor:
    """Isotropic TV of (N, C, H, W) ``y`` as the study defines it, averaged over the N images."""
    down = y[..., 1:, :-1] - y[..., :-1, :-1]
    right = y[..., :-1, 1:] - y[..., :-1, :-1]
    squared = down.square() + right.square()
    positive = squared > 0
    safe = torch.where(positive, squared, torch.ones_like(squared))
    magnitude = torch.where(positive, safe.sqrt(), torch.zeros_like(squared))
    per_image = magnitude.flatten(1).sum(dim=1) / y[0].numel()
    return per_image.mean()


@register_loss("tv")
class TVLoss(Objective):
    """The study's isotropic total variation of ``sr`` (no reference image)."""

    def forward(self, inputs: LossInputs) -> Tensor:
        return total_variation(inputs.sr)
