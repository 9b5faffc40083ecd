"""Sub-pixel (PixelShuffle) reconstruction heads, and their registered upsamplers.

Paper: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network" (ESPCN, CVPR 2016): one step; Lim et al., "Enhanced Deep Residual Networks
for Single Image Super-Resolution" (EDSR, CVPRW 2017): progressive x2 (or one x3) steps.

MACs (``count_macs``, per LR input H x W, scale s; PixelShuffle is free): one step
``H W * C_in * C_out s^2 * 9``; progressive, step i (i = 0, 1, ...) of factor r at (r^i H) x (r^i W):
``r^(2i) H W * C * r^2 C * 9``, plus the final conv ``s^2 H W * C * C_out * 9``.

Both are ``nn.Sequential`` subclasses so that a model assigning one to its official attribute keeps the
official state-dict keys (``upsampler.0.weight``, ``tail.0.2.bias``, ...).
"""

from __future__ import annotations

from torch import nn

from srlab.layers.upsamplers.base import build_upsampler, register_upsampler, upsampler_entry


class SubPixelHead(nn.Sequential):
    """One step to the output: a 3x3 conv to ``out_channels * s^2`` channels, then PixelShuffle(s).

    ESPCN's head and the usual last layer of lightweight SR networks (SwinIR's ``UpsampleOneStep``);
    keys ``0.weight`` (and ``0.bias``).
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int, *, bias: bool = True) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels * scale * scale, 3, padding=1, bias=bias), nn.PixelShuffle(scale)
        )


class ProgressiveUpsampler(nn.Sequential):
    """EDSR's ``common.Upsampler``: [3x3 conv C -> 4C, PixelShuffle(2)] log2(s) times, or [3x3 conv
    C -> 9C, PixelShuffle(3)] for s = 3; the channel count C is kept. Empty for s = 1."""

    def __init__(self, channels: int, scale: int) -> None:
        if scale >= 1 and scale & (scale - 1) == 0:  # a power of two (or 1)
            factors = [2] * (scale.bit_length() - 1)
        elif scale == 3:
            factors = [3]
        else:
            raise ValueError(f"the sub-pixel upsampler scales by powers of 2 or by 3, not {scale}")
        layers: list[nn.Module] = []
        for r in factors:
            layers += [nn.Conv2d(channels, r * r * channels, 3, padding=1), nn.PixelShuffle(r)]
        super().__init__(*layers)


@register_upsampler("subpixel", reach=1, aliases=("pixelshuffle",))  # one 3x3 conv on the LR grid
def subpixel(*, in_channels: int, out_channels: int, scale: int, bias: bool = True) -> nn.Module:
    """ESPCN's one-step sub-pixel head (:class:`SubPixelHead`)."""
    return SubPixelHead(in_channels, out_channels, scale, bias=bias)


# 3x3 convs on the LR grid (1), at 2x (1/2 LR pixel), ..., and at the output (1/s): under 2 LR pixels
@register_upsampler("subpixel_progressive", reach=2, scales=(2, 3, 4, 8), aliases=("pixelshuffle_progressive",))
def subpixel_progressive(*, in_channels: int, out_channels: int, scale: int) -> nn.Module:
    """EDSR's tail: :class:`ProgressiveUpsampler` at ``in_channels``, then a 3x3 conv to ``out_channels``."""
    return nn.Sequential(ProgressiveUpsampler(in_channels, scale), nn.Conv2d(in_channels, out_channels, 3, padding=1))


def image_head(
    upsampler: str, *, in_channels: int, scale: int, out_channels: int = 3, bias: bool = True
) -> nn.Module:
    """A model's last step to the image, for models whose official head is a plain
    :class:`SubPixelHead`: that head (official keys, ``bias`` as the model has it) for ``subpixel`` (or
    its alias), else the registered ``upsampler`` with its own defaults, so the model can be trained
    with any upsampler (``upsampler=NAME``)."""
    if upsampler_entry(upsampler).name == "subpixel":
        return SubPixelHead(in_channels, out_channels, scale, bias=bias)
    return build_upsampler(upsampler, in_channels=in_channels, out_channels=out_channels, scale=scale)
