"""Colour spaces a network can work in (``data.color_space``): a registry of exact, differentiable,
invertible transforms of RGB images in [0, 1].

Each space is a :class:`ColorTransform` module with ``to_space(rgb)`` and its exact inverse
``to_rgb(coords)`` on (..., 3, H, W) tensors, in the input's floating dtype, defined (and finite, with
finite gradients) for every real input, so a network's out-of-range output still maps back. The
coordinates are scaled to lie in [0, 1] for every RGB colour in [0, 1] (what networks initialised for
RGB images, e.g. rdsr's ``init=bicubic`` with its ReLU after the head, expect):

- ``rgb``: the identity.
- ``ycbcr``: ITU-R BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` on doubles (:mod:`srlab.metrics.color`, the
  conversion the Y-channel metrics use): Y in [16/255, 235/255], Cb and Cr in [16/255, 240/255].
- ``y``: the same coordinates, but only Y is predicted by the network; Cb and Cr are upscaled by MATLAB
  bicubic (``predicted = (0,)``; :mod:`srlab.models.color_space` does that).
- ``lab``: CIE L*a*b* of sRGB (IEC 61966-2-1 gamma, D65 white), scaled as (L/100, a/220 + 1/2,
  b/220 + 1/2): the sRGB gamut has a in [-86.2, 98.3] and b in [-107.9, 94.5].
- ``learned``: ``M @ rgb + c`` with a learnable 3x3 matrix ``M`` (initialised to the identity) and
  bias ``c`` (zero); ``to_rgb`` applies the exact inverse ``M^-1 (x - c)``, so the transform stays a change
  of basis: the network's output is read back in the same coordinates its input was written in. (A
  separately learned output transform would be two free 1x1 layers, i.e. only a slightly larger
  network, and its input and output coordinates would no longer be one space.)

Lab uses the CIE's exact constants, epsilon = (6/29)^3 and the linear slope 1/(3 (6/29)^2), which make
``f`` continuous and so exactly invertible; scikit-image rounds them (0.008856, 7.787), so its Lab
differs from this one by < 1e-4 in L, a and b. The sRGB matrix and the white point are scikit-image's
(the 6-decimal sRGB primaries, white (0.95047, 1, 1.08883)). The sRGB gamma's inverse switches branch at
``0.04045 / 12.92``, the image of the forward's threshold, which keeps the round trip exact across the
standard's 2e-9 seam.

A new space is one :class:`ColorTransform` subclass and one :func:`register_color_space` line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb


class ColorTransform(nn.Module, ABC):
    """RGB in [0, 1] <-> a space's coordinates, on (..., 3, H, W) tensors."""

    # The coordinates the network predicts; the others are upscaled by bicubic interpolation.
    predicted: tuple[int, ...] = (0, 1, 2)

    @abstractmethod
    def to_space(self, rgb: Tensor) -> Tensor: ...

    @abstractmethod
    def to_rgb(self, coords: Tensor) -> Tensor: ...


_SPACES: dict[str, Callable[[], ColorTransform]] = {}


def register_color_space(name: str, factory: Callable[[], ColorTransform]) -> None:
    if name in _SPACES:
        raise ValueError(f"colour space {name!r} is registered twice")
    _SPACES[name] = factory


def color_space_names() -> tuple[str, ...]:
    return tuple(_SPACES)


def check_color_space(name: object, key: str = "data.color_space") -> str:
    """``name`` if it is a registered space, else an :class:`SrlabError` naming ``key`` and the choices."""
    if not isinstance(name, str) or name not in _SPACES:
        raise SrlabError(f"unknown {key} {name!r}: use one of {'|'.join(_SPACES)}")
    return name


def color_transform(name: str) -> ColorTransform:
    """A fresh transform of the space ``name`` (a learned one at its initial value)."""
    return _SPACES[check_color_space(name)]()


class _Rgb(ColorTransform):
    def to_space(self, rgb: Tensor) -> Tensor:
        return rgb

    def to_rgb(self, coords: Tensor) -> Tensor:
        return coords


class _YCbCr(ColorTransform):
    def to_space(self, rgb: Tensor) -> Tensor:
        return rgb_to_ycbcr(rgb)

    def to_rgb(self, coords: Tensor) -> Tensor:
        return ycbcr_to_rgb(coords)


class _LumaOnly(_YCbCr):
    predicted = (0,)


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
# The scaling of (L, a, b) to [0, 1] coordinates.
_L_RANGE, _AB_RANGE = 100.0, 220.0


def _matmul(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix @ x`` over the channel axis of (..., 3, H, W)."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x.dtype), x)


def srgb_to_linear(x: Tensor) -> Tensor:
    # The clamp keeps the untaken branch's power (and its gradient) finite for negative inputs.
    power = ((x.clamp(min=_SRGB_THRESHOLD) + _SRGB_A) / (1 + _SRGB_A)) ** 2.4
    return torch.where(x > _SRGB_THRESHOLD, power, x / _SRGB_SLOPE)


def linear_to_srgb(x: Tensor) -> Tensor:
    seam = _SRGB_THRESHOLD / _SRGB_SLOPE
    power = (1 + _SRGB_A) * x.clamp(min=seam) ** (1 / 2.4) - _SRGB_A
    return torch.where(x > seam, power, x * _SRGB_SLOPE)


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


class _Lab(ColorTransform):
    def to_space(self, rgb: Tensor) -> Tensor:
        big_l, a, b = rgb_to_lab(rgb).unbind(dim=-3)
        return torch.stack((big_l / _L_RANGE, a / _AB_RANGE + 0.5, b / _AB_RANGE + 0.5), dim=-3)

    def to_rgb(self, coords: Tensor) -> Tensor:
        big_l, a, b = coords.unbind(dim=-3)
        return lab_to_rgb(torch.stack((big_l * _L_RANGE, (a - 0.5) * _AB_RANGE, (b - 0.5) * _AB_RANGE), dim=-3))


class LearnedTransform(ColorTransform):
    """``M @ rgb + c`` and its exact inverse; ``M`` starts at the identity, ``c`` at zero (float32
    parameters, saved with the model as ``space.matrix`` and ``space.bias``)."""

    def __init__(self) -> None:
        super().__init__()
        self.matrix = nn.Parameter(torch.eye(3))
        self.bias = nn.Parameter(torch.zeros(3))

    def to_space(self, rgb: Tensor) -> Tensor:
        return _matmul(self.matrix, rgb) + self.bias.to(rgb.dtype).view(3, 1, 1)

    def to_rgb(self, coords: Tensor) -> Tensor:
        # Inverted in float64 at least, so a float64 round trip is exact to float64 precision.
        wide = torch.promote_types(coords.dtype, torch.float64)
        inverse = torch.linalg.inv(self.matrix.to(wide)).to(coords.dtype)
        return _matmul(inverse, coords - self.bias.to(coords.dtype).view(3, 1, 1))


register_color_space("rgb", _Rgb)
register_color_space("ycbcr", _YCbCr)
register_color_space("y", _LumaOnly)
register_color_space("lab", _Lab)
register_color_space("learned", LearnedTransform)
