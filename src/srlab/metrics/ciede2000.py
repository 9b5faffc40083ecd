"""CIEDE2000 colour difference (CIE 142-2001; formulae as in Sharma, Wu & Dalal, "The CIEDE2000
colour-difference formula: implementation notes, supplementary test data, and mathematical
observations", Color Res. Appl. 2005), and the mean over the pixels of two sRGB images.

The image metric converts both images to CIE L*a*b* (sRGB, D65; :func:`srlab.metrics.lab.rgb_to_lab`)
and averages the per-pixel Delta E 00 with kL = kC = kH = 1. Lower is better; 0 = identical colours. A
one-channel image is a grey image (R = G = B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from srlab.metrics.lab import rgb_to_lab
from srlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol

_25_POW_7 = 25.0**7


def _hue_degrees(b: Tensor, a: Tensor) -> Tensor:
    """atan2(b, a) in [0, 360); 0 where a = b = 0 (the formula's convention)."""
    return torch.rad2deg(torch.atan2(b, a)) % 360.0


def ciede2000(lab1: Tensor, lab2: Tensor, *, k_l: float = 1.0, k_c: float = 1.0, k_h: float = 1.0) -> Tensor:
    """Delta E 00 between L*a*b* colours along the channel axis ``-3``: (..., 3, H, W) -> (..., H, W)."""
    l1, a1, b1 = lab1.unbind(dim=-3)
    l2, a2, b2 = lab2.unbind(dim=-3)
    c_mean = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_mean**7 / (c_mean**7 + _25_POW_7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p, h2p = _hue_degrees(b1, a1p), _hue_degrees(b2, a2p)

    delta_l = l2 - l1
    delta_c = c2p - c1p
    chroma_product = c1p * c2p
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(chroma_product == 0, torch.zeros_like(dh), dh)
    delta_h = 2 * torch.sqrt(chroma_product) * torch.sin(torch.deg2rad(dh / 2))

    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = torch.where(
        (h1p - h2p).abs() <= 180, h_sum / 2, torch.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)
    )
    h_mean = torch.where(chroma_product == 0, h_sum, h_mean)

    t = (
        1
        - 0.17 * torch.cos(torch.deg2rad(h_mean - 30))
        + 0.24 * torch.cos(torch.deg2rad(2 * h_mean))
        + 0.32 * torch.cos(torch.deg2rad(3 * h_mean + 6))
        - 0.20 * torch.cos(torch.deg2rad(4 * h_mean - 63))
    )
    delta_theta = 30 * torch.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(cp_mean**7 / (cp_mean**7 + _25_POW_7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -torch.sin(torch.deg2rad(2 * delta_theta)) * r_c

    dl, dc, dhh = delta_l / (k_l * s_l), delta_c / (k_c * s_c), delta_h / (k_h * s_h)
    return torch.sqrt(dl**2 + dc**2 + dhh**2 + r_t * dc * dhh)


def mean_ciede2000(x: Tensor, y: Tensor) -> Tensor:
    """Mean Delta E 00 over the pixels of two sRGB images in [0, 1]: (N, C, H, W) -> (N,), (C, H, W) -> 0-d.

    Computed in float64 (at least)."""
    if x.shape != y.shape:
        raise ValueError(f"mean_ciede2000: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ValueError(f"mean_ciede2000 expects (C, H, W) or (N, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float64)
    x, y = (v.to(dtype).expand(*v.shape[:-3], 3, *v.shape[-2:]) for v in (x, y))
    return ciede2000(rgb_to_lab(x), rgb_to_lab(y)).mean(dim=(-2, -1))


@register_metric("ciede2000", higher_is_better=False, best=0.0)
def score_ciede2000(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
    """Mean CIEDE2000 colour difference of a prepared pair (sRGB, every pixel after the border shave)."""
    return float(mean_ciede2000(sr, hr))
