"""ECBSR: Edge-oriented Convolution Block network, and the ETDS authors' RGB retrain of it.

Paper: Zhang, Zeng and Zhang, "Edge-oriented Convolution Block for Real-time Super Resolution on
Mobile Devices", ACM MM 2021. Official repository: xindongzhang/ECBSR (Apache-2.0): ``models/ecb.py``
(``SeqConv3x3``, ``ECB``), ``models/ecbsr.py`` (``ECBSR``, the training form) and ``models/plainsr.py``
(``PlainSR``, the plain inference form). The RGB retrain: ECNUSR/ETDS (Apache-2.0),
``core/archs/ir/ECBSR/arch.py`` (``ECBSR``, and ``ECBSRET``, the form of the released weights).

The network: a head ECB (colors -> C) + PReLU, M ECBs (C -> C) + PReLU, a tail ECB (C -> colors * s^2,
no activation), plus the input repeated s^2 times along the channels (the official ``backbone(x) + x``
broadcasts one channel; the ETDS code uses ``repeat_interleave``, the same thing), then a pixel
shuffle, so the network learns the residual over nearest-neighbour upscaling. An ECB is the sum of a
3x3 conv, a 1x1 (to 2C) then 3x3 conv, and 1x1 convs each followed by a scaled depthwise Sobel-x,
Sobel-y or Laplacian filter (optional identity where in == out); the 1x1 outputs are padded with
their bias, not zeros, so that each ECB is exactly one 3x3 conv (:meth:`ECBSR.deploy`).

Two registered forms:

* ``ecbsr`` - the paper's network on the Y channel (``colors=1``; default ECBSR-M16C64, the
  published M4C8, M4C16, M8C16, M10C32 via ``num_modules``/``channels``), with the official
  parameter names (the frozen Sobel/Laplacian masks are ``requires_grad=False`` parameters, as
  there). ``forward`` takes RGB in [0, 1], converts it to BT.601 YCbCr (MATLAB ``rgb2ycbcr``), runs
  the network on Y scaled to [0, 255] (the official data pipeline feeds unnormalised Y), upscales
  Cb/Cr with MATLAB bicubic and converts back. ``deploy()`` gives the official ``PlainSR``
  (``backbone.N.conv3x3.*``, ``backbone.N.act.weight``). No official weights exist.
* ``ecbsr_etds`` - the ETDS authors' RGB retrain (``colors=3``, RGB in [0, 1]; default M4C16, also
  M4C32 and M6C40). Its released weights ``ECBSR_ET_M{m}C{c}_x{s}.pth`` are of the ETDS
  "equivalent transformation" form ``ECBSRET`` (``backbone.N.0.*`` conv, ``backbone.N.1.weight``
  PReLU), which is what ``deploy()`` returns: the plain network widened by 4 channels (one zero
  channel, then three that carry the input through every layer, PReLU slope 0, exact for inputs
  >= 0), the residual folded into the last conv, and that conv negated with bias ``1 - b`` and
  followed by ReLU and a 1x1 ``-I`` conv with bias 1 + ReLU, so that the output is clamped to
  [0, 1]. At x3 the last two layers carry one more channel (28 = 27 + 1, weight 0, bias 1), dropped
  before the shuffle. :meth:`ECBSR.plain` gives the un-transformed ``PlainSR`` (the form the ETDS
  paper's parameter counts describe: 11,548 / 13,723 / 16,768 for M4C16; the ET form has 17,468 /
  21,020 / 26,180).

Deviations from the official code:

* the official ``ECB.forward`` in eval mode convolves with the re-parameterised kernel; here the
  training form always evaluates the branches (the same function; ``srlab.deploy`` for speed).
* only the paper's PReLU activation is offered (the official ``act_type`` also allows relu, rrelu,
  softplus).
* ``ecbsr_etds`` in eval mode clamps its output to [0, 1], as its released (ET) form does, so that
  ``deploy(model)(x) == model(x)``; in train mode it is unclamped like the official one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.models.reparam import conv_from, identity_kernel, merge_1x1_then_kxk
from srlab.models.registry import Derived, ModelInfo, register_model

_EDGE_MASKS = {
    "conv1x1-sobelx": ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0)),
    "conv1x1-sobely": ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0)),
    "conv1x1-laplacian": ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0)),
}
SEQ_TYPES = ("conv1x1-conv3x3", *_EDGE_MASKS)


def _conv_parameters(in_ch: int, out_ch: int, k: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Weight and bias initialised as nn.Conv2d does (Kaiming-uniform, a = sqrt(5))."""
    weight = torch.empty(out_ch, in_ch, k, k)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    bound = 1.0 / math.sqrt(in_ch * k * k)
    bias = torch.empty(out_ch).uniform_(-bound, bound)
    return nn.Parameter(weight), nn.Parameter(bias)


class SeqConv3x3(nn.Module):
    """A 1x1 conv followed by a 3x3 one (learned, or a scaled fixed edge filter per channel).

    The 1x1 output is padded with its bias at the border, so the pair is exactly one 3x3 conv.
    """

    def __init__(self, seq_type: str, in_channels: int, out_channels: int, depth_multiplier: float = 2.0) -> None:
        super().__init__()
        if seq_type not in SEQ_TYPES:
            raise ValueError(f"seq_type must be one of {', '.join(SEQ_TYPES)}, got {seq_type!r}")
        self.type = seq_type
        self.out_planes = out_channels
        if seq_type == "conv1x1-conv3x3":
            self.mid_planes = int(out_channels * depth_multiplier)
            self.k0, self.b0 = _conv_parameters(in_channels, self.mid_planes, 1)
            self.k1, self.b1 = _conv_parameters(self.mid_planes, out_channels, 3)
        else:
            self.k0, self.b0 = _conv_parameters(in_channels, out_channels, 1)
            self.scale = nn.Parameter(torch.randn(out_channels, 1, 1, 1) * 1e-3)
            self.bias = nn.Parameter(torch.randn(out_channels) * 1e-3)
            mask = torch.tensor(_EDGE_MASKS[seq_type]).expand(out_channels, 1, 3, 3).clone()
            self.mask = nn.Parameter(mask, requires_grad=False)

    def _second_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3x3 stage as a full (out, mid, 3, 3) kernel and its bias."""
        if self.type == "conv1x1-conv3x3":
            return self.k1, self.b1
        depthwise = self.scale * self.mask  # (out, 1, 3, 3)
        eye = torch.eye(self.out_planes, dtype=depthwise.dtype, device=depthwise.device)
        return eye[:, :, None, None] * depthwise, self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.k0)
        # Pad with the 1x1 conv's bias (zero-pad the bias-free output, then add the bias everywhere).
        y = F.pad(y, (1, 1, 1, 1)) + self.b0.view(1, -1, 1, 1)
        if self.type == "conv1x1-conv3x3":
            return F.conv2d(y, self.k1, self.b1)
        return F.conv2d(y, self.scale * self.mask, self.bias, groups=self.out_planes)

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the single equivalent 3x3 conv (padding 1)."""
        k1, b1 = self._second_kernel()
        return merge_1x1_then_kxk(self.k0, self.b0, k1, b1)


class ECB(nn.Module):
    """Edge-oriented convolution block: five (six with identity) parallel 3x3-equivalent branches."""

    def __init__(
        self, in_channels: int, out_channels: int, *, depth_multiplier: float = 2.0, act: bool, with_idt: bool
    ) -> None:
        super().__init__()
        self.with_idt = with_idt and in_channels == out_channels
        self.conv3x3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv1x1_3x3 = SeqConv3x3("conv1x1-conv3x3", in_channels, out_channels, depth_multiplier)
        self.conv1x1_sbx = SeqConv3x3("conv1x1-sobelx", in_channels, out_channels)
        self.conv1x1_sby = SeqConv3x3("conv1x1-sobely", in_channels, out_channels)
        self.conv1x1_lpl = SeqConv3x3("conv1x1-laplacian", in_channels, out_channels)
        # The official 'linear' block has no activation module (no act.weight in its state dict).
        self.act = nn.PReLU(out_channels) if act else None

    def _branches(self) -> tuple[SeqConv3x3, ...]:
        return (self.conv1x1_3x3, self.conv1x1_sbx, self.conv1x1_sby, self.conv1x1_lpl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(x)
        for branch in self._branches():
            y = y + branch(x)
        if self.with_idt:
            y = y + x
        return y if self.act is None else self.act(y)

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the one 3x3 conv (padding 1) equal to the block before its activation."""
        weight, bias = self.conv3x3.weight, self.conv3x3.bias
        for branch in self._branches():
            w, b = branch.fused()
            weight, bias = weight + w, bias + b
        if self.with_idt:
            weight = weight + identity_kernel(weight.shape[0], 3, like=weight)
        return weight, bias


class Conv3X3(nn.Module):
    """The plain block of the official ``PlainSR``: a 3x3 conv and (except the last) a PReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, act: bool) -> None:
        super().__init__()
        self.conv3x3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.act = nn.PReLU(out_channels) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(x)
        return y if self.act is None else self.act(y)


def _luma_forward(network: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
    """Run ``network`` (one channel in [0, 255] in and out) on the Y of RGB ``x``; Cb/Cr bicubic."""
    ycbcr = rgb_to_ycbcr(x)
    y = network(ycbcr[:, :1] * 255.0) / 255.0
    cbcr = bicubic_upscale(ycbcr[:, 1:], scale)
    return ycbcr_to_rgb(torch.cat((y, cbcr), dim=1))


class _ResidualShuffle(nn.Module):
    """Shared forward of ECBSR and PlainSR: ``shuffle(backbone(x) + repeat(x, s^2))``."""

    scale: int
    colors: int
    backbone: nn.Sequential
    upsampler: nn.PixelShuffle

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = torch.repeat_interleave(x, self.scale * self.scale, dim=1)
        return self.upsampler(self.backbone(x) + shortcut)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.colors == 1:
            return _luma_forward(self._network, x, self.scale)
        return self._network(x)


class PlainSR(_ResidualShuffle):
    """The official plain inference form (``PlainSR``): M + 2 3x3 convs, PReLU, residual, shuffle.

    ``colors=1``: the network runs on Y in [0, 255] (RGB [0, 1] in and out, Cb/Cr bicubic);
    ``colors=3``: RGB in [0, 1] directly.
    """

    def __init__(self, *, scale: int, num_modules: int, channels: int, colors: int) -> None:
        super().__init__()
        self.scale = scale
        self.colors = colors
        blocks = [Conv3X3(colors, channels, act=True)]
        blocks += [Conv3X3(channels, channels, act=True) for _ in range(num_modules)]
        blocks.append(Conv3X3(channels, colors * scale * scale, act=False))
        self.backbone = nn.Sequential(*blocks)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)


class ECBSRET(nn.Module):
    """The ETDS authors' equivalent-transformation form of an RGB ECBSR (official ``ECBSRET``).

    Plain convs on ``channels + 4`` features (the last three carry the input), the residual folded
    into the last conv, output clamped to [0, 1] by the ReLU / 1x1 ``-I`` / ReLU tail.
    """

    EXTRA = 4  # "+4 instead of +3 ... a multiple of 4" (official comment)

    def __init__(self, *, scale: int, num_modules: int, channels: int, colors: int = 3) -> None:
        super().__init__()
        if colors >= self.EXTRA:
            raise ValueError(f"ECBSRET carries at most {self.EXTRA - 1} colours, got {colors}")
        self.scale = scale
        self.colors = colors
        width = channels + self.EXTRA
        self.extra = 1 if scale == 3 else 0
        out_ch = colors * scale * scale + self.extra
        blocks = [nn.Sequential(nn.Conv2d(colors, width, 3, padding=1), nn.PReLU(width))]
        blocks += [
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.PReLU(width)) for _ in range(num_modules)
        ]
        blocks.append(nn.Sequential(nn.Conv2d(width, out_ch, 3, padding=1), nn.ReLU()))
        blocks.append(nn.Sequential(nn.Conv2d(out_ch, out_ch, 1), nn.ReLU()))
        self.backbone = nn.Sequential(*blocks)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.backbone(x)
        if self.extra:
            y = y[:, : y.shape[1] - self.extra]
        return self.upsampler(y)

    @classmethod
    @torch.no_grad()
    def from_plain(cls, plain: PlainSR) -> ECBSRET:
        """The equivalent transformation of an RGB ``PlainSR`` (exact for inputs >= 0, output clamped)."""
        blocks = list(plain.backbone)
        channels = blocks[0].conv3x3.out_channels
        colors, s2 = plain.colors, plain.scale * plain.scale
        et = cls(scale=plain.scale, num_modules=len(blocks) - 2, channels=channels, colors=colors)
        ref = blocks[0].conv3x3.weight
        kw = {"dtype": ref.dtype, "device": ref.device}
        et = et.to(**kw)
        width = channels + cls.EXTRA
        carry = torch.arange(colors, device=ref.device) + width - colors  # the last `colors` channels
        # Head: the plain rows, one zero row, then rows copying the input channels.
        weight = torch.zeros(width, colors, 3, 3, **kw)
        weight[:channels] = blocks[0].conv3x3.weight
        weight[carry, torch.arange(colors), 1, 1] = 1.0
        bias = torch.zeros(width, **kw)
        bias[:channels] = blocks[0].conv3x3.bias
        et.backbone[0][0] = conv_from(weight, bias)
        # Body: block-diagonal, identity on the carried channels; PReLU slope 0 there (inputs >= 0).
        for i, block in enumerate(blocks[:-1]):
            if i > 0:
                weight = torch.zeros(width, width, 3, 3, **kw)
                weight[:channels, :channels] = block.conv3x3.weight
                weight[carry, carry, 1, 1] = 1.0
                bias = torch.zeros(width, **kw)
                bias[:channels] = block.conv3x3.bias
                et.backbone[i][0] = conv_from(weight, bias)
            slope = torch.zeros(width, **kw)
            slope[:channels] = block.act.weight
            et.backbone[i][1].weight.copy_(slope)
        # Tail: relu(1 - (W f + b + repeat(x))), then relu(1 - .) = clamp(y, 0, 1).
        last = blocks[-1].conv3x3
        out_ch = colors * s2
        total = out_ch + et.extra
        weight = torch.zeros(total, width, 3, 3, **kw)
        weight[:out_ch, :channels] = -last.weight
        rows = torch.arange(out_ch, device=ref.device)
        weight[rows, carry[rows // s2], 1, 1] = -1.0
        bias = torch.ones(total, **kw)
        bias[:out_ch] = 1.0 - last.bias
        et.backbone[-2][0] = conv_from(weight, bias)
        eye = torch.eye(total, **kw).reshape(total, total, 1, 1)
        et.backbone[-1][0] = conv_from(-eye, torch.ones(total, **kw))
        return et


class ECBSR(_ResidualShuffle):
    """The training form (official ``ECBSR``): head ECB, M ECBs, tail ECB, residual, shuffle.

    ``colors=1`` runs on the Y channel (see :class:`PlainSR`); ``et=True`` (the ETDS retrain) deploys
    to :class:`ECBSRET` and clamps its eval-mode output like it.
    """

    def __init__(
        self, *, scale: int, num_modules: int, channels: int, colors: int, with_idt: bool, et: bool
    ) -> None:
        super().__init__()
        if et and colors == 1:
            raise ValueError("the ETDS transformation is for RGB models (colors=3)")
        self.scale = scale
        self.colors = colors
        self.num_modules = num_modules
        self.channels = channels
        self.et = et
        blocks = [ECB(colors, channels, act=True, with_idt=with_idt)]
        blocks += [ECB(channels, channels, act=True, with_idt=with_idt) for _ in range(num_modules)]
        blocks.append(ECB(channels, colors * scale * scale, act=False, with_idt=with_idt))
        self.backbone = nn.Sequential(*blocks)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._run(x)
        return y.clamp(0.0, 1.0) if self.et and not self.training else y

    @torch.no_grad()
    def plain(self) -> PlainSR:
        """The official ``PlainSR``: every ECB fused into one 3x3 conv; ``self`` is left unchanged."""
        ref = self.backbone[0].conv3x3.weight
        fused = PlainSR(scale=self.scale, num_modules=self.num_modules, channels=self.channels, colors=self.colors)
        fused = fused.to(dtype=ref.dtype, device=ref.device)
        for ecb, block in zip(self.backbone, fused.backbone):
            block.conv3x3 = conv_from(*ecb.fused())
            if ecb.act is not None:
                block.act.weight.copy_(ecb.act.weight)
        return fused

    def deploy(self) -> PlainSR | ECBSRET:
        """The inference form: ``PlainSR`` (``ecbsr``), or the ETDS ``ECBSRET`` (``ecbsr_etds``)."""
        plain = self.plain()
        return ECBSRET.from_plain(plain) if self.et else plain


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """``backbone.i``: the head, the M modules and the tail convolution (and, in the ETDS form, a 1x1)."""
    blocks = len({int(k.split(".")[1]) for k in weights if k.startswith("backbone.")})
    if "backbone.0.conv3x3.weight" in weights:  # the training form, or its plain inference form
        return {"num_modules": blocks - 2, "channels": weights["backbone.0.conv3x3.weight"].shape[0]}
    return {"num_modules": blocks - 3, "channels": weights["backbone.0.0.weight"].shape[0] - ECBSRET.EXTRA}


def _info(paper: str, *, origin: str, receptive_radius: Derived) -> ModelInfo:
    return ModelInfo(
        paper=paper,
        origin=origin,
        licence="Apache-2.0",
        scales=(2, 3, 4),
        size_multiple=1,
        receptive_radius=receptive_radius,
        reparameterizable=True,
        half_precision_safe=True,
        args_from_weights=_args_from_weights,
    )


_PAPER = (
    "Zhang, Zeng and Zhang, Edge-oriented Convolution Block for Real-time Super Resolution on Mobile Devices "
    "(ACM MM 2021)"
)


# M + 2 stacked 3x3 convolutions (one LR pixel each) and, on Y, the bicubic chroma's 2.
@register_model(
    _info(_PAPER, origin="https://github.com/xindongzhang/ECBSR", receptive_radius=lambda a: a["num_modules"] + 4)
)
def ecbsr(*, scale: int, num_modules: int = 16, channels: int = 64, with_idt: bool = False) -> ECBSR:
    """ECBSR on the Y channel (default M16C64; published M4C8, M4C16, M8C16, M10C32)."""
    return ECBSR(scale=scale, num_modules=num_modules, channels=channels, colors=1, with_idt=with_idt, et=False)


# M + 2 3x3 convolutions.
@register_model(
    _info(
        _PAPER + " as retrained on RGB DIV2K by the ETDS authors (CVPR 2023)",
        origin="https://github.com/ECNUSR/ETDS",
        receptive_radius=lambda a: a["num_modules"] + 2,
    )
)
def ecbsr_etds(*, scale: int, num_modules: int = 4, channels: int = 16) -> ECBSR:
    """The ETDS authors' RGB ECBSR (loads ECNUSR/ETDS ``ECBSR_ET_M{4C16,4C32,6C40}_x{2,3,4}.pth``)."""
    return ECBSR(scale=scale, num_modules=num_modules, channels=channels, colors=3, with_idt=False, et=True)
