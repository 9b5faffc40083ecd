"""State dicts for the official code: srlab's weights plus the derived buffers the official model stores.

Some official models keep tensors computed from their configuration in their state dict (SwinIR's and
Swin2SR's shifted-window ``attn_mask`` for the training patch size). srlab computes those at forward
time and drops them when loading (``derived_checkpoint_keys``, :mod:`srlab.models.weights`), so its own
files lack them and the official ``load_state_dict(strict=True)`` would refuse them.
:func:`official_state_dict` adds them back under the official names, shapes and values: a model that
declares ``derived_checkpoint_keys`` provides them with ``derived_checkpoint_tensors(img_size=...)``.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.models.registry import spec_of

__all__ = ["OFFICIAL_IMG_SIZE", "official_state_dict", "save_official_weights"]

# The ``img_size`` (training patch size) the official SwinIR-light, Swin2SR and DF2K classical SwinIR
# models are built with in their test scripts; the DIV2K-trained classical SwinIR models use 48.
OFFICIAL_IMG_SIZE = 64


def official_state_dict(model: nn.Module, *, img_size: int = OFFICIAL_IMG_SIZE) -> dict[str, torch.Tensor]:
    """``model``'s state dict (on the CPU) with the derived buffers of its official code added.

    ``img_size`` is the official constructor's argument of that name, which sizes the derived buffers of
    size-dependent models (SwinIR, Swin2SR); it is ignored by the others. SrlabError for a model that has
    no official code (srlab's own architectures).
    """
    spec = spec_of(model)
    if spec.info.origin == "srlab":
        raise SrlabError(f"model '{spec.name}' exists only in srlab: there is no official code to export for")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    patterns = getattr(model, "derived_checkpoint_keys", ())
    if not patterns:
        return state
    derived = model.derived_checkpoint_tensors(img_size=img_size)
    stray = [k for k in derived if k in state or not any(fnmatchcase(k, p) for p in patterns)]
    if stray:  # a model bug: its derived tensors must be exactly the ones it drops on loading
        raise ValueError(f"{spec.name}: derived tensor {stray[0]!r} is not one of its derived_checkpoint_keys")
    return {**state, **derived}


def save_official_weights(
    path: str | os.PathLike[str], model: nn.Module, *, img_size: int = OFFICIAL_IMG_SIZE
) -> dict[str, torch.Tensor]:
    """Write :func:`official_state_dict` as a plain ``.pth`` state dict (what ``torch.load`` and the official
    test scripts read), atomically; returns what was written."""
    path = Path(path)
    if path.suffix.lower() not in (".pth", ".pt"):
        raise SrlabError(f"'{path}': official weights are written as a .pth file (name it .pth)")
    state = official_state_dict(model, img_size=img_size)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return state
