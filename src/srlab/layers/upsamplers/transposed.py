"""Transposed-convolution upsampling (the study's section 4.2.1), as FSRCNN's ``last_part``: one
k x k transposed convolution with stride ``scale``, sized so that the output is exactly ``scale`` times
the input (padding (k - 1) / 2, output padding ``scale - 1``).

Paper: Dong, Loy and Tang, "Accelerating the Super-Resolution Convolutional Neural Network" (FSRCNN,
ECCV 2016).

MACs (``count_macs``, per LR input H x W, scale s): ``s^2 H W * C_in * C_out * k^2``, the kernel's cost at
every *output* pixel, as CARN's, IMDN's and SMSR's tables count FSRCNN. The arithmetic a transposed
convolution actually does is s^2 times less (each *input* pixel meets the kernel once); the papers'
convention is kept so that the figures compare with theirs.
"""

from __future__ import annotations

from torch import nn

from srlab.layers.upsamplers.base import register_upsampler


def check_odd(kernel_size: int) -> None:
    if kernel_size % 2 == 0:
        raise ValueError(f"the transposed convolution needs an odd kernel size, got {kernel_size}")


def transposed_reach(options: dict) -> int:
    """A k-tap transposed convolution at stride s >= 2 spreads each LR pixel over k // 2 output pixels each
    way: at most (k // 2) / 2 LR pixels, rounded up."""
    return (options["kernel_size"] // 2 + 1) // 2


@register_upsampler("transposed", reach=transposed_reach)
def transposed_conv(*, in_channels: int, out_channels: int, scale: int, kernel_size: int = 9) -> nn.Module:
    """FSRCNN's deconvolution: one ``nn.ConvTranspose2d`` (keys ``weight``, ``bias``)."""
    check_odd(kernel_size)
    return nn.ConvTranspose2d(
        in_channels, out_channels, kernel_size, stride=scale, padding=kernel_size // 2, output_padding=scale - 1
    )
