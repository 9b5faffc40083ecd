"""AsConvSR: a fast super-resolution network with assembled convolutions (a reconstruction).

Paper: Jiaming Guo, Xueyi Zou, Yuyi Chen, Yi Liu, Jia Hao, Jianzhuang Liu, Youliang Yan, "AsConvSR: Fast
and Lightweight Super-Resolution Network with Assembled Convolutions", CVPR Workshops 2023 (arXiv
2305.03387; Huawei Noah's Ark Lab). Winner of the NTIRE 2023 Real-Time Super-Resolution challenge, Track 1
(x2, 1080p to 4K). Official code: announced at gitee.com/mindspore/models (``research/cv/AsConvSR``, a
MindSpore repository); gitee is not reachable from here and the GitHub mirror mindspore-ai/models (last
commit eab643f, July 2023) has no AsConvSR. No weights are available, so srlab registers none.

WHAT IS PUBLIC AND USED HERE. Only the paper's abstract could be read (ar5iv and arXiv listing pages;
the body, its figures and tables, and the challenge report's team description, "Efficient Deep Models for
Real-Time 4K Image Super-Resolution. NTIRE 2023 Benchmark and Report", were not reachable offline). The
abstract states: pixel-unshuffle, "repeat upscaling" and the removal of local skip connections as the
efficient designs; assembled convolutions "which can adapt convolution kernels according to the input
features", from a divide-and-conquer view; x2 as the challenge track. Everything else below is
RECONSTRUCTED from the one public implementation found, doantienthongbku/AsConvSR-TorchLighting (read at
93f2085: ``model/AsConvSR.py``, ``model/Assembled_conv.py``; unofficial, no licence, its README says
"Status: in progress"), whose numbers are that author's, not the paper's:

* Topology: ``pixel_unshuffle(2)`` (3 -> 12 channels at half resolution), a 3x3 conv (12 -> C), one
  assembled block, a 3x3 conv (C -> 48), ``pixel_shuffle(2)`` (48 -> 12 channels at the input
  resolution), plus the input repeated 4 times along the channels, then ``pixel_shuffle(2)`` to 2H x 2W.
  The unofficial code repeats by concatenating ``(x, x, x, x)``, which after the shuffle mixes the colour
  channels (output red reads R, G, B, R); "repeat upscaling" is read here as nearest-neighbour upsampling,
  i.e. each channel repeated 4 times in place (``repeat_interleave``), which is a reconstruction choice.
* Assembled block: one control module and three assembled 3x3 convolutions (C -> C) applied in sequence,
  all three assembled with the same coefficients. Each assembled convolution has E basis kernels and
  biases; for every image and every output channel o its kernel is ``sum_e a[o, e] W_e[o]`` (likewise the
  bias), so the coefficients differ per output channel (where CondConv / dynamic convolution mix whole
  kernels with one coefficient per basis).
* Control module: global average pooling of the block's input, a 1x1 conv C -> C/4 (bias-free), ReLU, a
  1x1 conv C/4 -> E*C (bias-free), softmax over E at temperature 30.
* Numbers: C = 32 features, E = 3 bases, temperature 30, reduction 4 (other unofficial copies found
  in the code index use 48 features instead: the width is not confirmed).
* No activation function outside the control module (the unofficial code has none; the abstract does not
  say). Without one, the network is, for each image, a linear map of the input whose kernels the control
  module chooses.
* Initialisation: PyTorch's default for the plain convolutions; Kaiming-normal (fan out, ReLU) for the
  control module as in the unofficial code; its basis kernels start as ``torch.randn`` there (standard
  deviation 1 for a fan-in of 288), which srlab replaces by each basis's default convolution
  initialisation (Kaiming-uniform, bias uniform in +-1/sqrt(fan_in)): an srlab choice.

NOT CONFIRMED, therefore: the widths, E, the temperature, the control module's form and input, the number
of assembled convolutions and whether they share coefficients, the activations, the repeat order, the
initialisation, and the training recipe. The paper's parameter count and MACs could not be read, so none
is reproduced or tested; the counts below are this reconstruction's. Scales: x2 only, the published
track (the topology's two shuffles by 2 are the x2 design; no x3/x4 form is described).

Parameters of this reconstruction: 101,616 (3,488 + 1,024 control + 3 x (3 x 9,216 + 96) + 13,872).
Its cost does not depend on the image's content: every basis is always assembled (soft coefficients).
Tiling: the control module pools the whole image, so tiled inference is close to, not equal to,
whole-image inference. The pixel-unshuffle needs even sides: ``forward`` reflect-pads an odd side by one
row or column and crops the output (an srlab choice; the challenge's 1080p inputs are even).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.padding import pad_to_multiple
from srlab.models.registry import ModelInfo, register_model

UNSHUFFLE = 2  # pixel-unshuffle / shuffle factor of the x2 design


class ControlModule(nn.Module):
    """Per-image, per-output-channel softmax coefficients over the E bases, from the pooled input."""

    def __init__(self, channels: int, out_channels: int, num_bases: int, temperature: float, reduction: int) -> None:
        super().__init__()
        self.out_channels, self.num_bases, self.temperature = out_channels, num_bases, temperature
        hidden = channels // reduction
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, num_bases * out_channels, 1, bias=False),
        )
        for conv in (self.net[0], self.net[2]):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(F.adaptive_avg_pool2d(x, 1)).view(x.shape[0], self.out_channels, self.num_bases)
        return torch.softmax(logits / self.temperature, dim=-1)  # (batch, out_channels, E)


class AssembledConv(nn.Module):
    """A 3x3 conv whose kernel and bias are assembled per image and output channel from E bases."""

    def __init__(self, in_channels: int, out_channels: int, num_bases: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_bases, out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.empty(num_bases, out_channels))
        bound = 1 / math.sqrt(in_channels * 9)
        for basis in self.weight:  # each basis as nn.Conv2d initialises its kernel and bias
            nn.init.kaiming_uniform_(basis, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        weight = torch.einsum("boe,eoikl->boikl", coefficients, self.weight).flatten(0, 1)
        bias = torch.einsum("boe,eo->bo", coefficients, self.bias).flatten()
        # every image its own kernels: the batch folded into the channels, one group per image
        out = F.conv2d(x.reshape(1, batch * channels, height, width), weight, bias, padding=1, groups=batch)
        return out.view(batch, -1, height, width)


class AssembledBlock(nn.Module):
    """One control module; ``num_convs`` assembled convolutions in sequence, all with its coefficients."""

    def __init__(self, channels: int, *, num_convs: int, num_bases: int, temperature: float, reduction: int) -> None:
        super().__init__()
        self.control = ControlModule(channels, channels, num_bases, temperature, reduction)
        self.convs = nn.ModuleList(AssembledConv(channels, channels, num_bases) for _ in range(num_convs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coefficients = self.control(x)
        for conv in self.convs:
            x = conv(x, coefficients)
        return x


class AsConvSR(nn.Module):
    def __init__(
        self, *, scale: int, channels: int, num_convs: int, num_bases: int, temperature: float, reduction: int
    ) -> None:
        super().__init__()
        if scale != 2:
            raise ValueError(f"AsConvSR is published for x2 only, got scale {scale}")
        self.scale = scale
        image_channels = 3 * UNSHUFFLE * UNSHUFFLE
        self.head = nn.Conv2d(image_channels, channels, 3, padding=1)
        self.block = AssembledBlock(
            channels, num_convs=num_convs, num_bases=num_bases, temperature=temperature, reduction=reduction
        )
        self.tail = nn.Conv2d(channels, image_channels * scale * scale, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, UNSHUFFLE, "reflect")  # odd sides: one reflected row / column, cropped below
        features = self.block(self.head(F.pixel_unshuffle(x, UNSHUFFLE)))
        residual = F.pixel_shuffle(self.tail(features), UNSHUFFLE)  # 3 s^2 channels at the input's size
        # repeat upscaling: each channel s^2 times in place, which the shuffle turns into nearest upsampling
        repeated = torch.repeat_interleave(x, self.scale * self.scale, dim=1)
        out = F.pixel_shuffle(residual + repeated, self.scale)
        return out[..., : height * self.scale, : width * self.scale]


@register_model(
    ModelInfo(
        paper="Guo et al., AsConvSR: Fast and Lightweight Super-Resolution Network with Assembled Convolutions, "
        "CVPR Workshops 2023 (srlab reconstruction: widths from an unofficial implementation, see the file)",
        origin="https://gitee.com/mindspore/models/tree/master/research/cv/AsConvSR",
        licence="unknown",
        scales=(2,),
        size_multiple=UNSHUFFLE,
        pad_mode="inside",  # forward reflect-pads odd sides itself (an srlab choice) and crops
        # half-resolution 3x3 convs (head, the assembled ones, tail), in LR pixels, plus the unshuffle's cell;
        # the control module pools the whole image (module docstring)
        receptive_radius=lambda a: UNSHUFFLE * (a["num_convs"] + 2) + UNSHUFFLE,
    )
)
def asconvsr(
    *,
    scale: int,
    channels: int = 32,
    num_convs: int = 3,
    num_bases: int = 3,
    temperature: float = 30.0,
    reduction: int = 4,
) -> AsConvSR:
    """AsConvSR as reconstructed (x2; 32 features, 3 assembled convs of 3 bases: unconfirmed, see the file)."""
    return AsConvSR(
        scale=scale,
        channels=channels,
        num_convs=num_convs,
        num_bases=num_bases,
        temperature=temperature,
        reduction=reduction,
    )
