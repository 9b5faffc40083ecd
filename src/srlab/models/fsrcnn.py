"""FSRCNN: Fast Super-Resolution CNN (d=56, s=12, m=4), and the ETDS authors' RGB retrain of it.

Paper: Dong, Loy and Tang, "Accelerating the Super-Resolution Convolutional Neural Network",
ECCV 2016. The official release is Caffe/MATLAB (no licence stated, no PyTorch weights); parameter
names follow the common PyTorch port yjn870/FSRCNN-pytorch (no LICENSE file): ``first_part``
(5x5 conv to d + PReLU), ``mid_part`` (1x1 shrink to s + PReLU, m x [3x3 conv + PReLU], 1x1 expand
to d + PReLU) and ``last_part`` (9x9 transposed conv, stride = scale, padding 4, output padding
scale - 1, so the output is exactly scale times the input).

Two registered forms:

* ``fsrcnn`` — the paper's network, on the Y channel (one input and output channel, 12,809
  parameters incl. biases and PReLU slopes; the paper's 12,464 counts convolution weights only).
  ``forward`` takes RGB in [0, 1], converts it to BT.601 YCbCr (MATLAB ``rgb2ycbcr``), runs the
  network on Y, upscales Cb/Cr with MATLAB bicubic and converts back. No official weights exist.
* ``fsrcnn_etds`` — the RGB retrain released by the ETDS authors (ECNUSR/ETDS, Apache-2.0,
  ``core/archs/ir/FSRCNN/arch.py``; weights ``experiments/pretrained_models/FSRCNN/FSRCNN_x{2,3,4}.pth``):
  the same layers and names with three input and output channels (24,683 parameters), RGB in [0, 1]
  in and out, no colour conversion. Its shapes differ from the paper's, hence a separate variant.
"""

from __future__ import annotations

import torch
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.layers.upsamplers.transposed import transposed_conv
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.models.registry import ModelInfo, register_model


def _conv_prelu(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2), nn.PReLU(out_channels)]


class FSRCNN(nn.Module):
    """``colors=1``: the network runs on the luma of the RGB input; ``colors=3``: directly on RGB."""

    def __init__(self, *, scale: int, colors: int, d: int, s: int, m: int) -> None:
        super().__init__()
        if colors not in (1, 3):
            raise ValueError(f"colors must be 1 (Y) or 3 (RGB), got {colors}")
        self.scale = scale
        self.colors = colors
        self.first_part = nn.Sequential(*_conv_prelu(colors, d, 5))
        mid = _conv_prelu(d, s, 1)
        for _ in range(m):
            mid += _conv_prelu(s, s, 3)
        mid += _conv_prelu(s, d, 1)
        self.mid_part = nn.Sequential(*mid)
        self.last_part = transposed_conv(in_channels=d, out_channels=colors, scale=scale)  # 9x9, stride s

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.colors == 3:
            return self._network(x)
        ycbcr = rgb_to_ycbcr(x)
        y = self._network(ycbcr[:, :1])
        cbcr = bicubic_upscale(ycbcr[:, 1:], self.scale)
        return ycbcr_to_rgb(torch.cat((y, cbcr), dim=1))


def _info(paper: str, *, origin: str, licence: str) -> ModelInfo:
    return ModelInfo(
        paper=paper,
        origin=origin,
        licence=licence,
        scales=(2, 3, 4),
        size_multiple=1,
        # 5x5 head (2) + m 3x3 (4) + the 9x9 transposed conv (4 HR px <= 2 LR px).
        receptive_radius=lambda a: a["m"] + 4,
        reparameterizable=False,
        half_precision_safe=True,
    )


@register_model(
    _info(
        "Dong et al., Accelerating the Super-Resolution Convolutional Neural Network (ECCV 2016)",
        # The authors' project page (Caffe/MATLAB code, no licence stated).
        origin="http://mmlab.ie.cuhk.edu.hk/projects/FSRCNN.html",
        licence="unknown",
    )
)
def fsrcnn(*, scale: int, d: int = 56, s: int = 12, m: int = 4) -> FSRCNN:
    """FSRCNN(56, 12, 4) on the Y channel, as in the paper."""
    return FSRCNN(scale=scale, colors=1, d=d, s=s, m=m)


@register_model(
    _info(
        "FSRCNN (ECCV 2016) as retrained on RGB DIV2K by the ETDS authors (CVPR 2023)",
        origin="https://github.com/ECNUSR/ETDS",
        licence="Apache-2.0",
    )
)
def fsrcnn_etds(*, scale: int, d: int = 56, s: int = 12, m: int = 4) -> FSRCNN:
    """The ETDS authors' RGB FSRCNN (loads ECNUSR/ETDS ``FSRCNN_x{2,3,4}.pth``)."""
    return FSRCNN(scale=scale, colors=3, d=d, s=s, m=m)
