"""RDSR: the study's own lightweight network ("Possible Architecture").

Paper: the srlab study, "Possible Architecture" (after Moser et al., "Hitchhiker's Guide to
Super-Resolution: Introduction and Recent Advances", TPAMI 2023). No official code exists; this
implementation is srlab's own (Apache-2.0).

Structure, exactly as drawn: a 3x3 conv (3 -> C) + ReLU gives the shallow features F0; N residual
distillation blocks follow, each with three 3x3 conv + ReLU stages whose outputs are concatenated,
fused by a 1x1 conv to C, gated by channel attention and added to the block input; all block outputs
are concatenated, fused by a 1x1 conv to C, passed through ESA spatial attention and added to F0; a
3x3 conv to 3*s^2 channels and PixelShuffle(s) give the output.

Input and output are RGB in [0, 1].

Initialisation (``init="bicubic"``, the default; the drawing leaves it open): the network starts as
an interpolator. Three shallow-feature channels copy the input, the 3x3 tail conv computes, for each
of the s^2 sub-pixel phases, a 3-tap Keys-cubic interpolation of them, and the 1x1 fusion before ESA
starts at zero, so the deep branch adds nothing at first (as zero-initialised residual branches do).
The untrained model is then within ~0.2 dB of bicubic upscaling and training learns the residual
detail, which shortens training a lot on a CPU budget. ``init="default"`` keeps PyTorch's init.

Upsampler (``upsampler=NAME``, any of :func:`srlab.list_upsamplers`; default ``subpixel``, the drawn
3x3 conv + PixelShuffle, keys ``tail.*``): another upsampler replaces the tail conv and PixelShuffle
(keys ``tail.*`` are then that upsampler's), so one backbone can be trained with each. With it,
``init="bicubic"`` initialises all but the upsampler (head copy, zero fusion) and the upsampler keeps
PyTorch's init.

Normalisation (``norm=NAME``, one of :data:`srlab.layers.norm.NORMS`; default ``none``, the drawn block,
whose keys and outputs it leaves exactly as they are): inside each residual distillation block, where
SRResNet put BatchNorm in its residual blocks (and EDSR's official ``ResBlock(bn=True)`` still does): after
every convolution of the residual branch, before its activation, i.e. after conv1, conv2 and conv3 (keys
``blocks.i.norm1..3``) and after the 1x1 fusion, before the channel attention (``blocks.i.fuse_norm``).
The shortcut, the head, the trunk fusion, ESA and the tail stay unnormalised, as in SRResNet. With
``norm=instance`` the model refuses tiles (its statistics are the whole image's). The bicubic start is
unchanged by any norm: the trunk fusion starts at zero, so the blocks contribute nothing at first.

Attention choices (for architecture search, :mod:`srlab.nas`): ``attention="none"`` leaves out the blocks'
channel attention (no keys ``blocks.*.attention.*``), ``spatial_attention="none"`` leaves out ESA (no keys
``esa.*``; the receptive radius shrinks to the convolutions'). Block type: ``block="distill"`` (the drawn
residual distillation block) or ``block="residual"`` (EDSR/SRResNet's conv-ReLU-conv residual block with
the same channel attention; keys ``blocks.i.conv1/conv2/attention``). The defaults (``ca``, ``esa``,
``distill``) are the drawn network, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers import ESA, ChannelAttention
from srlab.layers.norm import build_norm, norm_tiling_refusal
from srlab.layers.upsamplers import build_upsampler, upsampler_entry
from srlab.models.registry import ModelInfo, register_model


class ResidualDistillationBlock(nn.Module):
    def __init__(self, channels: int, *, ca_reduction: int, norm: str = "none", attention: str = "ca") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.fuse = nn.Conv2d(3 * channels, channels, 1)
        self.attention = ChannelAttention(channels, reduction=ca_reduction) if attention == "ca" else nn.Identity()
        # norm="none" makes these Identity: no keys, the same outputs.
        self.norm1, self.norm2, self.norm3, self.fuse_norm = (build_norm(norm, channels) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = F.relu(self.norm1(self.conv1(x)))
        f2 = F.relu(self.norm2(self.conv2(f1)))
        f3 = F.relu(self.norm3(self.conv3(f2)))
        return self.attention(self.fuse_norm(self.fuse(torch.cat((f1, f2, f3), dim=1)))) + x


class ResidualBlock(nn.Module):
    """The other block type of the search space (``block="residual"``): EDSR/SRResNet's residual block,
    conv-ReLU-conv, gated by the same channel attention and added to its input; norms where SRResNet put
    BatchNorm (after each convolution)."""

    def __init__(self, channels: int, *, ca_reduction: int, norm: str = "none", attention: str = "ca") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.attention = ChannelAttention(channels, reduction=ca_reduction) if attention == "ca" else nn.Identity()
        self.norm1, self.norm2 = (build_norm(norm, channels) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))) + x


# Block types and their 3x3 convolutions in series (the receptive radius).
BLOCKS = {"distill": (ResidualDistillationBlock, 3), "residual": (ResidualBlock, 2)}


def _keys_cubic(distance: float) -> float:
    d = abs(distance)
    if d <= 1:
        return 1.5 * d**3 - 2.5 * d**2 + 1
    if d < 2:
        return -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
    return 0.0


def _phase_weights(scale: int) -> torch.Tensor:
    """(scale, 3) weights of the LR taps at offsets -1, 0, +1 for each sub-pixel phase (normalised)."""
    rows = []
    for phase in range(scale):
        offset = (phase + 0.5) / scale - 0.5  # sub-pixel centre relative to its LR pixel
        taps = torch.tensor([_keys_cubic(1 + offset), _keys_cubic(offset), _keys_cubic(1 - offset)])
        rows.append(taps / taps.sum())
    return torch.stack(rows)


INITS = ("bicubic", "default")
ATTENTIONS = ("ca", "none")
SPATIAL_ATTENTIONS = ("esa", "none")
SUBPIXEL = "subpixel"


class RDSR(nn.Module):
    def __init__(
        self, *, scale: int, channels: int, num_blocks: int, ca_reduction: int, init: str, upsampler: str = SUBPIXEL,
        norm: str = "none", attention: str = "ca", spatial_attention: str = "esa", block: str = "distill",
    ) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        if spatial_attention not in SPATIAL_ATTENTIONS:
            raise ValueError(f"spatial_attention must be one of {', '.join(SPATIAL_ATTENTIONS)}, got {spatial_attention!r}")
        if channels < 3:
            raise ValueError(f"channels must be >= 3, got {channels}")
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            BLOCKS[block][0](channels, ca_reduction=ca_reduction, norm=norm, attention=attention)
            for _ in range(num_blocks)
        )
        self.fuse = nn.Conv2d(num_blocks * channels, channels, 1)
        self.esa = ESA(channels, grid_aligned=True) if spatial_attention == "esa" else nn.Identity()
        self.subpixel_tail = upsampler_entry(upsampler).name == SUBPIXEL
        if self.subpixel_tail:
            self.tail: nn.Module = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
            self.upsample: nn.Module = nn.PixelShuffle(scale)
        else:
            self.tail = build_upsampler(upsampler, in_channels=channels, out_channels=3, scale=scale)
            self.upsample = nn.Identity()
        if init == "bicubic":
            self._init_as_interpolator()

    @torch.no_grad()
    def _init_as_interpolator(self) -> None:
        s = self.scale
        self.head.weight[:3].zero_()
        self.head.bias[:3].zero_()
        for c in range(3):
            self.head.weight[c, c, 1, 1] = 1.0  # inputs are >= 0, so the ReLU passes them unchanged
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)
        if not self.subpixel_tail:
            return
        self.tail.weight.zero_()
        self.tail.bias.zero_()
        weights = _phase_weights(s)
        for c in range(3):
            for i in range(s):
                for j in range(s):
                    # PixelShuffle puts channel c*s^2 + i*s + j at sub-pixel (i, j) of colour c.
                    self.tail.weight[c * s * s + i * s + j, c] = torch.outer(weights[i], weights[j])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = F.relu(self.head(x))
        features = shallow
        outputs = []
        for block in self.blocks:
            features = block(features)
            outputs.append(features)
        fused = self.esa(self.fuse(torch.cat(outputs, dim=1))) + shallow
        return self.upsample(self.tail(fused))


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, int | str]:
    """Width from the head, depth from the blocks' names, the attention's reduction from its squeeze;
    an attention whose keys are absent was left out."""
    channels = weights["head.weight"].shape[0]
    args: dict[str, int | str] = {
        "channels": channels,
        "num_blocks": sum(1 for k in weights if k.startswith("blocks.") and k.endswith(".conv1.weight")),
    }
    if "blocks.0.attention.squeeze.weight" in weights:
        args["ca_reduction"] = channels // weights["blocks.0.attention.squeeze.weight"].shape[0]
    else:
        args["attention"] = "none"
    if not any(k.startswith("esa.") for k in weights):
        args["spatial_attention"] = "none"
    if args["num_blocks"] and "blocks.0.conv3.weight" not in weights:
        args["block"] = "residual"
    return args


def _receptive_radius(args: Mapping[str, int | str]) -> int:
    """3 (distill) or 2 (residual) convs per block + head + tail, plus ESA's ~60 px field when present;
    rounded up to the grid."""
    esa_field = 60 if args.get("spatial_attention", "esa") == "esa" else 0
    convs = BLOCKS[args.get("block", "distill")][1]
    return 6 * ((convs * args["num_blocks"] + 2 + esa_field) // 6 + 1)


def _info() -> ModelInfo:
    return ModelInfo(
        paper="srlab study, 'Possible Architecture' (residual distillation + CA + ESA)",
        origin="srlab",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        # ESA works on a 6x coarser grid; aligning tiles to it makes tiled == untiled.
        size_multiple=6,
        receptive_radius=_receptive_radius,
        tiling_refusal=lambda a: norm_tiling_refusal(a["norm"]),
        args_from_weights=_args_from_weights,
    )


@register_model(_info())
def rdsr_s(
    *, scale: int, channels: int = 32, num_blocks: int = 4, ca_reduction: int = 8, init: str = "bicubic",
    upsampler: str = SUBPIXEL, norm: str = "none", attention: str = "ca", spatial_attention: str = "esa",
    block: str = "distill",
) -> RDSR:
    """The CPU-friendly small variant."""
    return RDSR(scale=scale, channels=channels, num_blocks=num_blocks, ca_reduction=ca_reduction, init=init,
                upsampler=upsampler, norm=norm, attention=attention, spatial_attention=spatial_attention, block=block)


@register_model(_info())
def rdsr(
    *, scale: int, channels: int = 50, num_blocks: int = 6, ca_reduction: int = 16, init: str = "bicubic",
    upsampler: str = SUBPIXEL, norm: str = "none", attention: str = "ca", spatial_attention: str = "esa",
    block: str = "distill",
) -> RDSR:
    """The base variant, ~0.5 M parameters like IMDN/RFDN."""
    return RDSR(scale=scale, channels=channels, num_blocks=num_blocks, ca_reduction=ca_reduction, init=init,
                upsampler=upsampler, norm=norm, attention=attention, spatial_attention=spatial_attention, block=block)
