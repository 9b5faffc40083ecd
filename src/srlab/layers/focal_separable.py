"""LAMNet's focal separable aggregation (FSA), the op of its CUDA extension, in portable PyTorch.

The official op is a CUDA kernel (zononhzy/LAMNet ``basicsr/ops/fsa/src/cuda/fsa_im2col_cuda.cuh``,
commit 5b73a79). Along one axis (rows: "vertical", columns: "horizontal") every output element is a
weighted sum of K taps, each tap the mean of a segment of the input line:

    out[b, c, i] = sum_k kernel[b, g(c) * K + k, i] * (1 / len_k) * sum_{n < len_k} x[b, c, i + start_k + n * dir_k]

with ``(start_k, len_k)`` the rows of the layer's kernel map, ``dir_k`` = +1 for ``start_k >= 0`` and -1
otherwise (segments grow away from the centre), positions outside the image contributing zero, and
``g(c) = c // group_channels``: one predicted weight per tap, pixel and group of channels. The segments
lengthen away from the centre (focal: 1 pixel near, 2 and 4 pixels far), so K taps cover a line of
``sum(len_k)`` pixels.

Written with shifted slices of a zero-padded input, summed in the kernel's order (each segment in ``n``
order, then ``sum += val * weight / len`` over ``k``), so float32 results follow the kernel's rounding.
Autograd differentiates it; the official backward kernel writes the same two gradients by hand
(``grad_input`` scattered through the segments, ``grad_kernel`` = segment mean x output gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIRECTIONS = ("horizontal", "vertical")


def focal_kernel_map(kernel_size: int, kernel_loc: tuple[int, ...], kernel_stride: tuple[int, ...]) -> list[tuple[int, int]]:
    """The (start, length) of each of the ``kernel_size`` segments, left to right, as LAMNet's
    ``LSAMixer.generate_kernel_map_1d`` lays them out: a 1-pixel centre, then on each side the segments
    up to tap ``kernel_loc[i] - 1`` are ``kernel_stride[i]`` pixels long."""
    if len(kernel_loc) != len(kernel_stride) or not kernel_loc:
        raise ValueError(f"kernel_loc {kernel_loc} and kernel_stride {kernel_stride} must have the same length")
    if kernel_loc[-1] != kernel_size // 2 + 1 or kernel_size % 2 == 0:
        raise ValueError(f"an odd kernel_size needs kernel_loc to end at kernel_size // 2 + 1, got {kernel_size}, {kernel_loc}")
    starts, lengths = [0], [1]
    first_tap = 1
    for loc, stride in zip(kernel_loc, kernel_stride):
        after = starts[-1] + lengths[-1]
        starts += [after + n * stride for n in range(loc - first_tap)]
        lengths += [stride] * (loc - first_tap)
        first_tap = loc
    right = list(zip(starts, lengths))
    left = [(-start, length) for start, length in reversed(right[1:])]
    return left + right


def focal_patch_size(kernel_map: list[tuple[int, int]]) -> int:
    """The line length the map covers (odd, centred): ``2 * (last start + last length) - 1``."""
    start, length = kernel_map[-1]
    return 2 * (start + length) - 1


def focal_separable_aggregation(
    x: torch.Tensor, kernel: torch.Tensor, kernel_map: list[tuple[int, int]], groups: int, direction: str
) -> torch.Tensor:
    """The op: ``x`` (B, C, H, W), ``kernel`` (B, groups * K, H, W) -> (B, C, H, W)."""
    b, c, h, w = x.shape
    taps = len(kernel_map)
    if kernel.shape != (b, groups * taps, h, w) or c % groups:
        raise ValueError(
            f"kernel of shape {tuple(kernel.shape)} does not fit an input of shape {tuple(x.shape)} with "
            f"{groups} groups of {taps} taps: expected ({b}, {groups * taps}, {h}, {w})"
        )
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    reach = focal_patch_size(kernel_map) // 2
    vertical = direction == "vertical"
    length = h if vertical else w
    padded = F.pad(x, (0, 0, reach, reach) if vertical else (reach, reach))
    # (B, groups, C / groups, ...): each group of channels takes its own weights
    padded = padded.reshape(b, groups, c // groups, *padded.shape[2:])
    weights = kernel.reshape(b, groups, 1, taps, h, w)

    def line(offset: int) -> torch.Tensor:
        begin = reach + offset
        return padded[..., begin : begin + length, :] if vertical else padded[..., begin : begin + length]

    total = torch.zeros_like(padded[..., :h, :w]) if vertical else torch.zeros_like(padded[..., :w])
    for k, (start, seg_len) in enumerate(kernel_map):
        step = 1 if start >= 0 else -1
        segment = line(start)
        for n in range(1, seg_len):
            segment = segment + line(start + n * step)
        total = total + segment * weights[:, :, :, k] / seg_len
    return total.reshape(b, c, h, w)


class FocalSeparableAggregation(nn.Module):
    """The op as a parameter-free layer, so that the MAC counter sees it (``declared_macs``)."""

    def __init__(self, kernel_map: list[tuple[int, int]], groups: int, direction: str) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.kernel_map = [tuple(entry) for entry in kernel_map]
        self.groups = groups
        self.direction = direction

    def forward(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return focal_separable_aggregation(x, kernel, self.kernel_map, self.groups, self.direction)

    def declared_macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """One multiply-add per tap and output element (the segment sums are additions, not counted)."""
        return out.numel() * len(self.kernel_map)
