"""Padding an image's bottom and right edges up to a multiple of a size: one function for the window
and patch models that pad inside their forward and for the generic inference path."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD_MODES = ("reflect", "replicate", "zeros")


def round_up(value: int, multiple: int) -> int:
    # Not -(-value // multiple): ONNX exporters turn // into a division that truncates towards zero, and
    # sizes traced as symbols (srlab.export) would then round a negative numerator the wrong way.
    return (value + multiple - 1) // multiple * multiple


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect", *, min_size: int = 1) -> torch.Tensor:
    """Pad the last two dimensions of ``x`` at the bottom/right to multiples of ``multiple`` (and to at
    least ``min_size`` rounded up to it); returns ``x`` itself when nothing is needed.

    ``mode``: ``reflect`` (what most official models do), ``replicate`` or ``zeros``. Reflection needs
    the pad to be smaller than the side; where it is not (a tiny input, on which the official reflect
    pad raises), the edge is replicated instead.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad mode must be one of {', '.join(PAD_MODES)}, got {mode!r}")
    height, width = x.shape[-2:]
    pad_h = max(round_up(height, multiple), round_up(min_size, multiple)) - height
    pad_w = max(round_up(width, multiple), round_up(min_size, multiple)) - width
    # An ONNX export (srlab.export) traces one example size; the graph must pad whatever size it gets, so
    # there the pad is always part of it (padding by 0 where nothing is needed) and stays in ``mode``.
    exporting = torch.jit.is_tracing() or getattr(torch.compiler, "is_exporting", lambda: False)()  # torch < 2.5: none
    if pad_h == 0 and pad_w == 0 and not exporting:
        return x
    if mode == "zeros":
        return F.pad(x, (0, pad_w, 0, pad_h))
    if mode == "reflect" and (pad_h >= height or pad_w >= width) and not exporting:
        mode = "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
