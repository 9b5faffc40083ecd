"""Pixel losses of the study (section 3.1.1): L1 (MAE), L2 (MSE), and Charbonnier (a smooth L1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, is_number, register_loss


@register_loss("l1")
class L1Loss(Objective):
    """mean |sr - hr| (MAE)."""

    def forward(self, inputs: LossInputs) -> Tensor:
        return F.l1_loss(inputs.sr, inputs.hr)


@register_loss("l2")
class L2Loss(Objective):
    """mean (sr - hr)^2 (MSE)."""

    def forward(self, inputs: LossInputs) -> Tensor:
        return F.mse_loss(inputs.sr, inputs.hr)


@register_loss("charbonnier")
class CharbonnierLoss(Objective):
    """mean sqrt((sr - hr)^2 + eps^2): L1 away from zero, differentiable at zero (LapSRN)."""

    def __init__(self, *, eps: float = 1e-3) -> None:
        super().__init__()
        if not is_number(eps) or eps <= 0:
            raise SrlabError(f"charbonnier: eps must be a positive number, got {eps!r}")
        self.eps = float(eps)

    def forward(self, inputs: LossInputs) -> Tensor:
        return torch.sqrt((inputs.sr - inputs.hr).square() + self.eps**2).mean()
