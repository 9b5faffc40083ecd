"""Bicubic interpolation as a model: the baseline row of every SR table.

MATLAB ``imresize(lr, s, 'bicubic')`` on 8-bit images, the way papers compute the baseline (each
1-D pass rounded to 8 bits). Exposed through the registry so that evaluation, upscaling and
benchmarks treat it like any network.
"""

from __future__ import annotations

import torch
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.models.registry import ModelInfo, register_model


class Bicubic(nn.Module):
    def __init__(self, *, scale: int, matlab_uint8: bool) -> None:
        super().__init__()
        self.scale = scale
        self.matlab_uint8 = matlab_uint8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic_upscale(x, self.scale, quantize=self.matlab_uint8)


@register_model(
    ModelInfo(
        paper="Keys (1981), MATLAB imresize bicubic",
        origin="srlab",
        licence="Apache-2.0",
        scales=(2, 3, 4, 8),
        receptive_radius=4,
    )
)
def bicubic(*, scale: int, matlab_uint8: bool = True) -> Bicubic:
    """MATLAB bicubic upscaling; ``matlab_uint8=False`` keeps full float precision (16-bit inputs)."""
    return Bicubic(scale=scale, matlab_uint8=matlab_uint8)
