"""Structural similarity (Wang et al., 2004) with a Gaussian window, as a pure function.

This mirrors Wang's reference ``ssim_index.m``: an 11x11 Gaussian window (``fspecial('gaussian',
11, 1.5)``) applied with ``filter2(..., 'valid')`` — no padding, so the map is (H-10) x (W-10) — and
no downsampling; the index is the mean of the map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from srlab.metrics.common import filter_valid, shave
from srlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol


def gaussian_window_1d(size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian; its outer product is ``fspecial('gaussian', size, sigma)``."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd number, got {size}")
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=dtype, device=device) - half
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _signed_pow(t: Tensor, e: float) -> Tensor:
    # The structure term lies in [-1, 1]; a plain fractional power of a negative number is NaN, so
    # keep the sign: |t|^e * sign(t). For e == 1 this is the identity.
    return t.sign() * t.abs().pow(e)


def ssim_map(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
) -> Tensor:
    """The SSIM map of (B, C, H, W) images, shape (B, C, H - window_size + 1, W - window_size + 1)."""
    b, c, h, w = x.shape
    if h < window_size or w < window_size:
        raise ValueError(f"ssim: a {h}x{w} image is smaller than the {window_size}x{window_size} window")
    g = gaussian_window_1d(window_size, sigma, dtype=x.dtype, device=x.device)
    # Fold channels into the batch so every channel is filtered independently with one kernel.
    x = x.reshape(b * c, 1, h, w)
    y = y.reshape(b * c, 1, h, w)

    mu_x, mu_y = filter_valid(x, g), filter_valid(y, g)
    mu_x2, mu_y2, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = filter_valid(x * x, g) - mu_x2
    var_y = filter_valid(y * y, g) - mu_y2
    cov_xy = filter_valid(x * y, g) - mu_xy

    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    if alpha == beta == gamma == 1.0:
        # Wang's closed form, evaluated exactly as ssim_index.m does (bit-for-bit comparable).
        out = ((2 * mu_xy + c1) * (2 * cov_xy + c2)) / ((mu_x2 + mu_y2 + c1) * (var_x + var_y + c2))
    else:
        c3 = c2 / 2
        # E[x^2] - E[x]^2 can dip a hair below zero from rounding; the square root needs >= 0.
        sd_x, sd_y = var_x.clamp_min(0).sqrt(), var_y.clamp_min(0).sqrt()
        lum = (2 * mu_xy + c1) / (mu_x2 + mu_y2 + c1)
        con = (2 * sd_x * sd_y + c2) / (var_x + var_y + c2)
        struct = (cov_xy + c3) / (sd_x * sd_y + c3)
        out = _signed_pow(lum, alpha) * _signed_pow(con, beta) * _signed_pow(struct, gamma)
    return out.reshape(b, c, *out.shape[-2:])


def ssim(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
) -> Tensor:
    """Mean SSIM of ``x`` against ``y``, one value per batch item.

    Inputs are (N, C, H, W) -> (N,) or (C, H, W) -> a 0-d tensor; ``crop_border`` pixels are shaved
    from each side first. SSIM = l^alpha * c^beta * s^gamma with C3 = C2 / 2; with all exponents 1 it
    is Wang's closed form. Multichannel images: the mean of the per-channel indices. Computed in the
    promoted floating dtype of the inputs (pass float64 for reference-grade numbers).
    """
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() not in (3, 4):
        raise ValueError(f"ssim expects (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    squeeze = x.dim() == 3
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    x, y = shave(x, crop_border).to(dtype), shave(y, crop_border).to(dtype)
    if squeeze:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    smap = ssim_map(
        x, y, data_range=data_range, window_size=window_size, sigma=sigma,
        k1=k1, k2=k2, alpha=alpha, beta=beta, gamma=gamma,
    )
    # Mean over the map of each channel, then over channels (equal-sized maps, so one mean suffices).
    per_item = smap.mean(dim=(-3, -2, -1))
    return per_item[0] if squeeze else per_item


@register_metric("ssim", higher_is_better=True, best=1.0, labelled=True)
def score_ssim(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
    """Wang's SSIM (L = 255, the protocol's window and constants) of a prepared pair on the protocol's channels."""
    return float(ssim(
        protocol.channels255(sr), protocol.channels255(hr), data_range=255.0, window_size=protocol.window_size,
        sigma=protocol.sigma, k1=protocol.k1, k2=protocol.k2,
    ))
