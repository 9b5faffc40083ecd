"""FSIM and FSIMc (Zhang, Zhang, Mou & Zhang, 2011), as the authors' ``FeatureSIM.m`` computes them.

1. RGB in 0..255 -> YIQ with the script's coefficients (Y = 0.299 R + 0.587 G + 0.114 B,
   I = 0.596 R - 0.274 G - 0.322 B, Q = 0.211 R - 0.523 G + 0.312 B); a grey image is its own Y
   and has I = Q = 1 everywhere (so FSIMc = FSIM);
2. every channel is filtered with an F x F mean (``conv2(..., fspecial('average', F), 'same')``, zero
   padding) and sampled every F pixels, F = max(1, round(min(H, W) / 256));
3. phase congruency of Y by Kovesi's ``phasecong2`` (:func:`phase_congruency`): log-Gabor filters built
   in the frequency domain, 4 scales (minimum wavelength 6, factor 2, sigmaOnf 0.55), 4 orientations
   (dThetaOnSigma 1.2), noise threshold k = 2 from the median of the finest scale's energy, divided
   by 1.7, epsilon 1e-4;
4. Scharr gradient magnitude ``[3 0 -3; 10 0 -10; 3 0 -3] / 16`` and its transpose (``conv2 'same'``);
5. S_PC = (2 PC1 PC2 + T1) / (PC1^2 + PC2^2 + T1), S_G likewise with T2, S_I and S_Q with T3 = T4;
   PC_m = max(PC1, PC2);
   FSIM = sum(S_G S_PC PC_m) / sum(PC_m), FSIMc = sum(S_G S_PC Re[(S_I S_Q)^lambda] PC_m) / sum(PC_m)
   with T1 = 0.85, T2 = 160, T3 = T4 = 200, lambda = 0.03. Higher is better; 1 = identical.

A flat image pair (no phase congruency anywhere) gives 0/0 = NaN, as in MATLAB.
The FFTs and everything else run in float64 on the inputs' device (MPS: on the CPU).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.metrics.common import prepare_pair
from srlab.metrics.gmsd import matlab_average_downsample
from srlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol

T1, T2, T3, T4 = 0.85, 160.0, 200.0, 200.0
LAMBDA = 0.03

_YIQ = (
    (0.299, 0.587, 0.114),
    (0.596, -0.274, -0.322),
    (0.211, -0.523, 0.312),
)


def _freq_range(n: int, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Kovesi's frequency coordinates normalised to +/- 0.5 (odd and even sizes differ)."""
    if n % 2:
        return (torch.arange(n, dtype=dtype, device=device) - (n - 1) / 2) / (n - 1)
    return (torch.arange(n, dtype=dtype, device=device) - n / 2) / n


def phase_congruency(
    im: Tensor,
    *,
    nscale: int = 4,
    norient: int = 4,
    min_wavelength: float = 6.0,
    mult: float = 2.0,
    sigma_onf: float = 0.55,
    d_theta_on_sigma: float = 1.2,
    k: float = 2.0,
    epsilon: float = 1e-4,
) -> Tensor:
    """Kovesi's ``phasecong2`` phase congruency of (B, H, W) float images -> (B, H, W) (FSIM's parameters)."""
    if im.dim() != 3:
        raise ValueError(f"phase_congruency expects (B, H, W), got shape {tuple(im.shape)}")
    b, rows, cols = im.shape
    if rows < 2 or cols < 2:
        raise ValueError(f"phase_congruency: a {rows}x{cols} image is too small")
    dtype, device = im.dtype, im.device
    theta_sigma = math.pi / norient / d_theta_on_sigma

    yr = _freq_range(rows, dtype=dtype, device=device)
    xr = _freq_range(cols, dtype=dtype, device=device)
    y, x = torch.meshgrid(yr, xr, indexing="ij")
    radius0 = torch.sqrt(x * x + y * y)
    # Quadrant-shift so that frequency 0 sits at the top-left corner, as fft2 lays it out.
    radius = torch.fft.ifftshift(radius0)
    theta = torch.fft.ifftshift(torch.atan2(-y, x))
    radius[0, 0] = 1.0  # avoid log(0); the filters' DC value is reset to 0 below
    sintheta, costheta = torch.sin(theta), torch.cos(theta)

    # Butterworth low-pass (cutoff 0.45, order 15) so the filters carry no energy in the FFT's corners.
    lp = torch.fft.ifftshift(1.0 / (1.0 + (radius0 / 0.45) ** (2 * 15)))
    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult**s)
        lg = torch.exp(-(torch.log(radius / fo) ** 2) / (2 * math.log(sigma_onf) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)

    imagefft = torch.fft.fft2(im)
    energy_all = torch.zeros_like(im)
    an_all = torch.zeros_like(im)
    scale_n = math.sqrt(rows * cols)
    for o in range(norient):
        angl = o * math.pi / norient
        ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
        dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
        dtheta = torch.atan2(ds, dc).abs()
        spread = torch.exp(-(dtheta**2) / (2 * theta_sigma**2))

        sum_e = torch.zeros_like(im)
        sum_o = torch.zeros_like(im)
        sum_an = torch.zeros_like(im)
        eo_list, ifft_filters = [], []
        em_n = 0.0
        for s in range(nscale):
            filt = log_gabor[s] * spread
            ifft_filters.append(torch.fft.ifft2(filt).real * scale_n)
            eo = torch.fft.ifft2(imagefft * filt)
            eo_list.append(eo)
            sum_an = sum_an + eo.abs()
            sum_e = sum_e + eo.real
            sum_o = sum_o + eo.imag
            if s == 0:
                em_n = (filt * filt).sum()

        x_energy = torch.sqrt(sum_e**2 + sum_o**2) + epsilon
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        energy = torch.zeros_like(im)
        for eo in eo_list:
            e, od = eo.real, eo.imag
            energy = energy + e * mean_e + od * mean_o - (e * mean_o - od * mean_e).abs()

        # Noise: the median squared amplitude at the finest scale (MATLAB's median: the mean of the
        # two middle values for an even count), as the mean of a Rayleigh-distributed energy.
        e2 = (eo_list[0].abs() ** 2).reshape(b, -1).sort(dim=1).values
        n = e2.shape[1]
        median = e2[:, (n - 1) // 2] if n % 2 else 0.5 * (e2[:, n // 2 - 1] + e2[:, n // 2])
        mean_e2n = -median / math.log(0.5)
        noise_power = mean_e2n / em_n

        est_sum_an2 = sum((f * f).sum() for f in ifft_filters)
        est_sum_aiaj = sum(
            (ifft_filters[i] * ifft_filters[j]).sum() for i in range(nscale - 1) for j in range(i + 1, nscale)
        )
        est_noise_energy2 = 2 * noise_power * est_sum_an2 + 4 * noise_power * est_sum_aiaj
        tau = torch.sqrt(est_noise_energy2 / 2)
        est_noise_energy = tau * math.sqrt(math.pi / 2)
        est_noise_sigma = torch.sqrt((2 - math.pi / 2) * tau**2)
        t = (est_noise_energy + k * est_noise_sigma) / 1.7
        energy = (energy - t.view(b, 1, 1)).clamp_min(0)

        energy_all = energy_all + energy
        an_all = an_all + sum_an
    return energy_all / an_all


def _scharr_magnitude(y: Tensor) -> Tensor:
    """Scharr gradient magnitude of (B, 1, H, W), ``conv2(..., 'same')`` with zero padding."""
    dx = torch.tensor([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]], dtype=y.dtype, device=y.device) / 16
    g = F.conv2d(y, torch.stack([dx, dx.t()]).unsqueeze(1), padding=1)
    return g.pow(2).sum(dim=1).sqrt()  # (B, H, W)


def _yiq255(x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(N, C, H, W) in [0, 1] -> Y, I, Q as (N, 1, H, W) in the 0..255 domain (I, Q None for grey)."""
    x = x * 255.0
    if x.shape[1] == 1:
        return x, None, None
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y, i, q = (c[0] * r + c[1] * g + c[2] * b for c in _YIQ)
    return y, i, q


def _similarity(a: Tensor, b: Tensor, t: float) -> Tensor:
    return (2 * a * b + t) / (a * a + b * b + t)


def fsim_fsimc(x: Tensor, y: Tensor, *, crop_border: int = 0) -> tuple[Tensor, Tensor]:
    """(FSIM, FSIMc) of RGB (or grey) images in [0, 1]: (N, C, H, W) -> two (N,), (C, H, W) -> two 0-d.

    ``x`` plays ``imageRef`` and ``y`` ``imageDis`` (the index is symmetric in them).
    """
    x, y, squeeze = prepare_pair(x, y, "fsim", crop_border)
    rows, cols = x.shape[-2:]
    f = max(1, math.floor(min(rows, cols) / 256 + 0.5))  # MATLAB round: halves go up
    if min(rows, cols) < 2 * f:
        raise SrlabError(f"fsim: a {rows}x{cols} image is too small; both sides must be at least 2 pixels")
    y1, i1, q1 = (None if c is None else matlab_average_downsample(c, f) for c in _yiq255(x))
    y2, i2, q2 = (None if c is None else matlab_average_downsample(c, f) for c in _yiq255(y))

    pc1 = phase_congruency(y1[:, 0])
    pc2 = phase_congruency(y2[:, 0])
    g1, g2 = _scharr_magnitude(y1), _scharr_magnitude(y2)

    pc_m = torch.maximum(pc1, pc2)
    sim = _similarity(g1, g2, T2) * _similarity(pc1, pc2, T1) * pc_m
    denom = pc_m.sum(dim=(-2, -1))
    fsim_val = sim.sum(dim=(-2, -1)) / denom
    if i1 is None:
        fsimc_val = fsim_val.clone()
    else:
        iq = _similarity(i1[:, 0], i2[:, 0], T3) * _similarity(q1[:, 0], q2[:, 0], T4)
        # MATLAB's real((S_I S_Q) .^ lambda): a negative base has the principal power |z|^l e^{i l pi}.
        phase = torch.full_like(iq, math.cos(LAMBDA * math.pi))  # full_like: keep float64
        chroma = iq.abs().pow(LAMBDA) * torch.where(iq < 0, phase, torch.ones_like(iq))
        fsimc_val = (sim * chroma).sum(dim=(-2, -1)) / denom
    if squeeze:
        return fsim_val[0], fsimc_val[0]
    return fsim_val, fsimc_val


def fsim(x: Tensor, y: Tensor, *, crop_border: int = 0) -> Tensor:
    """FSIM (luminance only) of RGB (or grey) images in [0, 1]; see :func:`fsim_fsimc`."""
    return fsim_fsimc(x, y, crop_border=crop_border)[0]


def fsimc(x: Tensor, y: Tensor, *, crop_border: int = 0) -> Tensor:
    """FSIMc (with the I/Q chrominance) of RGB images in [0, 1]; see :func:`fsim_fsimc`."""
    return fsim_fsimc(x, y, crop_border=crop_border)[1]


# FeatureSIM.m's imageRef is the HR image; the index is symmetric, the order kept for clarity.
@register_metric("fsim", higher_is_better=True, best=1.0)
def score_fsim(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
    """FSIM (luminance) of a prepared pair."""
    return float(fsim(hr, sr))


@register_metric("fsimc", higher_is_better=True, best=1.0)
def score_fsimc(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
    """FSIMc (with the I/Q chrominance) of a prepared pair."""
    return float(fsimc(hr, sr))
