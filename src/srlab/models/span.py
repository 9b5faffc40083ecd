"""SPAN: the swift parameter-free attention network.

Paper: Cheng Wan, Hongyuan Yu, Zhiqi Li, Yihang Chen, Yajun Zou, Yuqing Liu, Xuanwu Yin, Kunlong Zuo,
"Swift Parameter-free Attention Network for Efficient Super-Resolution", CVPR Workshops (NTIRE) 2024;
winner of the NTIRE 2024 efficient SR challenge (team XiaomiMM). Official code: hongyuanyu/SPAN
(Apache-2.0), BasicSR-based, ``basicsr/archs/span_arch.py`` -> ``SPAN`` (``Conv3XC``, ``SPAB``); the NTIRE
2024 submission is ``models/team38_SPAN.py`` -> ``SPAN30`` (28 channels, x4) in Amazingren/NTIRE2024_ESR,
released as the "slim" checkpoint ``model_zoo/team38_span_ch28_slim.pth``. This is an independent
implementation written from the paper and the official module structure, so that official checkpoints
load with strict key matching.

Structure: ``conv_1`` (3 -> C), six SPABs, ``conv_2`` on the last block's output, a 1x1 ``conv_cat``
fusing [conv_1 output, conv_2 output, block_1 output, SiLU of block_6's first conv] (4C -> C), and an
upsampler (3x3 conv to 3*s^2 channels + PixelShuffle). Each SPAB runs three Conv3XC with SiLU between
them and applies the parameter-free attention ``(out3 + x) * (sigmoid(out3) - 0.5)``. Every 3x3
convolution of the network is a Conv3XC:

* training form (:class:`SPAN`, official ``SPAN``): a 1x1 conv (C_in -> 2 C_in) on the zero-padded input,
  an unpadded 3x3 conv (-> 2 C_out), a 1x1 conv (-> C_out), plus a 1x1 skip conv ``sk``. The official
  module also holds ``eval_conv``, a frozen (``requires_grad=False``) 3x3 conv that eval mode refills with
  the fused kernel on every forward; it is part of the official state dict, so it is kept here too.
* deploy form (:class:`SPANForInference`, from :meth:`SPAN.deploy`): only ``eval_conv`` (trainable), so
  the state dict is the NTIRE slim checkpoint's (eval_conv + conv_cat + upsampler tensors).

The fusion is exact: the first 1x1 conv sees the zero-padded input, so the 3x3 conv's border holds the
1x1 conv's bias, which is what one 3x3 convolution with zero padding computes.

Input and output are RGB in [0, 1]: as in the official code the model subtracts the DIV2K mean and
multiplies by ``img_range = 255`` inside ``forward``; the output is not shifted back (the network learns
the output range). The mean is a non-persistent buffer (the official one is a plain attribute, absent
from the checkpoints).

Deviations from the official code (no change to the function or to the parameter names):

* the official SPAB applies ``SiLU(inplace=True)`` to the first conv's output, so the tensor it returns as
  ``out1`` (concatenated by ``conv_cat`` for block_6) is the activated one; this returns the activated
  tensor explicitly.
* in eval mode the training form convolves with the fused kernel computed from the branches (as the
  official ``update_params`` does) without writing it into ``eval_conv`` during ``forward``;
  ``eval_conv`` is refilled when the module is switched to eval mode (``.eval()``), and nothing reads it.
* in 16 bits (srlab's bf16 / fp16 inference paths, AMP training) the attention is computed in float32 and
  ``conv_cat`` runs as one 1x1 convolution per concatenated part, summed in float32: the same function
  with fewer roundings, and faster (:class:`ParameterFreeAttention`, :func:`_concatenated_1x1_in_float32`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.mean_shift import DIV2K_RGB_MEAN
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model
from srlab.models.reparam import conv_from, merge_1x1_then_kxk, pad_kernel

# The official ``img_range`` (its ``rgb_mean`` is DIV2K_RGB_MEAN).
IMG_RANGE = 255.0
# The 16-bit dtypes some steps compute differently in (same function, fewer roundings): see below.
HALF_DTYPES = (torch.float16, torch.bfloat16)


class Conv3XC(nn.Module):
    """The training form of SPAN's 3x3 convolution: 1x1 -> 3x3 -> 1x1 plus a 1x1 skip (official names)."""

    def __init__(self, c_in: int, c_out: int, *, gain: int = 2) -> None:
        super().__init__()
        self.sk = nn.Conv2d(c_in, c_out, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_in * gain, 1),
            nn.Conv2d(c_in * gain, c_out * gain, 3),  # unpadded: the input is padded before conv[0]
            nn.Conv2d(c_out * gain, c_out, 1),
        )
        # The official module's inference slot: frozen, refilled with the fused kernel in eval mode.
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.eval_conv.weight.requires_grad_(False)
        self.eval_conv.bias.requires_grad_(False)
        self._refresh_eval_conv()

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the single 3x3 convolution (zero padding 1) equal to the branches."""
        w, b = merge_1x1_then_kxk(self.conv[0].weight, self.conv[0].bias, self.conv[1].weight, self.conv[1].bias)
        w3 = self.conv[2].weight[:, :, 0, 0]
        # a 1x1 convolution after the 3x3 one mixes its output channels
        weight = torch.einsum("om,mihw->oihw", w3, w) + pad_kernel(self.sk.weight, 3)
        bias = w3 @ b + self.conv[2].bias + self.sk.bias
        return weight, bias

    @torch.no_grad()
    def _refresh_eval_conv(self) -> None:
        weight, bias = self.fused()
        self.eval_conv.weight.copy_(weight)
        self.eval_conv.bias.copy_(bias)

    def train(self, mode: bool = True) -> Conv3XC:
        super().train(mode)
        if not mode and self.eval_conv.weight.device.type != "meta":
            self._refresh_eval_conv()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        weight, bias = self.fused()
        return F.conv2d(x, weight, bias, padding=1)

    def to_plain(self) -> PlainConv3XC:
        with torch.no_grad():
            weight, bias = self.fused()
        plain = PlainConv3XC(weight.shape[1], weight.shape[0])
        plain.eval_conv = conv_from(weight, bias)
        return plain


class PlainConv3XC(nn.Module):
    """The deploy form of :class:`Conv3XC`: the fused 3x3 convolution alone (NTIRE slim ``Conv3XC``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_conv(x)


class ParameterFreeAttention(nn.Module):
    """SPAB's attention and residual: ``(out3 + x) * (sigmoid(out3) - 0.5)``.

    In float32 and float64 this is the official expression, bit for bit. In 16 bits ``sigmoid(out3) - 0.5``
    cancels most of its 8 significant bits where ``out3`` is near zero (SPAN-ch28 lost 0.036 dB on Set5 x4
    in bfloat16), so there the whole expression runs in float32 and only its result is rounded to 16 bits
    (0.0171 / 0.0114 dB on Set5 / Set14 in bfloat16). The sigmoid form is also the fast one: on a 28 x 180 x
    320 bfloat16 map (AMD EPYC Zen 4, 1 thread) 3.4 ms eager and 1.1 ms compiled, against 5.4 and 2.2 ms for
    the ``0.5 * tanh(out3 / 2)`` form srlab used before. Nothing is written in place (AMP training runs it)."""

    def forward(self, out3: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if out3.dtype not in HALF_DTYPES:
            return (out3 + x) * (torch.sigmoid(out3) - 0.5)
        wide = out3.float()
        return ((wide + x.float()) * (torch.sigmoid(wide) - 0.5)).to(torch.promote_types(out3.dtype, x.dtype))


class SPAB(nn.Module):
    """Swift parameter-free attention block: three convs with SiLU, then ``(out3 + x) * (sigmoid(out3) - 0.5)``."""

    def __init__(self, c1_r: nn.Module, c2_r: nn.Module, c3_r: nn.Module) -> None:
        super().__init__()
        self.c1_r = c1_r
        self.c2_r = c2_r
        self.c3_r = c3_r
        self.attention = ParameterFreeAttention()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block output, SiLU of the first conv's output)."""
        out1 = F.silu(self.c1_r(x))
        out3 = self.c3_r(F.silu(self.c2_r(out1)))
        return self.attention(out3, x), out1


NUM_BLOCKS = 6


class _SPANBody(nn.Module):
    """The network shared by both forms; ``conv`` builds each 3x3 convolution (Conv3XC or its plain form)."""

    def __init__(self, *, scale: int, feature_channels: int, conv: type[nn.Module], upsampler: str) -> None:
        super().__init__()
        self.scale = scale
        self.feature_channels = feature_channels
        self.upsampler_name = upsampler
        c = feature_channels
        self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = conv(3, c)
        for i in range(1, NUM_BLOCKS + 1):
            setattr(self, f"block_{i}", SPAB(conv(c, c), conv(c, c), conv(c, c)))
        self.conv_cat = nn.Conv2d(4 * c, c, 1)
        self.conv_2 = conv(c, c)
        self.upsampler = image_head(upsampler, in_channels=c, scale=scale)

    def blocks(self) -> list[SPAB]:
        return [getattr(self, f"block_{i}") for i in range(1, NUM_BLOCKS + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean.to(x.dtype)) * IMG_RANGE
        shallow = self.conv_1(x)
        out, first = shallow, None
        block_1_out = None
        for block in self.blocks():
            out, first = block(out)
            if block_1_out is None:
                block_1_out = out
        parts = (shallow, self.conv_2(out), block_1_out, first)
        if shallow.dtype not in HALF_DTYPES:
            return self.upsampler(self.conv_cat(torch.cat(parts, dim=1)))
        fused = _concatenated_1x1_in_float32(self.conv_cat, parts)
        # float32 feeds a float32 upsampler (srlab's bf16 path keeps it so); a 16-bit one takes 16 bits
        upsampler_dtype = next(self.upsampler.parameters()).dtype
        return self.upsampler(fused if upsampler_dtype == torch.float32 else fused.to(upsampler_dtype))


def _concatenated_1x1_in_float32(conv: nn.Conv2d, parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``conv(torch.cat(parts, dim=1))`` for a 1x1 ``conv``, as one convolution per part summed in float32.

    In 16 bits, a channels-last concatenation of 28-channel maps ran as a slow strided copy (compiled,
    fused with block 1's attention: 5-7.5 ms against 0.65 ms for the attention alone, SPAN-ch28 at LR 180x320,
    AMD EPYC Zen 4, 1 thread); the per-part convolutions skip it, and the float32 sum, which the float32
    upsampler takes as it is, rounds each part once instead of the whole (Set5 / Set14 x4 bfloat16 drop
    0.0172 / 0.0111 dB, against 0.0171 / 0.0114 with the concatenation)."""
    out, start = None, 0
    for i, part in enumerate(parts):
        weight = conv.weight[:, start:start + part.shape[1]]
        start += part.shape[1]
        term = F.conv2d(part, weight, conv.bias if i == 0 else None).float()
        out = term if out is None else out + term
    return out


class SPANForInference(_SPANBody):
    """The deploy form: every Conv3XC reduced to its ``eval_conv`` (the NTIRE slim checkpoint's layout)."""

    def __init__(self, *, scale: int, feature_channels: int, upsampler: str = "subpixel") -> None:
        super().__init__(scale=scale, feature_channels=feature_channels, conv=PlainConv3XC, upsampler=upsampler)


class SPAN(_SPANBody):
    """The training form (official ``SPAN``), with the Conv3XC training branches."""

    def __init__(self, *, scale: int, feature_channels: int, upsampler: str = "subpixel") -> None:
        super().__init__(scale=scale, feature_channels=feature_channels, conv=Conv3XC, upsampler=upsampler)

    @torch.no_grad()
    def deploy(self) -> SPANForInference:
        """The equivalent network with each Conv3XC fused into one 3x3 conv; ``self`` is left unchanged."""
        fused = SPANForInference(
            scale=self.scale, feature_channels=self.feature_channels, upsampler=self.upsampler_name
        )
        fused = fused.to(device=self.conv_cat.weight.device, dtype=self.conv_cat.weight.dtype)
        fused.conv_1 = self.conv_1.to_plain()
        for ours, theirs in zip(fused.blocks(), self.blocks()):
            ours.c1_r, ours.c2_r, ours.c3_r = theirs.c1_r.to_plain(), theirs.c2_r.to_plain(), theirs.c3_r.to_plain()
        fused.conv_2 = self.conv_2.to_plain()
        fused.conv_cat.load_state_dict(self.conv_cat.state_dict())
        fused.upsampler.load_state_dict(self.upsampler.state_dict())
        return fused


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """The width of ``conv_2``, whose fused kernel both forms keep (``conv_2.eval_conv``)."""
    return {"feature_channels": weights["conv_2.eval_conv.weight"].shape[0]}


def _info(scales: tuple[int, ...]) -> ModelInfo:
    return ModelInfo(
        paper="Wan et al., Swift Parameter-free Attention Network for Efficient Super-Resolution, "
        "CVPR Workshops (NTIRE) 2024",
        origin="https://github.com/hongyuanyu/SPAN",
        licence="Apache-2.0",
        scales=scales,
        size_multiple=1,
        # 21 stacked 3x3 convolutions (conv_1, 6 x 3 in the blocks, conv_2, upsampler), 1 LR pixel each.
        receptive_radius=24,
        reparameterizable=True,
        half_precision_safe=True,
        # The output convolution in float32 (its float32 output is the image): bfloat16 loses 0.0172 /
        # 0.0111 dB on Set5 / Set14 x4 (SPAN-ch28's weights, AMD EPYC Zen 4), against 0.0237 on Set5 with it
        # in 16 bits too (srlab.inference.paths.BF16_MEASURED_DROP).
        float32_modules=("upsampler",),
        args_from_weights=_args_from_weights,
    )


@register_model(_info((2, 3, 4)))
def span(*, scale: int, feature_channels: int = 48, upsampler: str = "subpixel") -> SPAN:
    """SPAN (official ``SPAN(feature_channels=48)``): 410,700 / 417,195 / 426,288 parameters deployed."""
    return SPAN(scale=scale, feature_channels=feature_channels, upsampler=upsampler)


@register_model(_info((4,)))
def span_ch28(*, scale: int, feature_channels: int = 28, upsampler: str = "subpixel") -> SPAN:
    """The NTIRE 2024 ESR submission (``SPAN30``, 28 channels, x4): 150,688 parameters deployed."""
    return SPAN(scale=scale, feature_channels=feature_channels, upsampler=upsampler)
