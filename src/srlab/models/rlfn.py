"""RLFN: Residual Local Feature Network.

Paper: Kong et al., "Residual Local Feature Network for Efficient Super-Resolution", CVPR 2022
Workshops (NTIRE 2022 Efficient SR challenge, winner of the main/runtime track as team ByteESR).
Official repository: bytedance/RLFN (Apache-2.0), ``model/rlfn.py`` (``RLFN``), ``model/rlfn_s.py``
(``RLFN_S``), ``model/rlfn_ntire.py`` (``RLFN_Prune``), blocks in ``model/block.py``. This file is
written from that structure; module and parameter names equal the official ones so the released
checkpoints (``model_zoo/*.pth``, plain state dicts) load with strict key matching.

Structure: a 3x3 conv (3 -> C) gives the shallow features; a chain of residual local feature blocks
(RLFB: three 3x3 conv + LeakyReLU(0.05) stages, C -> M -> M -> C, added to the block input, then a
1x1 conv and an ESA gate) follows; a 3x3 conv on the last block's output is added to the shallow
features and a 3x3 conv to 3*s^2 channels + PixelShuffle(s) gives the output. No global upsampled
skip, no mean shift.

RLFN's ESA is lighter than RFANet's (``srlab.layers.ESA``): after the strided conv and 7x7/3 max pool
it applies a single 3x3 conv (no ``conv_max``/``conv3_``, no ReLUs), so it is written here with the
official parameter names ``conv1, conv_f, conv2, conv3, conv4``.

Variants: ``rlfn`` (C=52, 6 blocks), ``rlfn_s`` (C=48, 6 blocks), ``rlfn_ntire`` (the pruned NTIRE
2022 x4 model ``RLFN_Prune``: C=46, block middle width M=48, 4 blocks). The official repository
releases x2/x4 weights for RLFN and RLFN-S and x4 for RLFN_ntire; x3 builds but has no weights.

Deviation from the official code (interface only): every released checkpoint expects RGB in [0, 255]
(the official test scripts multiply by 255 and divide the output by 255). ``forward`` here takes and
returns RGB in [0, 1] and does that scaling inside, with a plain Python constant, so the state dict is
unchanged. ESA's unpadded strided conv and 7x7 pool need at least 15x15 pixels: smaller inputs (tiles,
thumbnails), on which the official code fails, have the mask branch's input replicate-padded to 15.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.attention import ESA_MIN_SIDE, pad_to_min_side
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model

# The released weights were trained on 0-255 images.
_PIXEL_RANGE = 255.0


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """A 'same'-padded convolution with bias (the official ``conv_layer``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)


class RLFNESA(nn.Module):
    """RLFN's enhanced spatial attention: 1x1 reduce, 3x3/2 conv, 7x7/3 max pool, one 3x3 conv,
    bilinear upsampling back to the input size, plus a 1x1 skip on the reduced features, 1x1 expand,
    sigmoid gate."""

    def __init__(self, esa_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, esa_channels, 1)
        self.conv_f = nn.Conv2d(esa_channels, esa_channels, 1)
        self.conv2 = nn.Conv2d(esa_channels, esa_channels, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(esa_channels, esa_channels, 3, padding=1)
        self.conv4 = nn.Conv2d(esa_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        coarse = F.max_pool2d(self.conv2(pad_to_min_side(reduced, ESA_MIN_SIDE)), kernel_size=7, stride=3)
        coarse = self.conv3(coarse)
        coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        mask = torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))
        return x * mask


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 conv + LeakyReLU stages with a residual, then 1x1 + ESA."""

    def __init__(self, channels: int, mid_channels: int, *, esa_channels: int = 16) -> None:
        super().__init__()
        self.c1_r = _conv(channels, mid_channels, 3)
        self.c2_r = _conv(mid_channels, mid_channels, 3)
        self.c3_r = _conv(mid_channels, channels, 3)
        self.c5 = _conv(channels, channels, 1)
        self.esa = RLFNESA(esa_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.c1_r(x), 0.05)
        out = F.leaky_relu(self.c2_r(out), 0.05)
        out = F.leaky_relu(self.c3_r(out), 0.05)
        return self.esa(self.c5(out + x))


class RLFN(nn.Module):
    """RLFN / RLFN-S / RLFN_Prune; blocks are attributes ``block_1 .. block_N`` as in the official code."""

    def __init__(
        self, *, scale: int, channels: int, mid_channels: int, num_blocks: int, esa_channels: int,
        upsampler: str = "subpixel",
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.conv_1 = _conv(3, channels, 3)
        for i in range(1, num_blocks + 1):
            self.add_module(f"block_{i}", RLFB(channels, mid_channels, esa_channels=esa_channels))
        self.conv_2 = _conv(channels, channels, 3)
        self.upsampler = image_head(upsampler, in_channels=channels, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.conv_1(x * _PIXEL_RANGE)
        features = shallow
        for i in range(1, self.num_blocks + 1):
            features = getattr(self, f"block_{i}")(features)
        return self.upsampler(self.conv_2(features) + shallow) / _PIXEL_RANGE


# One ESA looks at most ~32 LR pixels away: the 3x3/2 conv, 7x7/3 pool and 3x3 conv span +-13 px
# around a coarse cell, bilinear upsampling mixes neighbouring cells 6 px apart, and resizing the
# coarse map to the input size shifts cells by up to ~12 px. Each block adds 3 px for its 3x3 convs.
_ESA_RADIUS = 32


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Widths from the first block's convolutions, depth from the blocks' names (``block_i``)."""
    return {
        "channels": weights["conv_1.weight"].shape[0],
        "mid_channels": weights["block_1.c1_r.weight"].shape[0],
        "num_blocks": len({k.split(".")[0] for k in weights if k.startswith("block_")}),
        "esa_channels": weights["block_1.esa.conv1.weight"].shape[0],
    }


def _info() -> ModelInfo:
    return ModelInfo(
        paper="Kong et al., 'Residual Local Feature Network for Efficient Super-Resolution', CVPRW 2022",
        origin="https://github.com/bytedance/RLFN",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        size_multiple=1,
        # conv_1, conv_2 and the upsampler conv (3 px) plus, per block, 3 convs and one ESA.
        receptive_radius=lambda a: 3 + a["num_blocks"] * (3 + _ESA_RADIUS),
        reparameterizable=False,
        half_precision_safe=True,
        args_from_weights=_args_from_weights,
    )


@register_model(_info())
def rlfn(
    *, scale: int, channels: int = 52, num_blocks: int = 6, esa_channels: int = 16, upsampler: str = "subpixel"
) -> RLFN:
    """RLFN (official ``RLFN(feature_channels=52)``), ~527K parameters at x2."""
    return RLFN(
        scale=scale,
        channels=channels,
        mid_channels=channels,
        num_blocks=num_blocks,
        esa_channels=esa_channels,
        upsampler=upsampler,
    )


@register_model(_info())
def rlfn_s(
    *, scale: int, channels: int = 48, num_blocks: int = 6, esa_channels: int = 16, upsampler: str = "subpixel"
) -> RLFN:
    """RLFN-S (official ``RLFN_S(feature_channels=48)``), ~455K parameters at x2."""
    return RLFN(
        scale=scale,
        channels=channels,
        mid_channels=channels,
        num_blocks=num_blocks,
        esa_channels=esa_channels,
        upsampler=upsampler,
    )


@register_model(_info())
def rlfn_ntire(
    *, scale: int, channels: int = 46, mid_channels: int = 48, num_blocks: int = 4, esa_channels: int = 16,
    upsampler: str = "subpixel",
) -> RLFN:
    """The pruned NTIRE 2022 x4 model (official ``RLFN_Prune(feature_channels=46, mid_channels=48)``)."""
    return RLFN(
        scale=scale,
        channels=channels,
        mid_channels=mid_channels,
        num_blocks=num_blocks,
        esa_channels=esa_channels,
        upsampler=upsampler,
    )
