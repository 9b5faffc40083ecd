"""Peak signal-to-noise ratio, as a pure function of two image tensors."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from srlab.metrics.common import shave
from srlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol


def psnr(x: Tensor, y: Tensor, *, data_range: float = 1.0, crop_border: int = 0) -> Tensor:
    """PSNR in dB of ``x`` against ``y``, one value per batch item.

    Inputs are (N, C, H, W) -> (N,) or (C, H, W) -> a 0-d tensor. The MSE is taken over all
    channels and pixels of an item (after cropping); identical images give ``inf``. The result is
    in the promoted floating dtype of the inputs, so pass float64 for reference-grade numbers.
    """
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() not in (3, 4):
        raise ValueError(f"psnr expects (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    x, y = shave(x, crop_border).to(dtype), shave(y, crop_border).to(dtype)
    mse = (x - y).square().mean(dim=(-3, -2, -1))
    # 10 log10(peak^2 / 0) is +inf, which is the right answer for identical images.
    return 10.0 * torch.log10(data_range**2 / mse)


@register_metric("psnr", higher_is_better=True, best=math.inf, labelled=True)
def score_psnr(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
    """PSNR (dB, peak 255) of a prepared pair on the protocol's channels (Y, as the papers report it)."""
    return float(psnr(protocol.channels255(sr), protocol.channels255(hr), data_range=255.0))
