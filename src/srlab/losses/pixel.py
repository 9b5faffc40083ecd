"""Pixel losses of the study (section 3.1.1): L1 (MAE), L2 (MSE), and Charbonnier (a smooth L1)."""

from __future__ import annotations

import torch
from torch import nn

from srlab.errors import SrlabError


class CharbonnierLoss(nn.Module):
    """mean(sqrt((x - y)^2 + eps^2)): L1 away from zero, differentiable at zero (LapSRN)."""

    def __init__(self, *, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((prediction - target).square() + self.eps**2).mean()


def build_pixel_loss(name: str) -> nn.Module:
    losses = {"l1": nn.L1Loss, "l2": nn.MSELoss, "charbonnier": CharbonnierLoss}
    if name not in losses:
        raise SrlabError(f"unknown loss {name!r}: use one of {', '.join(losses)}")
    return losses[name]()
