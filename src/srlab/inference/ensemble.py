"""Geometric self-ensemble ("enhanced prediction", the "+" rows of EDSR/RCAN/IMDN tables).

The LR image is transformed by each of the eight symmetries of the square (four rotations by 90
degrees, each with or without a horizontal flip), every transformed image is super-resolved, each
result is mapped back by the inverse transform, and the eight are averaged. The transforms act on
the last two dimensions, so they work on (C,H,W) and (N,C,H,W) tensors alike.

Transform ``(k, flip)`` is "flip left-right if ``flip``, then rotate by ``k`` quarter turns"
(``torch.rot90``, counter-clockwise); its inverse rotates back by ``-k`` quarter turns, then flips.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# The eight symmetries of the square: (quarter turns, horizontal flip first).
TRANSFORMS: tuple[tuple[int, bool], ...] = tuple((k, flip) for flip in (False, True) for k in range(4))


def apply_transform(x: torch.Tensor, transform: tuple[int, bool]) -> torch.Tensor:
    k, flip = transform
    if flip:
        x = x.flip(-1)
    return (torch.rot90(x, k, dims=(-2, -1)) if k % 4 else x).contiguous()


def invert_transform(y: torch.Tensor, transform: tuple[int, bool]) -> torch.Tensor:
    k, flip = transform
    if k % 4:
        y = torch.rot90(y, -k, dims=(-2, -1))
    return y.flip(-1) if flip else y


def self_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The mean of ``invert(fn(transform(x)))`` over the eight transforms.

    ``fn`` maps an image tensor to its super-resolved tensor (any scale). The sum is accumulated in
    float64 (exact for eight float32 or float16 terms of similar size, so a model that commutes with the
    transforms gives back its plain output) and the result has ``fn``'s output dtype.
    """
    total: torch.Tensor | None = None
    out_dtype = None
    for transform in TRANSFORMS:
        y = invert_transform(fn(apply_transform(x, transform)), transform)
        if total is None:
            out_dtype = y.dtype
            total = y.to(torch.float64, copy=True)
        else:
            total += y
    assert total is not None
    return (total / len(TRANSFORMS)).to(out_dtype)
