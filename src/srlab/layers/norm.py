"""Channel LayerNorm of (N, C, H, W) feature maps, as the Restormer / ConvNeXt family of SR models use it.

Omni-SR (``LayerNorm2d``), SAFMN (``LayerNorm``, ``channels_first``), DLGSANet (``WithBias_LayerNorm``)
and ShuffleMixer (``BiasFree_LayerNorm``, which despite its name subtracts the mean) all normalise each
pixel over its C values: ``(x - mean) / sqrt(var + eps) * weight (+ bias)``, biased variance. They differ
only in ``eps`` and in whether there is a bias, which are parameters here. ``F.layer_norm`` computes it
(one kernel whose statistics are accumulated in float32 for half-precision inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an (N, C, H, W) tensor, at every pixel.

    Parameters ``weight`` (ones) and, when ``bias``, ``bias`` (zeros), both of length C. Models whose
    official norm holds them one level down (``norm.body.weight``) nest this in ``Sequential(body=...)``.
    """

    def __init__(self, channels: int, *, eps: float, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The normalised shape from the parameter, not from x.shape: a constant for the ONNX exporters.
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}, bias={self.bias is not None}"
