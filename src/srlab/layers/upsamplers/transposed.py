"""Transposed-convolution upsampling (the study's section 4.2.1), as FSRCNN's ``last_part``: one
k x k transposed convolution with stride ``scale``, sized so that the output is exactly ``scale`` times
the input (padding (k - 1) / 2, output padding ``scale - 1``)."""

from __future__ import annotations

from torch import nn

from srlab.layers.upsamplers.base import register_upsampler


@register_upsampler("transposed")
def transposed_conv(*, in_channels: int, out_channels: int, scale: int, kernel_size: int = 9) -> nn.Module:
    if kernel_size % 2 == 0:
        raise ValueError(f"the transposed convolution needs an odd kernel size, got {kernel_size}")
    return nn.ConvTranspose2d(
        in_channels, out_channels, kernel_size, stride=scale, padding=kernel_size // 2, output_padding=scale - 1
    )
