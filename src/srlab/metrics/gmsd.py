"""Gradient Magnitude Similarity Deviation (Xue, Zhang, Mou & Bovik, 2014), as the authors' ``GMSD.m``.

On a luma channel in 0..255:

1. ``conv2(Y, ones(2)/4, 'same')`` and every other pixel (``Y(1:2:end, 1:2:end)``): a 2x2 mean of
   pixels (i, i+1); an odd last row/column is averaged with MATLAB's zero padding;
2. Prewitt gradients ``[1 0 -1; 1 0 -1; 1 0 -1] / 3`` and its transpose (``conv2 'same'``, zero
   padding), gradient magnitude ``m = sqrt(Ix^2 + Iy^2)``;
3. the GMS map ``(2 m1 m2 + c) / (m1^2 + m2^2 + c)`` with c = 170;
4. GMSD = the standard deviation of the map (``std2``, N - 1 normalisation). Lower is better; 0 = identical.

``luma="y"`` (default) is the BT.601 Y of the SR evaluation protocol (MATLAB ``rgb2ycbcr``, range
16..235); ``luma="gray"`` is ``0.299 R + 0.587 G + 0.114 B`` (0..255, the weights of ``rgb2gray`` to
three decimals, what the authors' demo feeds GMSD.m). A one-channel input is used as it is (x 255).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_y
from srlab.metrics.common import prepare_pair
from srlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol

GMSD_C = 170.0
_GRAY = (0.299, 0.587, 0.114)


def matlab_average_downsample(x: Tensor, f: int) -> Tensor:
    """``conv2(x, fspecial('average', f), 'same')`` then ``x(1:f:end, 1:f:end)`` on (B, 1, H, W).

    MATLAB's 'same' centre for an f-tap kernel puts the window over rows i - (ceil(f/2) - 1) ..
    i + floor(f/2), with zeros outside the image; the result has ceil(H/f) x ceil(W/f) pixels.
    """
    if f == 1:
        return x
    before, after = (f + 1) // 2 - 1, f // 2
    x = F.pad(x, (before, after, before, after))
    return F.avg_pool2d(x, f, stride=f)


def luma255(x: Tensor, luma: str) -> Tensor:
    """(N, C, H, W) in [0, 1] -> (N, 1, H, W) luma in 0..255."""
    if x.shape[1] == 1:
        return x * 255.0
    if luma == "y":
        return rgb_to_y(x) * 255.0
    if luma == "gray":
        r, g, b = (x[:, i : i + 1] * 255.0 for i in range(3))
        return _GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b
    raise SrlabError(f"luma must be 'y' or 'gray', got {luma!r}")


def gms_map(y1: Tensor, y2: Tensor, *, c: float = GMSD_C) -> Tensor:
    """The gradient-magnitude-similarity map of (B, 1, H, W) luma images in 0..255 (after the 2x downsampling)."""
    y1, y2 = matlab_average_downsample(y1, 2), matlab_average_downsample(y2, 2)
    # conv2 flips the kernel; that only changes the gradients' sign, not their magnitude.
    dx = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=y1.dtype, device=y1.device) / 3.0
    kernels = torch.stack([dx, dx.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    g1 = F.conv2d(y1, kernels, padding=1)
    g2 = F.conv2d(y2, kernels, padding=1)
    m1 = g1.pow(2).sum(dim=1, keepdim=True).sqrt()
    m2 = g2.pow(2).sum(dim=1, keepdim=True).sqrt()
    return (2 * m1 * m2 + c) / (m1 * m1 + m2 * m2 + c)


def gmsd(
    x: Tensor,
    y: Tensor,
    *,
    luma: Literal["y", "gray"] = "y",
    crop_border: int = 0,
    c: float = GMSD_C,
) -> Tensor:
    """GMSD of RGB (or grey) images in [0, 1]: (N, C, H, W) -> (N,), (C, H, W) -> 0-d.

    Lower is better; 0 = identical. ``crop_border`` pixels are shaved from each side first.
    """
    x, y, squeeze = prepare_pair(x, y, "gmsd", crop_border)
    h, w = x.shape[-2:]
    if min(h, w) < 4:
        raise SrlabError(f"gmsd: a {h}x{w} image is too small; both sides must be at least 4 pixels")
    gms = gms_map(luma255(x, luma), luma255(y, luma), c=c)
    out = gms.flatten(1).std(dim=1, correction=1)
    return out[0] if squeeze else out


@register_metric("gmsd", higher_is_better=False, best=0.0)
def score_gmsd(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
    """GMSD of a prepared pair on the BT.601 Y channel."""
    return float(gmsd(sr, hr))
