"""Generic super-resolution of a tensor by any registered model.

Every model declares its size requirement (``ModelInfo.size_multiple``), how sizes that are not a
multiple are padded (``ModelInfo.pad_mode``) and how far it looks (``ModelInfo.receptive_radius``).
This module pads the LR input to the required multiple in that mode (or leaves it to the model, for
models that pad inside their forward as their official code does: then the path computes exactly the
model's own function), optionally splits it into tiles that overlap by at least the receptive radius,
and crops the result. Tiles start on multiples of the size multiple and only their overlap-free cores
are kept, so the tiled result equals the untiled one while memory stays bounded by the tile size.

``self_ensemble=True`` runs that whole path (padding, tiling, cropping) on each of the eight
rotated/flipped copies of the input and averages the results mapped back (``srlab.inference.ensemble``).
"""

from __future__ import annotations

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.inference.ensemble import self_ensemble as _self_ensemble
from srlab.layers.padding import pad_to_multiple, round_up
from srlab.models.registry import spec_of


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SrlabError("--device cuda was asked for but no CUDA GPU is available: use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise SrlabError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


@torch.inference_mode()
def upscale_tensor(
    model: nn.Module,
    lr: torch.Tensor,
    *,
    tile: int | None = None,
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Super-resolve ``lr`` ((C,H,W) or (N,C,H,W), RGB in [0, 1]) with ``model``; returns the same rank.

    An arbitrary-scale model at a non-integer scale renders the whole image at once, at ``size``
    (the HR size, for evaluation) or MATLAB's output size ``ceil(scale * H) x ceil(scale * W)``; it
    takes no tiles and no self-ensemble (their pieces would not fall on whole output pixels).

    ``tile`` is the side of the part of each tile that is kept, in LR pixels; ``tile_overlap`` the
    context added on every side (default: the model's receptive radius). ``self_ensemble`` averages
    the x8 geometric self-ensemble (8 forward passes). The output is not clamped.
    """
    if lr.dim() not in (3, 4):
        raise SrlabError(f"expected an image tensor (C,H,W) or (N,C,H,W), got shape {tuple(lr.shape)}")
    if self_ensemble and not float(spec_of(model).scale).is_integer():
        raise SrlabError(f"--self_ensemble needs an integer scale, not x{spec_of(model).scale}")
    if self_ensemble:
        return _self_ensemble(
            lambda x: upscale_tensor(model, x, tile=tile, tile_overlap=tile_overlap), lr
        )
    spec = spec_of(model)
    info, scale = spec.info, spec.scale
    if not float(scale).is_integer():
        return _upscale_real_scale(model, lr, scale, tile=tile, size=size)
    single = lr.dim() == 3
    x = lr.unsqueeze(0) if single else lr
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    height, width = x.shape[-2:]
    multiple = max(1, info.size_multiple)
    # A model that pads inside gets the image (and the last row/column of tiles) unpadded: it pads them
    # itself, in its own mode, by the same amount, since tiles start on multiples.
    padded = x if info.pad_mode == "inside" else pad_to_multiple(x, multiple, info.pad_mode)

    if tile is None or tile >= max(padded.shape[-2:]):
        out = model(padded)
    else:
        if tile <= 0:
            raise SrlabError(f"--tile must be positive, got {tile}")
        if info.tiling_refusal:
            raise SrlabError(f"--tile: model {spec.name!r} with {info.tiling_refusal}")
        overlap = info.receptive_radius if tile_overlap is None else tile_overlap
        if overlap < 0:
            raise SrlabError(f"--tile_overlap must be >= 0, got {overlap}")
        out = _tiled(model, padded, scale, round_up(tile, multiple), round_up(overlap, multiple))
    out = out[..., : height * scale, : width * scale]
    return out[0] if single else out


def _upscale_real_scale(
    model: nn.Module, lr: torch.Tensor, scale: float, *, tile: int | None, size: tuple[int, int] | None
) -> torch.Tensor:
    if tile is not None:
        raise SrlabError(f"--tile needs an integer scale: x{scale} renders whole images (drop --tile)")
    x = lr.unsqueeze(0) if lr.dim() == 3 else lr
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    out = model(x, size=None if size is None else tuple(size))
    return out[0] if lr.dim() == 3 else out


def _tiled(model: nn.Module, x: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    batch, _, height, width = x.shape
    out: torch.Tensor | None = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            y0, x0 = max(0, top - overlap), max(0, left - overlap)
            y1, x1 = min(height, top + tile + overlap), min(width, left + tile + overlap)
            result = model(x[..., y0:y1, x0:x1])
            if out is None:
                out = result.new_empty(batch, result.shape[1], height * scale, width * scale)
            core_h, core_w = min(tile, height - top), min(tile, width - left)
            oy, ox = (top - y0) * scale, (left - x0) * scale
            out[..., top * scale:(top + core_h) * scale, left * scale:(left + core_w) * scale] = (
                result[..., oy:oy + core_h * scale, ox:ox + core_w * scale]
            )
    assert out is not None
    return out
