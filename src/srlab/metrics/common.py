"""Helpers shared by the metric functions: border shaving, input checks, 'valid' Gaussian filtering."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError


def shave(x: Tensor, border: int) -> Tensor:
    """Drop ``border`` pixels from each side of the last two (H, W) axes."""
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return x
    h, w = x.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"crop_border={border} leaves nothing of a {h}x{w} image")
    return x[..., border : h - border, border : w - border]


def prepare_pair(x: Tensor, y: Tensor, name: str, crop_border: int = 0) -> tuple[Tensor, Tensor, bool]:
    """Validate two images for a full-reference metric; return them as float64 (N, C, H, W).

    The third value says whether the inputs were single (C, H, W) images (squeeze the result).
    """
    for label, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor) or t.dim() not in (3, 4) or t.shape[-3] not in (1, 3):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise SrlabError(
                f"{name}: {label} must be a (C, H, W) or (N, C, H, W) tensor with C = 1 or 3, got {shape}"
            )
        if not t.is_floating_point():
            raise SrlabError(
                f"{name}: {label} must be a float tensor in [0, 1], got {t.dtype}; divide 8-bit images by 255"
            )
    if x.shape != y.shape:
        raise SrlabError(
            f"{name}: the images differ in size, {tuple(x.shape)} vs {tuple(y.shape)}; crop them to one size"
        )
    if crop_border < 0:
        raise SrlabError(f"{name}: crop_border must be >= 0, got {crop_border}")
    squeeze = x.dim() == 3
    if squeeze:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    # float64 for reference-grade numbers; MPS has no float64, so score there on the CPU.
    if x.device.type == "mps":
        x, y = x.cpu(), y.cpu()
    x, y = x.detach().to(torch.float64), y.detach().to(device=x.device, dtype=torch.float64)
    return shave(x, crop_border), shave(y, crop_border), squeeze


def filter_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable 'valid' filtering of (B, 1, H, W) by the window ``outer(g, g)`` (MATLAB ``filter2``).

    The Gaussian is symmetric, so correlation (conv2d) equals MATLAB's filter2 with the rotated window.
    """
    n = g.numel()
    x = F.conv2d(x, g.view(1, 1, n, 1))
    return F.conv2d(x, g.view(1, 1, 1, n))


def as_batch(x: Tensor, name: str) -> Tensor:
    """(C, H, W) -> (1, C, H, W); (N, C, H, W) unchanged; anything else is an SrlabError."""
    if not isinstance(x, Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise SrlabError(f"{name} must be a (C, H, W) or (N, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise SrlabError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
    return x.unsqueeze(0) if x.dim() == 3 else x
