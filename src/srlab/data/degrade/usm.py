"""Unsharp masking of the ground truth (Real-ESRGAN's ``gt_usm``), as BasicSR's ``USMSharp`` computes it.

Real-ESRNet (xinntao/Real-ESRGAN@a4abfb2, ``realesrnet_model.py::feed_data`` with ``gt_usm: True`` in
``train_realesrnet_x4plus.yml``) sharpens each ground-truth image before degrading it, so both the LR
input and the target come from the sharpened image. The sharpening (XPixelGroup/BasicSR@8d56e3a,
``basicsr/utils/img_process_util.py::USMSharp``, radius 50, weight 0.5, threshold 10):

    blur = G * I                                  (51x51 Gaussian, OpenCV's sigma for ksize 51: 8.0)
    mask = |I - blur| * 255 > threshold           (0/1), soft = G * mask
    out  = soft * clip(I + weight * (I - blur), 0, 1) + (1 - soft) * I

with reflected borders (``F.pad(mode="reflect")``, OpenCV's BORDER_REFLECT_101). Written here from that
formula (and checked against SciPy's Gaussian filter in the tests) rather than taken from OpenCV, which
srlab does not depend on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srlab.errors import SrlabError

RADIUS = 50
WEIGHT = 0.5
THRESHOLD = 10


def opencv_gaussian_kernel(size: int) -> torch.Tensor:
    """``cv2.getGaussianKernel(size, 0)`` for an odd size > 7: sigma = 0.3 ((size - 1) / 2 - 1) + 0.8,
    normalised to sum 1 (float64)."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflected borders (the 2-D kernel is an outer product)."""
    n, c, h, w = image.shape
    pad = kernel.numel() // 2
    flat = F.pad(image.reshape(n * c, 1, h, w), (pad, pad, pad, pad), mode="reflect")
    k = kernel.to(image.dtype)
    flat = F.conv2d(flat, k.view(1, 1, -1, 1))
    return F.conv2d(flat, k.view(1, 1, 1, -1)).reshape(n, c, h, w)


def usm_sharpen(image: torch.Tensor, *, weight: float = WEIGHT, radius: int = RADIUS,
                threshold: float = THRESHOLD) -> torch.Tensor:
    """The unsharp-masked image of a float (C, H, W) or (N, C, H, W) image in [0, 1]."""
    size = radius + 1 if radius % 2 == 0 else radius
    if min(image.shape[-2:]) <= size // 2:
        raise SrlabError(
            f"USM sharpening (gt_usm) reflects {size // 2} pixels at each border: the HR patch "
            f"({image.shape[-1]}x{image.shape[-2]}) must be larger than that on both sides: raise --patch_size"
        )
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    kernel = opencv_gaussian_kernel(size)
    residual = batch - _blur(batch, kernel)
    soft_mask = _blur((residual.abs() * 255 > threshold).to(batch.dtype), kernel)
    sharp = (batch + weight * residual).clamp(0, 1)
    out = soft_mask * sharp + (1 - soft_mask) * batch
    return out if image.dim() == 4 else out.squeeze(0)
