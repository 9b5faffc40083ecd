"""SRCNN: the first CNN for single-image super-resolution (9-5-5 form).

Paper: Dong, Loy, He and Tang, "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 2016
(the ECCV 2014 paper introduced the 9-1-5 network; the TPAMI version's 9-5-5 network, 57K parameters,
is the "SRCNN" row of the efficiency tables). The official release is Caffe/MATLAB code on the
authors' project page (no licence stated, no PyTorch weights). Parameter names follow the common
PyTorch port yjn870/SRCNN-pytorch (no LICENSE file): ``conv1`` (9x9, 1 -> 64), ``conv2`` (5x5,
64 -> 32), ``conv3`` (5x5, 32 -> 1), ReLU after the first two.

How the input is made: SRCNN works on a bicubic pre-upsampled image. ``forward`` takes the RGB LR
image in [0, 1], upscales it with MATLAB's bicubic kernel (``srlab.data.resize.bicubic_upscale``,
float, not quantised, like ``imresize`` on the double image in the authors' demo), converts it to
BT.601 YCbCr (MATLAB ``rgb2ycbcr``), runs the network on Y only and recombines the result with the
bicubic Cb/Cr (``ycbcr2rgb``). Since the bicubic filter and the colour transform are both affine with
weights summing to one, this equals upscaling the Y channel of the LR image as the paper does.

Deviation from the original: the Caffe network was trained without padding (valid convolutions, the
output 12 pixels smaller); here every convolution zero-pads to keep the size, as the port does and as
the authors' MATLAB test code (``imfilter(..., 'same')``) does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.models.registry import ModelInfo, register_model


class SRCNN(nn.Module):
    def __init__(
        self, *, scale: int, channels: int, mid_channels: int, kernels: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.scale = scale
        k1, k2, k3 = kernels
        self.conv1 = nn.Conv2d(1, channels, k1, padding=k1 // 2)
        self.conv2 = nn.Conv2d(channels, mid_channels, k2, padding=k2 // 2)
        self.conv3 = nn.Conv2d(mid_channels, 1, k3, padding=k3 // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ycbcr = rgb_to_ycbcr(bicubic_upscale(x, self.scale))
        y = self.conv3(F.relu(self.conv2(F.relu(self.conv1(ycbcr[:, :1])))))
        return ycbcr_to_rgb(torch.cat((y, ycbcr[:, 1:]), dim=1))


@register_model(
    ModelInfo(
        paper="Dong et al., Image Super-Resolution Using Deep Convolutional Networks (TPAMI 2016), 9-5-5",
        # The authors' project page (Caffe/MATLAB code, no licence stated).
        origin="http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html",
        licence="unknown",
        scales=(2, 3, 4),
        size_multiple=1,
        # 4 + 2 + 2 = 8 HR pixels of convolution plus the bicubic kernel's 2 LR pixels.
        receptive_radius=8,
        reparameterizable=False,
        half_precision_safe=True,
    )
)
def srcnn(*, scale: int, channels: int = 64, mid_channels: int = 32) -> SRCNN:
    """SRCNN 9-5-5 on the Y channel of the bicubic-upscaled input (57,281 parameters)."""
    return SRCNN(scale=scale, channels=channels, mid_channels=mid_channels, kernels=(9, 5, 5))
