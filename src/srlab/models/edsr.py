"""EDSR: Enhanced Deep Residual Networks (EDSR-baseline and the full EDSR).

Paper: Lim, Son, Kim, Nah and Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPRW 2017 (NTIRE 2017). Official code: sanghyun-son/EDSR-PyTorch (MIT),
``src/model/edsr.py`` and ``src/model/common.py``; module structure and parameter names are theirs:
``sub_mean`` / ``add_mean`` (frozen 1x1 MeanShift convs: identity weight, bias -/+ 255 x the DIV2K
RGB mean), ``head.0`` (3x3 conv 3 -> C), ``body.0 .. body.{n-1}`` residual blocks (``body.i.body.0``
conv, ReLU, ``body.i.body.2`` conv, scaled by ``res_scale`` and added), ``body.n`` (3x3 conv; a
global skip adds the head's output), ``tail.0`` (upsampler: conv to 4C + PixelShuffle(2) per factor of
2, or conv to 9C + PixelShuffle(3)) and ``tail.1`` (3x3 conv C -> 3).

The official models take RGB in [0, 255] (``rgb_range=255``); here ``forward`` takes [0, 1] and
multiplies by 255 before ``sub_mean`` and divides by 255 after ``add_mean``. The MeanShift weights
are parameters with ``requires_grad=False`` as in the official code, so official checkpoints load
strictly; the paper's parameter counts are the trainable ones (they exclude these 24 numbers).

Normalisation (``norm=NAME``, one of :data:`srlab.layers.norm.NORMS`; default ``none``, EDSR's own block,
which the official weights need): the official ``common.ResBlock(bn=True)`` layout, i.e. SRResNet's
block that EDSR removed BatchNorm from: conv, norm, ReLU, conv, norm (keys ``body.i.body.0`` conv,
``.1`` norm, ``.3`` conv, ``.4`` norm). With ``norm=instance`` the model refuses tiles (its statistics
are the whole image's).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srlab.layers.mean_shift import MeanShift
from srlab.layers.norm import build_norm, norm_tiling_refusal
from srlab.layers.upsamplers import ProgressiveUpsampler
from srlab.models.registry import ModelInfo, register_model

# The official pixel range; its MeanShift layers shift by range x DIV2K_RGB_MEAN (std 1).
_RGB_RANGE = 255.0


class ResBlock(nn.Module):
    def __init__(self, channels: int, *, res_scale: float, norm: str = "none") -> None:
        super().__init__()
        conv1, conv2 = (nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2))
        if norm == "none":  # the official bn=False indices (conv 0, ReLU 1, conv 2) that official weights name
            self.body = nn.Sequential(conv1, nn.ReLU(inplace=True), conv2)
        else:
            self.body = nn.Sequential(
                conv1, build_norm(norm, channels), nn.ReLU(inplace=True), conv2, build_norm(norm, channels)
            )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.res_scale + x


class EDSR(nn.Module):
    def __init__(self, *, scale: int, channels: int, num_blocks: int, res_scale: float, norm: str = "none") -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = MeanShift(_RGB_RANGE, sign=-1)
        self.add_mean = MeanShift(_RGB_RANGE, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1))
        self.body = nn.Sequential(
            *(ResBlock(channels, res_scale=res_scale, norm=norm) for _ in range(num_blocks)),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.tail = nn.Sequential(ProgressiveUpsampler(channels, scale), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * _RGB_RANGE))
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / _RGB_RANGE


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Channels from the head convolution, blocks from the residual blocks' indices (``body.i.body.*``)."""
    blocks = {k.split(".")[1] for k in weights if k.startswith("body.") and ".body." in k}
    return {"channels": weights["head.0.weight"].shape[0], "num_blocks": len(blocks)}


def _info() -> ModelInfo:
    return ModelInfo(
        paper="Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution (CVPRW 2017)",
        origin="https://github.com/sanghyun-son/EDSR-PyTorch",
        licence="MIT",
        scales=(2, 3, 4),
        size_multiple=1,
        # head + 2 convs per block + body conv + upsampler conv + tail conv (<= 1 LR px each).
        receptive_radius=lambda a: 2 * a["num_blocks"] + 8,
        tiling_refusal=lambda a: norm_tiling_refusal(a["norm"]),
        reparameterizable=False,
        half_precision_safe=True,
        args_from_weights=_args_from_weights,
    )


@register_model(_info())
def edsr_baseline(
    *, scale: int, channels: int = 64, num_blocks: int = 16, res_scale: float = 1.0, norm: str = "none"
) -> EDSR:
    """EDSR-baseline: 16 blocks, 64 channels, no residual scaling (1.37M / 1.55M / 1.52M)."""
    return EDSR(scale=scale, channels=channels, num_blocks=num_blocks, res_scale=res_scale, norm=norm)


@register_model(_info())
def edsr(
    *, scale: int, channels: int = 256, num_blocks: int = 32, res_scale: float = 0.1, norm: str = "none"
) -> EDSR:
    """The full EDSR: 32 blocks, 256 channels, residual scaling 0.1 (40.7M / 43.7M / 43.1M)."""
    return EDSR(scale=scale, channels=channels, num_blocks=num_blocks, res_scale=res_scale, norm=norm)
