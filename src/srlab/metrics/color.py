"""ITU-R BT.601 YCbCr conversions, matching MATLAB's ``rgb2ycbcr`` / ``ycbcr2rgb`` on double images.

Everything is in the [0, 1] range: Y lies in [16/255, 235/255], Cb and Cr in [16/255, 240/255].
The arithmetic follows MATLAB's order (coefficients pre-divided by 255, a weighted sum, then the
offset) so that float64 results agree with MATLAB to the last few ulps — the golden PSNR/SSIM test
depends on that. Work is done in the input's floating dtype; pass float64 where precision matters.
"""

from __future__ import annotations

import torch
from torch import Tensor

# MATLAB's rgb2ycbcr matrix for 8-bit data (rows: Y, Cb, Cr) and its offsets.
_T = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
_OFFSET = (16.0, 128.0, 128.0)


def _inverse_rows() -> tuple[tuple[tuple[float, ...], float], ...]:
    # MATLAB inverts the 8-bit matrix in double: rgb = 255 * T^-1 @ ycbcr - T^-1 @ offset. Computed once
    # at import, as Python floats: under torch.export's tracer the tensors would be fake and .tolist() fail.
    t_inv = torch.linalg.inv(torch.tensor(_T, dtype=torch.float64))
    off = t_inv @ torch.tensor(_OFFSET, dtype=torch.float64)
    return tuple((tuple((255.0 * t_inv[p]).tolist()), -float(off[p])) for p in range(3))


_T_INV_ROWS = _inverse_rows()  # per RGB channel: (coefficients on Y, Cb, Cr; offset)


def _check_channels(x: Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} expects a (..., 3, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a floating tensor in [0, 1], got {x.dtype}")


def _lincomb(x: Tensor, row: list[float] | tuple[float, ...], offset: float) -> Tensor:
    """``row[0]*x0 + row[1]*x1 + row[2]*x2 + offset`` over the channel axis, in MATLAB's order."""
    c0, c1, c2 = x.unbind(dim=-3)
    return row[0] * c0 + row[1] * c1 + row[2] * c2 + offset


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """RGB in [0, 1], shape (..., 3, H, W) -> BT.601 YCbCr in [0, 1], same shape (MATLAB ``rgb2ycbcr``)."""
    _check_channels(x, "rgb_to_ycbcr")
    channels = [
        _lincomb(x, [t / 255.0 for t in row], off / 255.0) for row, off in zip(_T, _OFFSET)
    ]
    return torch.stack(channels, dim=-3)


def rgb_to_y(x: Tensor) -> Tensor:
    """The Y (luma) channel of :func:`rgb_to_ycbcr`, shape (..., 1, H, W).

    A one-channel input is treated as a grey image stored as RGB (R = G = B), which is what MATLAB
    sees when a greyscale picture is saved as a three-channel file.
    """
    if x.dim() >= 3 and x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    _check_channels(x, "rgb_to_y")
    return _lincomb(x, [t / 255.0 for t in _T[0]], _OFFSET[0] / 255.0).unsqueeze(-3)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """BT.601 YCbCr in [0, 1], shape (..., 3, H, W) -> RGB in [0, 1] (MATLAB ``ycbcr2rgb``; not clamped)."""
    _check_channels(x, "ycbcr_to_rgb")
    channels = [_lincomb(x, row, offset) for row, offset in _T_INV_ROWS]
    return torch.stack(channels, dim=-3)
