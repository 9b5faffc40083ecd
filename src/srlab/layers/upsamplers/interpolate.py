"""Interpolation-based upsampling (the study's section 4.1): a fixed interpolation of the features to
the output size, then a learned 3x3 convolution. Cheap and free of checkerboard artefacts."""

from __future__ import annotations

from torch import nn

from srlab.layers.upsamplers.base import register_upsampler


@register_upsampler("interpolate")
def interpolate_conv(*, in_channels: int, out_channels: int, scale: int, mode: str = "nearest") -> nn.Module:
    """``mode``: nearest, bilinear or bicubic (PyTorch's, half-pixel centres: not MATLAB's imresize)."""
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"interpolation mode must be nearest, bilinear or bicubic, got {mode!r}")
    corners = None if mode == "nearest" else False
    return nn.Sequential(
        nn.Upsample(scale_factor=scale, mode=mode, align_corners=corners),
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
    )
