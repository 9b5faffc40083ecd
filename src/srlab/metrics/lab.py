"""CIE L*a*b* of sRGB images (IEC 61966-2-1 gamma, D65 white), exact and invertible, in torch.

The CIE's exact constants, epsilon = (6/29)^3 and the linear slope 1/(3 (6/29)^2), make ``f`` continuous
and so exactly invertible; scikit-image rounds them (0.008856, 7.787), so its Lab differs from this one by
up to 2e-4 in L, a and b (where X, Y or Z over the white lies below the threshold). The sRGB matrix and
the white point are scikit-image's (the 6-decimal sRGB primaries, white (0.95047, 1, 1.08883)). The sRGB
gamma's inverse switches branch in the middle of the standard's 2.3e-9 gap at the threshold, which keeps
the round trip exact there. Every function is defined, finite and differentiable for any real input (out
of gamut too), in the input's floating dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

# sRGB (IEC 61966-2-1) gamma: linear below the threshold, a 2.4 power above.
_SRGB_THRESHOLD, _SRGB_SLOPE, _SRGB_A = 0.04045, 12.92, 0.055
# Linear sRGB -> XYZ (scikit-image's xyz_from_rgb) and the D65 white point (2-degree observer).
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.95047, 1.0, 1.08883)
# CIE Lab: f(t) = t^(1/3) above (6/29)^3, else t / (3 (6/29)^2) + 4/29.
_DELTA = 6.0 / 29.0


def _matmul(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix @ x`` over the channel axis of (..., 3, H, W)."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x.dtype), x)


def srgb_to_linear(x: Tensor) -> Tensor:
    # The clamp keeps the untaken branch's power (and its gradient) finite for negative inputs.
    power = ((x.clamp(min=_SRGB_THRESHOLD) + _SRGB_A) / (1 + _SRGB_A)) ** 2.4
    return torch.where(x > _SRGB_THRESHOLD, power, x / _SRGB_SLOPE)


# The forward jumps up by 2.3e-9 at the threshold, from 0.04045 / 12.92 (linear) to the power branch's
# value: the inverse switches branch in the middle of that gap, so rounding errors of the linear values on
# either side never pick the other branch.
_SRGB_SEAM = (_SRGB_THRESHOLD / _SRGB_SLOPE + ((_SRGB_THRESHOLD + _SRGB_A) / (1 + _SRGB_A)) ** 2.4) / 2


def linear_to_srgb(x: Tensor) -> Tensor:
    power = (1 + _SRGB_A) * x.clamp(min=_SRGB_SEAM) ** (1 / 2.4) - _SRGB_A
    return torch.where(x > _SRGB_SEAM, power, x * _SRGB_SLOPE)


def _lab_f(t: Tensor) -> Tensor:
    cube_root = t.clamp(min=_DELTA**3) ** (1 / 3)
    return torch.where(t > _DELTA**3, cube_root, t / (3 * _DELTA**2) + 4 / 29)


def _lab_f_inverse(y: Tensor) -> Tensor:
    return torch.where(y > _DELTA, y**3, 3 * _DELTA**2 * (y - 4 / 29))


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1], (..., 3, H, W) -> CIE L*a*b* (L in [0, 100]), D65, unscaled."""
    xyz = _matmul(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64), srgb_to_linear(rgb))
    white = torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    fx, fy, fz = _lab_f(xyz / white).unbind(dim=-3)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=-3)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE L*a*b* (D65) -> sRGB, the exact inverse of :func:`rgb_to_lab` (not clamped to [0, 1])."""
    big_l, a, b = lab.unbind(dim=-3)
    fy = (big_l + 16) / 116
    f = torch.stack((fy + a / 500, fy, fy - b / 200), dim=-3)
    white = torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device).view(3, 1, 1)
    rgb_from_xyz = torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64))
    return linear_to_srgb(_matmul(rgb_from_xyz, _lab_f_inverse(f) * white))
