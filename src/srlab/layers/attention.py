"""Attention layers: channel, spatial and mixed (channel then spatial) attention.

ChannelAttention: Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks" (RCAN), ECCV 2018. ContrastChannelAttention: Hui et al., "Lightweight Image
Super-Resolution with Information Multi-distillation Network" (IMDN), ACM MM 2019, also used by BSRN.
ESA: Liu et al., "Residual Feature Aggregation Network for Image Super-Resolution" (RFANet), CVPR 2020,
as used by RFDN and RLFN. SpatialGate and MixedAttention: Woo et al., "CBAM: Convolutional Block
Attention Module", ECCV 2018 (official code Jongchan/attention-module, MIT; parameter names here are
srlab's, the official ones use a BatchNorm'd BasicConv and a Linear MLP).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation over channels: global average pool, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(self.pool(x)))))
        return x * gate


class CALayer(nn.Module):
    """RCAN's channel attention under its official parameter names (``conv_du.0`` squeeze, ``conv_du.2``
    excite), as SMSR and ESRT use it; the same computation as :class:`ChannelAttention`."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class ContrastChannelAttention(nn.Module):
    """IMDN's contrast-aware channel attention (official ``CCALayer``): gate = sigmoid(MLP(std + mean)).

    Parameter names follow the official code (``conv_du.0`` squeeze, ``conv_du.2`` excite). The mean and
    population standard deviation use ``mean()`` rather than the official ``sum / (H*W)``: equal in value,
    and no float16 overflow on large images.
    """

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.conv_du(std + mean)


# The unpadded mask branch (3x3 stride-2 conv, 7x7 stride-3 pool) needs at least 15 pixels per side.
ESA_MIN_SIDE = 15


def pad_to_min_side(x: torch.Tensor, side: int) -> torch.Tensor:
    """Replicate-pad the bottom/right of ``x`` to at least ``side`` pixels per side (a no-op when larger).

    Lets the original, unpadded ESA run on small images and tiles, where the official code fails.
    """
    pad_h, pad_w = max(0, side - x.shape[-2]), max(0, side - x.shape[-1])
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


class ESA(nn.Module):
    """Enhanced spatial attention: a cheap large-receptive-field mask computed at 1/6 resolution.

    The mask branch reduces channels (1x1), downsamples by 2 (strided 3x3 conv) and by 3 (7x7 max
    pool), applies a 3x3 conv group, and is upsampled back to the input size.

    ``grid_aligned=True`` pads the strided conv and the pool so that an input whose height and width
    are multiples of 6 maps onto an exact 6x coarser grid, and upsamples by exactly 6. Then the mask
    of a crop whose origin is a multiple of 6 equals the same region of the whole image's mask away
    from the crop's edges, which is what lets tiled inference reproduce untiled inference. RFANet's
    original (``grid_aligned=False``) uses unpadded layers and upsamples to the input size; inputs under
    15 pixels a side, where it fails, have the mask branch's input replicate-padded to 15.
    """

    def __init__(self, channels: int, *, reduction: int = 4, grid_aligned: bool = False) -> None:
        super().__init__()
        hidden = channels // reduction
        self.grid_aligned = grid_aligned
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.conv_f = nn.Conv2d(hidden, hidden, 1)
        self.conv_max = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride=2, padding=1 if grid_aligned else 0)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv3_ = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv4 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        coarse = self.conv2(reduced if self.grid_aligned else pad_to_min_side(reduced, ESA_MIN_SIDE))
        if self.grid_aligned:
            coarse = F.max_pool2d(coarse, kernel_size=7, stride=3, padding=3)
        else:
            coarse = F.max_pool2d(coarse, kernel_size=7, stride=3)
        coarse = F.relu(self.conv_max(coarse))
        coarse = F.relu(self.conv3(coarse))
        coarse = self.conv3_(coarse)
        if self.grid_aligned and x.shape[-2] % 6 == 0 and x.shape[-1] % 6 == 0:
            coarse = F.interpolate(coarse, scale_factor=6, mode="bilinear", align_corners=False)
        else:
            coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        mask = torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))
        return x * mask


class SpatialGate(nn.Module):
    """Spatial attention: a k x k conv over the channel-wise max and mean maps, sigmoid, multiply.

    Where ESA looks far through a strided, pooled branch, the gate weighs each position from its own
    and its neighbours' channel statistics: cheap, and local.
    """

    def __init__(self, *, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.conv(stats))


class MixedAttention(nn.Module):
    """Channel then spatial attention in one module (CBAM): the channel gate's MLP is shared by the
    average- and max-pooled descriptors, whose outputs are summed before the sigmoid."""

    def __init__(self, channels: int, *, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)
        self.spatial = SpatialGate(kernel_size=kernel_size)

    def _mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.excite(F.relu(self.squeeze(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        peak = x.amax(dim=(2, 3), keepdim=True)
        x = x * torch.sigmoid(self._mlp(avg) + self._mlp(peak))
        return self.spatial(x)
