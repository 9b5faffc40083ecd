"""RFDN: the residual feature distillation network.

Paper: Jie Liu, Jie Tang, Gangshan Wu, "Residual Feature Distillation Network for Lightweight Image
Super-Resolution", ECCV 2020 Workshops (AIM 2020 efficient SR challenge winner).
Official code: njulj/RFDN (MIT licence; ``RFDN.py`` -> ``RFDN``, blocks in ``block.py``). This is an
independent implementation written from the paper and the official module structure, so that the
released checkpoint ``trained_model/RFDN_AIM.pth`` loads with strict key matching.

Structure: a 3x3 conv (3 -> nf) gives the shallow features; residual feature distillation blocks
(RFDB, official attribute names ``B1``, ``B2``, ...) follow. In each RFDB three stages each take a
1x1 "distilled" branch (nf -> nf/2, LeakyReLU 0.05) and a shallow residual block (3x3 conv nf -> nf plus
identity, then LeakyReLU) that feeds the next stage; a last 3x3 conv (nf -> nf/2, LeakyReLU) ends the
chain. The four nf/2 outputs are concatenated, fused by a 1x1 conv and gated by enhanced spatial
attention (ESA, :class:`srlab.layers.ESA` with ``grid_aligned=False``, RFANet's original). The RFDB
has no block-level skip (as the official code). All block outputs are concatenated, fused by a 1x1
conv + LeakyReLU, passed through a 3x3 conv with a global skip from the shallow features, and
upsampled by one 3x3 conv to 3*s^2 channels + PixelShuffle(s).

Variants: ``rfdn`` (the paper's RFDN, nf=48, 6 RFDBs) and ``rfdn_l`` (RFDN-L, nf=52, 6 RFDBs) - no
weights were released for either; ``rfdn_aim`` (the released AIM 2020 model, nf=50, 4 RFDBs, x4).

Input and output are RGB in [0, 1]. The released AIM checkpoint was trained on [0, 255] input
(official ``test.py`` feeds uint8 values as floats), so ``rfdn_aim`` multiplies its input by 255 and
divides its output by 255 inside ``forward``; the paper variants, which have no released weights,
work on [0, 1] directly.

Deviations from the official code: the official ``RFDN`` builds its upsampler for x4 whatever
``upscale`` says (only x4 was released); here the upsampler follows ``scale``, so the x2/x3 paper
variants are the networks the paper describes. The ESA's strided conv and 7x7/3 max pool are unpadded
(as the official); inputs under 15x15 LR pixels, where the official code fails, have the mask branch's
input replicate-padded to 15 (``srlab.layers.ESA``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers import ESA
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model

_NEG_SLOPE = 0.05  # the official LeakyReLU slope


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, _NEG_SLOPE)


class RFDB(nn.Module):
    """Residual feature distillation block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        distilled = channels // 2
        self.c1_d = nn.Conv2d(channels, distilled, 1)
        self.c1_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2_d = nn.Conv2d(channels, distilled, 1)
        self.c2_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c3_d = nn.Conv2d(channels, distilled, 1)
        self.c3_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c4 = nn.Conv2d(channels, distilled, 3, padding=1)
        self.c5 = nn.Conv2d(4 * distilled, channels, 1)
        self.esa = ESA(channels, grid_aligned=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = _lrelu(self.c1_d(x))
        r1 = _lrelu(self.c1_r(x) + x)
        d2 = _lrelu(self.c2_d(r1))
        r2 = _lrelu(self.c2_r(r1) + r1)
        d3 = _lrelu(self.c3_d(r2))
        r3 = _lrelu(self.c3_r(r2) + r2)
        d4 = _lrelu(self.c4(r3))
        return self.esa(self.c5(torch.cat((d1, d2, d3, d4), dim=1)))


class RFDN(nn.Module):
    def __init__(
        self, *, scale: int, channels: int, num_modules: int, rgb_range: float = 1.0, upsampler: str = "subpixel"
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_modules = num_modules
        self.rgb_range = float(rgb_range)  # a python constant: the value range the weights expect
        self.fea_conv = nn.Conv2d(3, channels, 3, padding=1)
        for i in range(1, num_modules + 1):
            self.add_module(f"B{i}", RFDB(channels))
        self.c = nn.Sequential(nn.Conv2d(num_modules * channels, channels, 1), nn.LeakyReLU(_NEG_SLOPE))
        self.LR_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsampler = image_head(upsampler, in_channels=channels, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rgb_range != 1.0:
            x = x * self.rgb_range  # a new tensor: the caller's input is left untouched
        shallow = self.fea_conv(x)
        features = shallow
        outputs = []
        for i in range(1, self.num_modules + 1):
            features = getattr(self, f"B{i}")(features)
            outputs.append(features)
        fused = self.LR_conv(self.c(torch.cat(outputs, dim=1))) + shallow
        out = self.upsampler(fused)
        if self.rgb_range != 1.0:
            out = out / self.rgb_range
        return out


_PAPER = (
    "Liu et al., 'Residual Feature Distillation Network for Lightweight Image Super-Resolution', "
    "ECCV 2020 Workshops"
)


def _info(scales: tuple[int, ...]) -> ModelInfo:
    return ModelInfo(
        paper=_PAPER,
        origin="https://github.com/njulj/RFDN",
        licence="MIT",
        scales=scales,
        size_multiple=1,
        # Per block: four 3x3 convs (4 px) plus ESA, whose mask looks ~40 LR px away (strided conv,
        # 7x7/3 max pool, three 3x3 convs on the 1/6 grid, bilinear upsampling); + head, LR_conv, tail.
        receptive_radius=lambda a: 44 * a["num_modules"] + 4,
        reparameterizable=False,
        half_precision_safe=True,
    )


@register_model(_info((2, 3, 4)))
def rfdn(*, scale: int, channels: int = 48, num_modules: int = 6, upsampler: str = "subpixel") -> RFDN:
    """The paper's RFDN (nf=48, 6 RFDBs): 534K / 541K / 550K parameters; no official weights."""
    return RFDN(scale=scale, channels=channels, num_modules=num_modules, upsampler=upsampler)


@register_model(_info((2, 3, 4)))
def rfdn_l(*, scale: int, channels: int = 52, num_modules: int = 6) -> RFDN:
    """The paper's RFDN-L (nf=52, 6 RFDBs): 626K / 633K / 643K parameters; no official weights."""
    return RFDN(scale=scale, channels=channels, num_modules=num_modules)


@register_model(_info((4,)))
def rfdn_aim(*, scale: int, channels: int = 50, num_modules: int = 4) -> RFDN:
    """The released AIM 2020 model (official ``RFDN()`` defaults, nf=50, 4 RFDBs, x4): 433,448
    parameters; its weights (``RFDN_AIM.pth``) expect [0, 255], converted inside ``forward``."""
    return RFDN(scale=scale, channels=channels, num_modules=num_modules, rgb_range=255.0)
