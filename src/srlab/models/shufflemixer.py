"""ShuffleMixer: large depth-wise kernels and channel splitting/shuffling for lightweight SR.

Paper: Long Sun, Jinshan Pan, Jinhui Tang, "ShuffleMixer: An Efficient ConvNet for Image
Super-Resolution", NeurIPS 2022. Official code: sunny2109/ShuffleMixer (MIT licence, per the README
badge and the repository's top-level MIT licence file; the bundled BasicSR framework is Apache-2.0),
``basicsr/archs/shufflemixer_arch.py`` (class ``ShuffleMixer``), read at commit 9173c4b.

Structure: a bias-free 3x3 conv (3 -> C), five feature-mixing blocks, a 1x1-conv + PixelShuffle + SiLU
upsampler (two x2 stages at x4, one stage otherwise) and a 3x3 conv to RGB, plus a bilinearly upsampled
copy of the input (``align_corners=False``). Each feature-mixing block is two shuffle-mixing layers
(with a residual around the pair) followed by a 3x3 conv (C -> C+16) + SiLU + 1x1 conv (residual). A
shuffle-mixing layer is: channel LayerNorm -> split point-wise MLP (1x1 convs on the first half of the
channels, the second half passed through, then a channel shuffle with 8 groups) + residual; a
depth-wise KxK conv; and the same again with a second norm and MLP. Base: C=64, K=7; tiny: C=32, K=3.

Input and output are RGB in [0, 1], as in the official code (no mean shift, no 255 scaling).
Module and parameter names are the official ones, including the misspelt ``upsapling``, so official
checkpoints load strictly.

Deviations from the official code (none change the function or the state dict): the channel
LayerNorm (``BiasFree_LayerNorm``, which despite its name subtracts the mean) is
:class:`srlab.layers.LayerNorm2d` (``F.layer_norm``; eps 1e-5, weight, no bias) instead of by hand,
which also keeps the variance in float32 under half precision; SiLUs are not in-place; the channel
shuffle uses view/transpose instead of einops.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.norm import LayerNorm2d
from srlab.models.registry import ModelInfo, register_model

SHUFFLE_GROUPS = 8


def channel_layer_norm(channels: int) -> nn.Sequential:
    """Channel LayerNorm (eps 1e-5, weight, no bias) under the official nesting ``norm.body.weight``."""
    return nn.Sequential(OrderedDict(body=LayerNorm2d(channels, eps=1e-5, bias=False)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel ``g * (C/groups) + d`` moves to ``d * groups + g`` (einops 'b (g d) h w -> b (d g) h w')."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class SplitPointMlp(nn.Module):
    """1x1-conv MLP on the first half of the channels; the second half is passed through; then shuffle."""

    def __init__(self, channels: int, mlp_ratio: int) -> None:
        super().__init__()
        if channels % 2 or channels % SHUFFLE_GROUPS:
            raise ValueError(f"channels must be a multiple of {SHUFFLE_GROUPS}, got {channels}")
        half = channels // 2
        hidden = int(half * mlp_ratio)
        self.fc = nn.Sequential(nn.Conv2d(half, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed, passed = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((self.fc(mixed), passed), dim=1), SHUFFLE_GROUPS)


class SMLayer(nn.Module):
    """Shuffle mixing layer: norm -> split MLP (+res), depth-wise KxK conv, norm -> split MLP (+res)."""

    def __init__(self, channels: int, kernel_size: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = channel_layer_norm(channels)
        self.norm2 = channel_layer_norm(channels)
        self.spatial = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.mlp1 = SplitPointMlp(channels, mlp_ratio)
        self.mlp2 = SplitPointMlp(channels, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp1(self.norm1(x)) + x
        x = self.spatial(x)
        return self.mlp2(self.norm2(x)) + x


class FMBlock(nn.Module):
    """Feature mixing block: two shuffle mixing layers (+res), then 3x3 conv + SiLU + 1x1 conv (+res)."""

    def __init__(self, channels: int, kernel_size: int, mlp_ratio: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            SMLayer(channels, kernel_size, mlp_ratio), SMLayer(channels, kernel_size, mlp_ratio)
        )
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels + 16, 3, padding=1), nn.SiLU(), nn.Conv2d(channels + 16, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net(x) + x
        return self.conv(x) + x


def _upsampler(channels: int, scale: int) -> nn.Sequential:
    """1x1 conv + PixelShuffle + SiLU; x4 as two x2 stages (official indices 0..2, 3..5)."""
    stages = [2, 2] if scale == 4 else [scale]
    layers: list[nn.Module] = []
    for s in stages:
        layers += [nn.Conv2d(channels, channels * s * s, 1), nn.PixelShuffle(s), nn.SiLU()]
    return nn.Sequential(*layers)


class ShuffleMixer(nn.Module):
    def __init__(self, *, scale: int, n_feats: int, kernel_size: int, n_blocks: int, mlp_ratio: int) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.scale = scale
        self.to_feat = nn.Conv2d(3, n_feats, 3, padding=1, bias=False)
        self.blocks = nn.Sequential(*(FMBlock(n_feats, kernel_size, mlp_ratio) for _ in range(n_blocks)))
        self.upsapling = _upsampler(n_feats, scale)  # (sic) the official name
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.to_feat(x))
        residual = self.tail(self.upsapling(features))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return residual + base


def _info() -> ModelInfo:
    # LR-pixel reach: head 3x3 (1) + per block two depth-wise KxK convs and one 3x3 conv; the HR tail
    # 3x3 and the bilinear base add at most 1 LR pixel each; +2 spare.
    return ModelInfo(
        paper="Sun, Pan, Tang, 'ShuffleMixer: An Efficient ConvNet for Image Super-Resolution', NeurIPS 2022",
        origin="https://github.com/sunny2109/ShuffleMixer",
        licence="MIT",
        scales=(2, 3, 4),
        size_multiple=1,  # padded convs and pixel shuffle only: any input size
        receptive_radius=lambda a: 1 + a["n_blocks"] * (2 * (a["kernel_size"] // 2) + 1) + 2 + 2,
        reparameterizable=False,
        # LayerNorm statistics are computed by F.layer_norm (float32 accumulation under half); not
        # verified with trained weights (none are available locally).
        half_precision_safe=True,
    )


@register_model(_info())
def shufflemixer_tiny(
    *, scale: int, n_feats: int = 32, kernel_size: int = 3, n_blocks: int = 5, mlp_ratio: int = 2
) -> ShuffleMixer:
    """ShuffleMixer-Tiny: 32 channels, 3x3 depth-wise kernels (~0.11 M parameters)."""
    return ShuffleMixer(
        scale=scale, n_feats=n_feats, kernel_size=kernel_size, n_blocks=n_blocks, mlp_ratio=mlp_ratio
    )


@register_model(_info())
def shufflemixer(
    *, scale: int, n_feats: int = 64, kernel_size: int = 7, n_blocks: int = 5, mlp_ratio: int = 2
) -> ShuffleMixer:
    """ShuffleMixer (base): 64 channels, 7x7 depth-wise kernels (~0.4 M parameters)."""
    return ShuffleMixer(
        scale=scale, n_feats=n_feats, kernel_size=kernel_size, n_blocks=n_blocks, mlp_ratio=mlp_ratio
    )
