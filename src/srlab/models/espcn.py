"""ESPCN: Efficient Sub-Pixel CNN, and the ETDS authors' RGB retrain of it.

Paper: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network", CVPR 2016. No official code was released (the paper's Theano code is
not public). The network: 5x5 conv (64) + tanh, 3x3 conv (32) + tanh, 3x3 conv to colors * scale^2
channels, pixel shuffle.

Two registered forms, with different parameter names because their sources differ:

* ``espcn`` — the paper's network on the Y channel (21,284 / 22,729 / 24,752 parameters at
  x2/x3/x4), with the names of the common PyTorch port yjn870/ESPCN-pytorch (no LICENSE file):
  ``first_part.0``, ``first_part.2``, ``last_part.0``. ``forward`` takes RGB in [0, 1], converts it to
  BT.601 YCbCr (MATLAB ``rgb2ycbcr``), runs the network on Y, upscales Cb/Cr with MATLAB bicubic and
  converts back. No official weights exist.
* ``espcn_etds`` — the RGB retrain released by the ETDS authors (ECNUSR/ETDS, Apache-2.0,
  ``core/archs/ir/ESPCN/arch.py``; weights ``experiments/pretrained_models/ESPCN/ESPCN_x{2,3,4}.pth``):
  ``conv1``/``conv2``/``conv3`` on three channels, and — unlike the paper — a sigmoid after the pixel
  shuffle, so its output lies in (0, 1). RGB in [0, 1] in and out, no colour conversion.
"""

from __future__ import annotations

import torch
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.layers.upsamplers import SubPixelHead
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.models.registry import ModelInfo, register_model


class ESPCN(nn.Module):
    """The paper's ESPCN on the luma of the RGB input."""

    def __init__(self, *, scale: int, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.scale = scale
        self.first_part = nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(channels, mid_channels, 3, padding=1),
            nn.Tanh(),
        )
        self.last_part = SubPixelHead(mid_channels, 1, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ycbcr = rgb_to_ycbcr(x)
        y = self.last_part(self.first_part(ycbcr[:, :1]))
        cbcr = bicubic_upscale(ycbcr[:, 1:], self.scale)
        return ycbcr_to_rgb(torch.cat((y, cbcr), dim=1))


class ESPCNETDS(nn.Module):
    """The ETDS authors' RGB ESPCN (sigmoid output)."""

    def __init__(self, *, scale: int, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv1 = nn.Conv2d(3, channels, 5, padding=2)
        self.conv2 = nn.Conv2d(channels, mid_channels, 3, padding=1)
        self.conv3 = nn.Conv2d(mid_channels, 3 * scale * scale, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv2(torch.tanh(self.conv1(x))))
        return torch.sigmoid(self.pixel_shuffle(self.conv3(x)))


def _info(paper: str, *, origin: str, licence: str) -> ModelInfo:
    return ModelInfo(
        paper=paper,
        origin=origin,
        licence=licence,
        scales=(2, 3, 4),
        size_multiple=1,
        # 5x5 + 3x3 + 3x3 in LR pixels (2 + 1 + 1), bicubic chroma needs 2.
        receptive_radius=4,
        reparameterizable=False,
        half_precision_safe=True,
    )


# No official code was released: the origin is the PyTorch port whose names this follows.
@register_model(
    _info(
        "Shi et al., Real-Time Single Image and Video Super-Resolution ... (ESPCN, CVPR 2016)",
        origin="https://github.com/yjn870/ESPCN-pytorch",
        licence="unknown",
    )
)
def espcn(*, scale: int, channels: int = 64, mid_channels: int = 32) -> ESPCN:
    """ESPCN on the Y channel, as in the paper."""
    return ESPCN(scale=scale, channels=channels, mid_channels=mid_channels)


@register_model(
    _info(
        "ESPCN (CVPR 2016) as retrained on RGB DIV2K by the ETDS authors (CVPR 2023)",
        origin="https://github.com/ECNUSR/ETDS",
        licence="Apache-2.0",
    )
)
def espcn_etds(*, scale: int, channels: int = 64, mid_channels: int = 32) -> ESPCNETDS:
    """The ETDS authors' RGB ESPCN (loads ECNUSR/ETDS ``ESPCN_x{2,3,4}.pth``)."""
    return ESPCNETDS(scale=scale, channels=channels, mid_channels=mid_channels)
