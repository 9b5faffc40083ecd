"""ELAN's building blocks: shift convolution, LFE, group-wise multi-scale self-attention, ELAB.

Zhang, Zeng, Guo, Zhang, "Efficient Long-Range Attention Network for Image Super-resolution",
ECCV 2022; official code xindongzhang/ELAN (Apache-2.0), ``models/elan_block.py``. Written anew from
the paper and the official structure; module and parameter names follow the official ones so that
official state dicts load strictly.

- :class:`ShiftConv2d`: the channels are split in five groups; four are shifted by one pixel
  (left, right, up, down; zeros enter at the border) and the rest pass unchanged, then a 1x1 conv
  mixes them. As in the official "fast-training-speed" form the shifts are a depth-wise 3x3
  convolution with fixed one-hot kernels, stored as a frozen ``nn.Parameter`` (``requires_grad=False``:
  the paper's parameter counts leave them out) under ``shift_conv.weight``, next to
  ``shift_conv.conv1x1``.
- :class:`LFE` (local feature extraction): shift-conv (C -> rC), ReLU, shift-conv (rC -> C).
- :class:`GMSA` (group-wise multi-scale self-attention): a 1x1 conv + BatchNorm projects the features,
  the channels are split in one group per window size and each group attends within non-overlapping
  windows of its size. As officially, the key *is* the query (``softmax(Q Q^T) V``, no 1/sqrt(d)
  scaling; the paper's "shared key/query"), and shifted windows are a cyclic roll by half a window
  with no attention mask (features wrap around the image border).
- :class:`ELAB`: 1 + ``shared_depth`` (LFE, GMSA) pairs with residual connections, where only the first
  GMSA computes attention maps and the following ones apply those maps to their own values (the
  paper's shared attention): their projection only produces values, so it is half as wide.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ELAB", "GMSA", "LFE", "ShiftConv2d", "window_partition", "window_reverse"]

# Kernel tap (row, column) of each of the five channel groups: the output at (i, j) reads the input at
# (i + row - 1, j + col - 1), i.e. left, right, up, down shifts, then the identity for the rest.
SHIFT_TAPS = ((1, 2), (1, 0), (2, 1), (0, 1), (1, 1))


class _FixedShiftThen1x1(nn.Module):
    """The official ``ShiftConv2d1``: a frozen one-hot depth-wise 3x3 conv, then a 1x1 conv."""

    def __init__(self, inp_channels: int, out_channels: int) -> None:
        super().__init__()
        weight = torch.zeros(inp_channels, 1, 3, 3)
        group = inp_channels // len(SHIFT_TAPS)
        for index, (row, col) in enumerate(SHIFT_TAPS):
            stop = inp_channels if index == len(SHIFT_TAPS) - 1 else (index + 1) * group
            weight[index * group : stop, 0, row, col] = 1.0
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.conv1x1 = nn.Conv2d(inp_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.conv2d(x, self.weight, padding=1, groups=self.weight.shape[0])
        return self.conv1x1(shifted)


class ShiftConv2d(nn.Module):
    """Shift convolution: fixed one-pixel shifts of four channel groups, then a 1x1 conv."""

    def __init__(self, inp_channels: int, out_channels: int) -> None:
        super().__init__()
        self.shift_conv = _FixedShiftThen1x1(inp_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift_conv(x)


class LFE(nn.Module):
    """Local feature extraction: two shift convolutions with a ReLU between (C -> rC -> C)."""

    def __init__(self, inp_channels: int, out_channels: int, *, exp_ratio: int = 4) -> None:
        super().__init__()
        self.conv0 = ShiftConv2d(inp_channels, out_channels * exp_ratio)
        self.conv1 = ShiftConv2d(out_channels * exp_ratio, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(F.relu(self.conv0(x)))


def window_partition(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * H/size * W/size, size * size, C), windows in raster order."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // size, size, w // size, size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, size * size, c)


def window_reverse(windows: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, height // size, width // size, size, size, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(-1, c, height, width)


class GMSA(nn.Module):
    """Group-wise multi-scale self-attention (one channel group per window size).

    ``forward(x, shared)`` returns ``(y, maps)``: with ``shared=None`` (``calc_attn=True``) it computes
    one attention map per group from the projected queries; otherwise (``calc_attn=False``) it applies
    the given maps to its values and computes no query-key product. ``shifts`` (0 or 1) rolls the
    features by half of each window before partitioning and back afterwards.
    """

    def __init__(
        self, channels: int, *, shifts: int = 0, window_sizes: Sequence[int] = (4, 8, 12), calc_attn: bool = True
    ) -> None:
        super().__init__()
        self.channels = channels
        self.shifts = shifts
        self.window_sizes = tuple(window_sizes)
        self.calc_attn = calc_attn
        groups = len(self.window_sizes)
        # the official split: 2C/3 (query + value) or C/3 (value) channels per group
        width = 2 * channels if calc_attn else channels
        self.split_chns = [width // groups] * groups
        self.project_inp = nn.Sequential(nn.Conv2d(channels, width, kernel_size=1), nn.BatchNorm2d(width))
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, shared: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.calc_attn != (shared is None):
            raise ValueError("a GMSA computes its attention maps iff it was built with calc_attn=True")
        _, _, h, w = x.shape
        parts = torch.split(self.project_inp(x), self.split_chns, dim=1)
        outputs, maps = [], []
        for index, (part, size) in enumerate(zip(parts, self.window_sizes)):
            if self.shifts > 0:
                part = torch.roll(part, shifts=(-(size // 2), -(size // 2)), dims=(2, 3))
            tokens = window_partition(part, size)
            if shared is None:
                q, v = tokens.chunk(2, dim=-1)
                attn = (q @ q.transpose(-2, -1)).softmax(dim=-1)
            else:
                attn, v = shared[index], tokens
            y = window_reverse(attn @ v, size, h, w)
            if self.shifts > 0:
                y = torch.roll(y, shifts=(size // 2, size // 2), dims=(2, 3))
            outputs.append(y)
            maps.append(attn)
        return self.project_out(torch.cat(outputs, dim=1)), (maps if shared is None else list(shared))


class ELAB(nn.Module):
    """Efficient long-range attention block: (LFE, GMSA) pairs sharing the first pair's attention."""

    def __init__(
        self,
        inp_channels: int,
        out_channels: int,
        *,
        exp_ratio: int = 2,
        shifts: int = 0,
        window_sizes: Sequence[int] = (4, 8, 12),
        shared_depth: int = 1,
    ) -> None:
        super().__init__()
        if inp_channels != out_channels:
            raise ValueError("ELAB is residual: inp_channels must equal out_channels")
        self.shared_depth = shared_depth
        self.modules_lfe = nn.ModuleDict(
            {f"lfe_{i}": LFE(inp_channels, out_channels, exp_ratio=exp_ratio) for i in range(1 + shared_depth)}
        )
        self.modules_gmsa = nn.ModuleDict(
            {
                f"gmsa_{i}": GMSA(inp_channels, shifts=shifts, window_sizes=window_sizes, calc_attn=i == 0)
                for i in range(1 + shared_depth)
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = None
        for lfe, gmsa in zip(self.modules_lfe.values(), self.modules_gmsa.values()):
            x = lfe(x) + x
            y, maps = gmsa(x, maps)
            x = y + x
        return x
