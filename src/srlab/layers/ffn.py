"""Restormer's gated depth-conv feed-forward network (GDFN), shared by Omni-SR, DITN and DLGSANet."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedFeedForward(nn.Module):
    """1x1 conv C -> 2 * hidden, 3x3 depth-wise conv, GELU(first half) * second half, 1x1 conv back to C.

    ``hidden = int(C * expansion)``; the official names ``project_in``, ``dwconv``, ``project_out``.
    """

    def __init__(self, dim: int, expansion: float = 1.0, *, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)
