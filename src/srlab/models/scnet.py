"""SCNet: a fully 1x1 convolutional network for lightweight super-resolution.

Paper: Gang Wu, Junjun Jiang, Kui Jiang, Xianming Liu, "Fully 1x1 Convolutional Network for Lightweight
Image Super-Resolution", Machine Intelligence Research 2024 (arXiv:2307.16140, 2023). Official code:
Aitical/SCNet (CC BY-NC 4.0), read at commit c0f8678: ``basicsr/archs/SCNet_arch.py`` (class ``SCNet``;
``SCNet_arch.py`` at the top level is the same network without the ``use_pixelshuffle`` option),
``options/test/SCNet/SCNet-T-x4.yml`` and ``SCNet-T-x4-PS.yml``. This file is written from that
structure; module and parameter names are the official ones, so weights trained with the official code
load with strict key matching. The authors' weights are on Google Drive / Baidu only (none in the
repository), so srlab registers none.

Structure (SCNet-T: 64 features, 16 blocks, as in the official test options), on RGB in [0, 1] (BasicSR,
no mean shift): a 1x1 conv (3 -> C) + LeakyReLU(0.1); 16 shift-conv residual blocks
``x + conv2(relu(shift(conv1(x))))`` (1x1 convs); the up-sampling layers, each followed by
LeakyReLU(0.1); ``conv_last(lrelu(conv_hr(.)))`` (1x1 convs) plus the bilinearly upsampled input
(``align_corners=False``). Every spatial interaction comes from the parameter-free ``Shift8``: the
channels are cut into 8 groups, each moved by one pixel in one of the 8 directions (zero fill).

Up-sampling layers (``upconv1``, and ``upconv2`` at x4; x2 and x3 use one layer of that scale, x4 two
of scale 2): by default ``UpShiftMLP`` (bilinear resize, 1x1 conv, LeakyReLU(0.02), shift, 1x1 conv),
the form of the training option; ``pixel_shuffle=True`` gives ``UpShiftPixelShuffle`` (1x1 conv,
LeakyReLU(0.02), shift, 1x1 conv to C*s^2, PixelShuffle), the ``-PS`` test option. Parameters of the
official code: 146,051 at x2 and x3, 154,371 at x4 (179,331 with PixelShuffle up-layers).

Initialisation as the official: Kaiming-normal (fan in) weights scaled by 0.1, zero biases, for every
convolution (BasicSR's ``default_init_weights(..., 0.1)``).

Deviations from the official code: none in the computation. ``Shift8`` is written with padding and
slices concatenated along the channels (the official code fills a zero tensor slice by slice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.models.classsr import scaled_kaiming_
from srlab.models.registry import ModelInfo, register_model

# (dy, dx): output pixel (i, j) of group g takes input pixel (i + dy, j + dx), in the official order.
SHIFT8_OFFSETS = ((-1, 0), (1, 0), (0, -1), (0, 1), (1, 1), (1, -1), (-1, 1), (-1, -1))


class Shift8(nn.Module):
    """Move each of 8 equal channel groups by one pixel in its own direction, filling with zeros."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if x.shape[1] % 8:
            raise ValueError(f"Shift8 needs a multiple of 8 channels, got {x.shape[1]}")
        padded = F.pad(x, (1, 1, 1, 1))
        groups = padded.chunk(8, dim=1)
        return torch.cat(
            [g[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for g, (dy, dx) in zip(groups, SHIFT8_OFFSETS)], dim=1
        )


class ResidualBlockShift(nn.Module):
    """``x + conv2(relu(shift(conv1(x))))`` with 1x1 convolutions (official ``ResidualBlockShift``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 1)
        self.shift = Shift8()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.shift(self.conv1(x))))


class UpShiftMLP(nn.Module):
    """Bilinear resize by ``scale``, then 1x1 conv, LeakyReLU(0.02), shift, 1x1 conv."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.up_layer = nn.Sequential(
            nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False),
            nn.Conv2d(channels, channels, 1),
            nn.LeakyReLU(0.02),
            Shift8(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up_layer(x)


class UpShiftPixelShuffle(nn.Module):
    """1x1 conv, LeakyReLU(0.02), shift, 1x1 conv to ``channels * scale**2``, PixelShuffle."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.up_layer = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.LeakyReLU(0.02),
            Shift8(),
            nn.Conv2d(channels, channels * scale * scale, 1),
            nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up_layer(x)


class SCNet(nn.Module):
    def __init__(self, *, scale: int, channels: int, num_blocks: int, pixel_shuffle: bool) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SCNet supports scales 2, 3 and 4, got {scale}")
        if channels % 8:
            raise ValueError(f"channels must be a multiple of 8 (Shift8), got {channels}")
        self.scale = scale
        up = UpShiftPixelShuffle if pixel_shuffle else UpShiftMLP
        self.conv_first = nn.Conv2d(3, channels, 1)
        self.body = nn.Sequential(*(ResidualBlockShift(channels) for _ in range(num_blocks)))
        # x4 is two x2 layers, as in the official code.
        self.upconv1 = up(channels, 2 if scale == 4 else scale)
        if scale == 4:
            self.upconv2 = up(channels, 2)
        self.conv_hr = nn.Conv2d(channels, channels, 1)
        self.conv_last = nn.Conv2d(channels, 3, 1)
        scaled_kaiming_(self, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(F.leaky_relu(self.conv_first(x), 0.1))
        out = F.leaky_relu(self.upconv1(out), 0.1)
        if self.scale == 4:
            out = F.leaky_relu(self.upconv2(out), 0.1)
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


@register_model(
    ModelInfo(
        paper="Wu et al., Fully 1x1 Convolutional Network for Lightweight Image Super-Resolution (SCNet), "
        "Machine Intelligence Research 2024",
        origin="https://github.com/Aitical/SCNet",
        licence="CC-BY-NC-4.0",
        scales=(2, 3, 4),
        # One pixel per shift: the body's blocks, one per up-sampling layer, the bilinear skip.
        receptive_radius=lambda a: a["num_blocks"] + 3,
    )
)
def scnet_t(*, scale: int, channels: int = 64, num_blocks: int = 16, pixel_shuffle: bool = False) -> SCNet:
    """SCNet-T (64 features, 16 blocks); ``pixel_shuffle=True`` is the official ``-PS`` test option."""
    return SCNet(scale=scale, channels=channels, num_blocks=num_blocks, pixel_shuffle=pixel_shuffle)
