"""Decomposed transposed convolution (the study's section 4.2.1): FSRCNN's k x k transposed convolution
(:mod:`srlab.layers.upsamplers.transposed`) factorised into a k x 1 and a 1 x k one."""

from __future__ import annotations

from torch import nn

from srlab.layers.upsamplers.base import register_upsampler
from srlab.layers.upsamplers.transposed import check_odd, transposed_reach


@register_upsampler("decomposed", reach=transposed_reach)  # the same taps, separated
def decomposed_transposed_conv(
    *, in_channels: int, out_channels: int, scale: int, kernel_size: int = 9
) -> nn.Module:
    """The transposed convolution decomposed into a k x 1 (vertical, stride (s, 1)) then a 1 x k
    (horizontal, stride (1, s)) transposed convolution: 2k weights per channel pair instead of k^2.

    Paper: the study's section 4.2.1 (decomposed transposed convolution); the factorisation of a k x k
    kernel into k x 1 and 1 x k is that of Szegedy et al., "Rethinking the Inception Architecture"
    (CVPR 2016), applied to the transposed case.

    Choices: the vertical step maps ``C_in -> C_out`` (the cheap order: the second step runs at full
    resolution), and only the horizontal step has a bias, so a layer whose 2-D kernels are separable
    (``w[i, o] = u[i, o] h[o]^T``, horizontal step diagonal in channels) computes exactly the 2-D
    transposed convolution.

    MACs (the output-pixel convention of :func:`transposed_conv`): ``s H W * C_in * C_out * k`` for the
    vertical step (output sH x W) plus ``s^2 H W * C_out^2 * k`` for the horizontal one.
    Keys ``0.weight`` (C_in, C_out, k, 1), ``1.weight`` (C_out, C_out, 1, k), ``1.bias``.
    """
    check_odd(kernel_size)
    pad = kernel_size // 2
    return nn.Sequential(
        nn.ConvTranspose2d(
            in_channels, out_channels, (kernel_size, 1), stride=(scale, 1), padding=(pad, 0),
            output_padding=(scale - 1, 0), bias=False,
        ),
        nn.ConvTranspose2d(
            out_channels, out_channels, (1, kernel_size), stride=(1, scale), padding=(0, pad),
            output_padding=(0, scale - 1),
        ),
    )
