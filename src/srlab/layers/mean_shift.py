"""The EDSR framework's mean shift: a frozen 1x1 convolution adding ``sign * rgb_range * mean``.

Models from that framework (EDSR, SMSR, IPT, ELAN, CARN) subtract the DIV2K mean on entry and add it
back on exit with two such layers; their checkpoints hold the layers' (frozen) weights, so the layer is
kept rather than replaced by a constant. Models that shift by the mean without a layer (SwinIR,
Swin2SR, SPAN, DLGSANet) use :data:`DIV2K_RGB_MEAN` directly.
"""

from __future__ import annotations

import torch
from torch import nn

# The DIV2K training set's mean RGB, in [0, 1].
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class MeanShift(nn.Conv2d):
    """Frozen identity 1x1 conv with bias ``sign * rgb_range * mean`` (std 1, the framework's default)."""

    def __init__(self, rgb_range: float, *, sign: int, mean: tuple[float, float, float] = DIV2K_RGB_MEAN) -> None:
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(mean))
        for p in self.parameters():
            p.requires_grad = False
