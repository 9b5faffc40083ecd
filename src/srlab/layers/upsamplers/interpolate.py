"""Interpolation-based upsampling (the study's section 4.1): a fixed interpolation of the features to
the output size, then a learned 3x3 convolution at the output size. Cheap in parameters and free of
checkerboard artefacts, but every learned MAC is spent at HR resolution.

Interpolation + convolution as an SR upsampler: Dong et al., "Image Super-Resolution Using Deep
Convolutional Networks" (SRCNN, TPAMI 2016) interpolates first; Odena et al., "Deconvolution and
Checkerboard Artifacts" (Distill 2016) puts resize-convolution inside the network, as here.

MACs (``count_macs``, per LR input H x W, scale s): the convolution costs ``s^2 H W * C_in * C_out * 9``;
the resize counts as fvcore weighs it, 1 (nearest) or 4 (bilinear) per output element,
``taps * s^2 H W * C_in``, and 0 for bicubic, which fvcore does not count (the 16 values it reads would be
``16 s^2 H W C_in``; counting them would change the published figures srlab reproduces, e.g. SMSR's dense
MACs, which include a bicubic skip). Against the conv the resize is ~1 / (9 C_out) of the cost at most.
"""

from __future__ import annotations

from torch import nn

from srlab.layers.upsamplers.base import register_upsampler

MODES = ("nearest", "bilinear", "bicubic")


class InterpolateConv(nn.Sequential):
    """Resize by ``scale`` (PyTorch's, half-pixel centres: not MATLAB's imresize), then a 3x3 conv;
    keys ``1.weight``, ``1.bias``."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, *, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"interpolation mode must be nearest, bilinear or bicubic, got {mode!r}")
        corners = None if mode == "nearest" else False
        super().__init__(
            nn.Upsample(scale_factor=scale, mode=mode, align_corners=corners),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
        )


# The interpolation's support and the 3x3 conv at the output resolution together: nearest, the pixel and its
# neighbours' (1); bilinear, the 2 LR pixels around an output pixel and its neighbours' (1); bicubic, 4 (2).
_INTERPOLATION_REACH = {"nearest": 1, "bilinear": 1, "bicubic": 2}


@register_upsampler("interpolate", reach=lambda options: _INTERPOLATION_REACH[options["mode"]])
def interpolate_conv(*, in_channels: int, out_channels: int, scale: int, mode: str = "nearest") -> nn.Module:
    """The interpolation family with its ``mode`` (nearest, bilinear or bicubic) as an option."""
    return InterpolateConv(in_channels, out_channels, scale, mode=mode)


@register_upsampler("nearest", reach=_INTERPOLATION_REACH["nearest"])
def nearest_conv(*, in_channels: int, out_channels: int, scale: int) -> nn.Module:
    """Nearest-neighbour resize + 3x3 conv: ``s^2 H W C_in (1 + 9 C_out)`` MACs."""
    return InterpolateConv(in_channels, out_channels, scale, mode="nearest")


@register_upsampler("bilinear", reach=_INTERPOLATION_REACH["bilinear"])
def bilinear_conv(*, in_channels: int, out_channels: int, scale: int) -> nn.Module:
    """Bilinear resize + 3x3 conv: ``s^2 H W C_in (4 + 9 C_out)`` MACs."""
    return InterpolateConv(in_channels, out_channels, scale, mode="bilinear")


@register_upsampler("bicubic", reach=_INTERPOLATION_REACH["bicubic"])
def bicubic_conv(*, in_channels: int, out_channels: int, scale: int) -> nn.Module:
    """Bicubic (Keys, a = -0.75) resize + 3x3 conv: ``s^2 H W C_in 9 C_out`` MACs (the resize uncounted)."""
    return InterpolateConv(in_channels, out_channels, scale, mode="bicubic")
