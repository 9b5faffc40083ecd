"""BSRN and BSRN-S: the blueprint separable residual network.

Paper: Zheyuan Li, Yingqi Liu, Xiangyu Chen, Haoming Cai, Jinjin Gu, Yu Qiao, Chao Dong, "Blueprint
Separable Residual Network for Efficient Image Super-Resolution", CVPR Workshops (NTIRE) 2022.
Official code: xiaom233/BSRN (MIT licence), BasicSR-based: ``basicsr/archs/BSRN_arch.py`` -> ``BSRN`` and,
for BSRN-S (the NTIRE 2022 ESR model-complexity winner), ``basicsr/archs/rfdnfinalB5_arch.py`` ->
``RFDNFINALB5`` with ``basicsr/archs/Blocks.py`` and ``Upsamplers.py``. This is an independent
implementation written from the paper and the official module structure, so that the official
checkpoints (``experiments/pretrained_models/net_g_BSRN_x{2,3,4}.pth`` and ``net_g_BSRN-S.pth``, BasicSR
``{'params': ...}``) load with strict key matching.

Structure: the input is repeated four times along the channels (3 -> 12) and a blueprint separable
convolution (BSConv-U: a 1x1 point-wise conv followed by a 3x3 depth-wise conv) gives the shallow
features. ``num_block`` efficient separable distillation blocks (ESDB) follow. Each ESDB runs three
residual BSConv stages (``c{i}_r``, GELU after adding the stage input), distils half of the channels with
a 1x1 conv + GELU (``c{i}_d``) before each stage, and a last BSConv (``c4``) + GELU; the four distilled
parts are concatenated, fused by a 1x1 conv (``c5``), re-weighted by enhanced spatial attention (ESA,
with BSConvs and GELU) and by contrast-aware channel attention (CCA), and added to the block input. All
block outputs are concatenated, fused by a 1x1 conv + GELU, passed through a BSConv with a global skip
from the shallow features, and upsampled by one 3x3 conv to 3*s^2 channels + PixelShuffle(s).

BSRN-S (official ``RFDNFINALB5(num_feat=48, num_block=5)``) differs: its point-wise convs are
``nn.Linear`` layers with bias (2-D weights in the checkpoint), the ESA's strided conv is a plain 3x3
conv, the blocks have no CCA but a learned per-channel scale ``cw`` followed by a point-wise ``conv_out``
after the ESA.

Input and output are RGB in [0, 1], as the official model (BasicSR feeds ``img / 255``, no mean shift).

Deviations from the official code (numerics only, no change to the function or the parameters):
BSRN-S's ``nn.Linear`` point-wise layers are applied as 1x1 convolutions on NCHW tensors instead of
permuting to channels-last; the CCA's channel mean and standard deviation use ``mean`` instead of
``sum / (H*W)``, which avoids overflowing half-precision sums on large images. CCA pools over the whole
image, so tiled inference cannot reproduce untiled inference exactly.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers import ContrastChannelAttention
from srlab.layers.upsamplers import image_head
from srlab.layers.attention import ESA_MIN_SIDE, pad_to_min_side
from srlab.models.registry import ModelInfo, register_model


class PointwiseLinear(nn.Linear):
    """A per-pixel linear map over channels, stored as ``nn.Linear`` (BSRN-S's checkpoint layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


def _pointwise(in_channels: int, out_channels: int, *, linear: bool, bias: bool = True) -> nn.Module:
    if linear:
        return PointwiseLinear(in_channels, out_channels, bias=bias)
    return nn.Conv2d(in_channels, out_channels, 1, bias=bias)


class BSConvU(nn.Module):
    """Unconstrained blueprint separable conv: 1x1 point-wise (``pw``) then depth-wise k x k (``dw``).

    In BSRN the point-wise conv has no bias; in BSRN-S it is an ``nn.Linear`` with bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        linear: bool = False,
    ) -> None:
        super().__init__()
        self.pw = _pointwise(in_channels, out_channels, linear=linear, bias=linear)
        self.dw = nn.Conv2d(
            out_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=out_channels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(self.pw(x))


class BSRNESA(nn.Module):
    """BSRN's enhanced spatial attention.

    Same parameter names as ``srlab.layers.ESA`` but a different structure: the 3x3 convs are BSConvs
    (``conv_max``, ``conv3``, ``conv3_`` and, in BSRN, the stride-2 ``conv2``), the activations are GELU
    and, in BSRN-S, the 1x1 convs are ``nn.Linear`` layers. The mask branch is unpadded (strided conv,
    7x7/3 max pool) and upsampled bilinearly to the input size, as in RFANet's original.
    """

    def __init__(self, channels: int, *, linear: bool = False) -> None:
        super().__init__()
        f = channels // 4
        self.conv1 = _pointwise(channels, f, linear=linear)
        self.conv_f = _pointwise(f, f, linear=linear)
        self.conv_max = BSConvU(f, f, linear=linear)
        if linear:  # BSRN-S: a plain strided conv
            self.conv2: nn.Module = nn.Conv2d(f, f, 3, stride=2, padding=0)
        else:
            self.conv2 = BSConvU(f, f, stride=2, padding=0)
        self.conv3 = BSConvU(f, f, linear=linear)
        self.conv3_ = BSConvU(f, f, linear=linear)
        self.conv4 = _pointwise(f, channels, linear=linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        coarse = F.max_pool2d(self.conv2(pad_to_min_side(reduced, ESA_MIN_SIDE)), kernel_size=7, stride=3)
        coarse = F.gelu(self.conv_max(coarse))
        coarse = self.conv3_(F.gelu(self.conv3(coarse)))
        coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))


class ESDB(nn.Module):
    """Efficient separable distillation block (BSRN's ``ESDB``; BSRN-S's ``RFDB`` with ``linear=True``)."""

    def __init__(self, channels: int, *, linear: bool = False) -> None:
        super().__init__()
        self.linear = linear
        distilled = channels // 2
        if linear:
            # Learned per-channel scale (applied after ESA); registered first, as in the checkpoint.
            self.cw = nn.Parameter(torch.normal(mean=1.0, std=0.2, size=(1, channels)))
        self.c1_d = _pointwise(channels, distilled, linear=linear)
        self.c1_r = BSConvU(channels, channels, linear=linear)
        self.c2_d = _pointwise(channels, distilled, linear=linear)
        self.c2_r = BSConvU(channels, channels, linear=linear)
        self.c3_d = _pointwise(channels, distilled, linear=linear)
        self.c3_r = BSConvU(channels, channels, linear=linear)
        self.c4 = BSConvU(channels, distilled, linear=linear)
        self.c5 = _pointwise(4 * distilled, channels, linear=linear)
        self.esa = BSRNESA(channels, linear=linear)
        if linear:
            self.conv_out = PointwiseLinear(channels, channels)
        else:
            self.cca = ContrastChannelAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        features = x
        for distil, refine in ((self.c1_d, self.c1_r), (self.c2_d, self.c2_r), (self.c3_d, self.c3_r)):
            parts.append(F.gelu(distil(features)))
            features = F.gelu(refine(features) + features)
        parts.append(F.gelu(self.c4(features)))
        out = self.esa(self.c5(torch.cat(parts, dim=1)))
        if self.linear:
            out = self.conv_out(out * self.cw[:, :, None, None])
        else:
            out = self.cca(out)
        return out + x


class BSRN(nn.Module):
    """BSRN (``linear=False``) and BSRN-S (``linear=True``); blocks are attributes ``B1`` .. ``BN``."""

    def __init__(
        self, *, scale: int, num_feat: int, num_block: int, linear: bool = False, upsampler: str = "subpixel"
    ) -> None:
        super().__init__()
        if num_feat % 4 or num_feat < 16:
            raise ValueError(f"num_feat must be a multiple of 4 and >= 16, got {num_feat}")
        self.scale = scale
        self.num_block = num_block
        self.fea_conv = BSConvU(3 * 4, num_feat, linear=linear)
        for i in range(1, num_block + 1):
            setattr(self, f"B{i}", ESDB(num_feat, linear=linear))
        self.c1 = _pointwise(num_feat * num_block, num_feat, linear=linear)
        self.c2 = BSConvU(num_feat, num_feat, linear=linear)
        # the official pixelshuffledirect (by default): keys upsampler.upsampleOneStep.0.*
        head = image_head(upsampler, in_channels=num_feat, scale=scale)
        self.upsampler = nn.Sequential(OrderedDict(upsampleOneStep=head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.fea_conv(torch.cat((x, x, x, x), dim=1))
        features = shallow
        outputs = []
        for i in range(1, self.num_block + 1):
            features = getattr(self, f"B{i}")(features)
            outputs.append(features)
        fused = F.gelu(self.c1(torch.cat(outputs, dim=1)))
        return self.upsampler(self.c2(fused) + shallow)


_PAPER = (
    "Li et al., 'Blueprint Separable Residual Network for Efficient Image Super-Resolution', "
    "CVPR Workshops 2022"
)


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Width from the first (blueprint) convolution, depth from the blocks' names (``Bi``)."""
    return {
        "num_feat": weights["fea_conv.pw.weight"].shape[0],
        "num_block": sum(1 for k in weights if re.fullmatch(r"B\d+\.c1_d\.weight", k)),
    }


def _info(scales: tuple[int, ...]) -> ModelInfo:
    return ModelInfo(
        paper=_PAPER,
        origin="https://github.com/xiaom233/BSRN",
        licence="MIT",
        scales=scales,
        size_multiple=1,
        # Per block: four 3x3 convs (4 px) plus ESA, whose mask looks ~40 LR px away (strided conv,
        # 7x7/3 max pool, three 3x3 convs on the 1/6 grid, bilinear upsampling); + fea_conv, c2 and the
        # upsampler. CCA pools globally, so no finite overlap makes tiling exact.
        receptive_radius=lambda a: 44 * a["num_block"] + 3,
        reparameterizable=False,
        # With mean-based CCA statistics (no large fp16 sums), float16 matches float32 to 2.2e-3 (BSRN)
        # and 2.4e-3 (BSRN-S) on Set5 baby x4 with the official weights (measured on CPU).
        half_precision_safe=True,
        args_from_weights=_args_from_weights,
    )


@register_model(_info((2, 3, 4)))
def bsrn(*, scale: int, num_feat: int = 64, num_block: int = 8, upsampler: str = "subpixel") -> BSRN:
    """The paper's BSRN (official ``BSRN(num_feat=64, num_block=8)``): 332K / 340K / 352K parameters."""
    return BSRN(scale=scale, num_feat=num_feat, num_block=num_block, upsampler=upsampler)


@register_model(_info((4,)))
def bsrn_s(*, scale: int, num_feat: int = 48, num_block: int = 5, upsampler: str = "subpixel") -> BSRN:
    """BSRN-S, the NTIRE 2022 ESR entry (official ``RFDNFINALB5(num_feat=48, num_block=5)``): 156K at x4."""
    return BSRN(scale=scale, num_feat=num_feat, num_block=num_block, linear=True, upsampler=upsampler)
