"""Multi-scale SSIM (Wang, Simoncelli & Bovik, 2003), as Wang's reference ``msssim.m`` computes it.

At each of the five scales the images are compared with SSIM's 11x11 Gaussian window (sigma 1.5,
K = (0.01, 0.03), 'valid' filtering, as :mod:`srlab.metrics.ssim`); the contrast-structure term
``cs = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)`` is kept at every scale but the coarsest,
where the full SSIM (luminance included) is kept. Between scales both images are filtered with a
2x2 mean (MATLAB ``imfilter(..., ones(2)/4, 'symmetric', 'same')``) and every other pixel is taken,
so an odd side repeats its last row/column. The index is

    MS-SSIM = prod_{j<M} mean(cs_j)^w_j * mean(ssim_M)^w_M,  w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).

Small images: like ``msssim.m`` (which returns -Inf), images whose shorter side (after the border
crop) is below ``window_size * 2**(scales - 1)`` — 176 pixels for the standard 5 scales — are refused
with an :class:`~srlab.errors.SrlabError`; no scale is silently dropped. Pass fewer ``weights`` to
use fewer scales explicitly.

A mean contrast-structure below zero (only for images nearly unrelated to the reference) would make
the fractional power complex in MATLAB; here it is clamped to 0, giving an index of 0.

Inputs are RGB in [0, 1] (or one grey channel), (C, H, W) or (N, C, H, W). ``channel="y"`` scores the
BT.601 Y channel scaled to 0..255 with L = 255, as the SR evaluation protocol does; ``channel="rgb"``
scores each channel (0..255) and averages the per-channel indices. Everything runs in float64 on the
inputs' device (MPS, which has no float64, is scored on the CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_y
from srlab.metrics.common import filter_valid, prepare_pair
from srlab.metrics.registry import register_metric
from srlab.metrics.ssim import gaussian_window_1d

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _to_channels255(x: Tensor, channel: str) -> Tensor:
    """(N, C, H, W) in [0, 1] -> (N, C', H, W) in 0..255: the Y channel, or the RGB channels."""
    if channel == "y":
        return rgb_to_y(x) * 255.0
    if channel == "rgb":
        return x * 255.0
    raise SrlabError(f"channel must be 'y' or 'rgb', got {channel!r}")


def _downsample2(x: Tensor) -> Tensor:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``x(1:2:end, 1:2:end)`` on (B, 1, H, W)."""
    h, w = x.shape[-2:]
    # The 2x2 window covers (i, i+1); past the last row 'symmetric' padding repeats that row.
    x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def _ssim_cs(x: Tensor, y: Tensor, g: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor]:
    """Mean SSIM and mean contrast-structure of (B, 1, H, W) images, each of shape (B,)."""
    mu_x, mu_y = filter_valid(x, g), filter_valid(y, g)
    mu_x2, mu_y2, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = filter_valid(x * x, g) - mu_x2
    var_y = filter_valid(y * y, g) - mu_y2
    cov_xy = filter_valid(x * y, g) - mu_xy
    cs_map = (2 * cov_xy + c2) / (var_x + var_y + c2)
    ssim_map = ((2 * mu_xy + c1) * (2 * cov_xy + c2)) / ((mu_x2 + mu_y2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(-3, -2, -1)), cs_map.mean(dim=(-3, -2, -1))


def ms_ssim_255(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 255.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """MS-SSIM of (B, C, H, W) float images already in the ``data_range`` domain -> (B,) (mean over C)."""
    b, c, h, w = x.shape
    scales = len(weights)
    if scales < 1:
        raise SrlabError("ms_ssim: weights must name at least one scale")
    need = window_size * 2 ** (scales - 1)
    if min(h, w) < need:
        raise SrlabError(
            f"ms_ssim: a {h}x{w} image is too small for {scales} scales: the shorter side must be at least "
            f"{need} pixels ({window_size} x 2^{scales - 1}); use larger images or pass fewer weights"
        )
    g = gaussian_window_1d(window_size, sigma, dtype=x.dtype, device=x.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    x, y = x.reshape(b * c, 1, h, w), y.reshape(b * c, 1, h, w)
    wt = torch.tensor(list(weights), dtype=x.dtype, device=x.device)
    out = torch.ones(b * c, dtype=x.dtype, device=x.device)
    for level in range(scales):
        s, cs = _ssim_cs(x, y, g, c1, c2)
        term = s if level == scales - 1 else cs
        out = out * term.clamp_min(0).pow(wt[level])
        if level < scales - 1:
            x, y = _downsample2(x), _downsample2(y)
    return out.reshape(b, c).mean(dim=1)


def ms_ssim(
    x: Tensor,
    y: Tensor,
    *,
    channel: Literal["y", "rgb"] = "y",
    crop_border: int = 0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """MS-SSIM of RGB (or grey) images in [0, 1]: (N, C, H, W) -> (N,), (C, H, W) -> 0-d.

    Higher is better; 1 = identical.

    ``crop_border`` pixels are shaved from each side first; see the module docstring for the rest.
    """
    x, y, squeeze = prepare_pair(x, y, "ms_ssim", crop_border)
    if channel == "rgb" and x.shape[1] == 1:
        x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    x, y = _to_channels255(x, channel), _to_channels255(y, channel)
    out = ms_ssim_255(x, y, weights=weights, window_size=window_size, sigma=sigma, k1=k1, k2=k2)
    return out[0] if squeeze else out


@register_metric("ms_ssim", higher_is_better=True, best=1.0)
def score_ms_ssim(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
    """MS-SSIM of a prepared pair on the Y channel (L = 255), whatever the protocol's channel."""
    return float(ms_ssim(sr, hr, channel="y"))
