"""Shared-feature execution of ``rdsr_adaptive``'s exits: every depth once, on the blocks that still need it.

The region mode (:mod:`srlab.adaptive.regions`) runs each merged rectangle of one exit from the LR
input with 4 pixels of context: where the exit changes from one block to the next, nearly every block
pays a ring of context through every layer it runs (on the 2K test photos, 0.666 of the full path's MACs
for routes worth 0.485). Here the network runs depth by depth over one feature map per depth instead:

* the head on the whole image;
* block ``j`` (``1 .. N``) on ``D_j``: the blocks whose exit is ``j`` or deeper, grown by ``3 (N - j)``
  pixels, so that block ``j + 1``'s three 3x3 convolutions find exact input around every pixel they must
  compute. ``D_j`` is cut into disjoint rectangles of at most ``region`` pixels a side; each runs its
  convolutions on its rectangle plus 3 pixels read from depth ``j - 1``'s map, unpadded but at the image
  border (zero padding there, as the whole-image forward pads). So the context is paid once around each
  connected area of ``D_j`` (plus a few pixels of convolution per rectangle side that the next
  rectangle computes again), not around every region of every exit, and every value computed is the
  whole-image forward's value;
* the block's channel attention pools over all of ``D_j`` (two passes: the block's branch on every
  rectangle, then the gate): the whole image where every block goes that deep;
* each exit's 1x1 fusion on its own blocks (no context needed), ESA on the whole fused map (its
  receptive field is most of the image; ~0.5 % of the MACs), the long skip, and each exit's tail on its
  own blocks with 1 pixel read from the fused map.

With every block on the full exit this is the static network's whole-image forward, up to float
rounding (tested), whatever the rectangles. With mixed exits a pixel's value differs from its exit's
whole-image forward only through the channel attention's pool (over ``D_j``, not the whole image) and
ESA, which sees the other exits' fused features around it (the region mode's windows see zero padding
4 pixels away instead).

MACs are counted for what ran, as :func:`srlab.models.complexity.count_macs` counts them: every
convolution at the size it ran (context and redundant borders included), the pools, ESA on the whole
image.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srlab.models.complexity import count_macs
from srlab.models.rdsr_adaptive import RDSRAdaptive

BLOCK_RADIUS = 3  # the three 3x3 convolutions of a residual distillation block


@dataclass(frozen=True)
class SharedStats:
    """What one shared-feature inference ran: the MACs, and the rectangles per stage (depths 1..N, then tails)."""

    macs: int
    rectangles: tuple[int, ...]
    area: tuple[int, ...]  # LR pixels each block depth computed (its D_j)
    routes: torch.Tensor  # (rows, cols) the exits taken (after_first's, where given)


def _breaks(count: int, block: int, grow: int, size: int) -> list[int]:
    """Where the grown blocks' borders can lie along one side: every block border +- ``grow``, clipped."""
    edges = {0, size}
    for index in range(count + 1):
        edges.update((min(max(index * block - grow, 0), size), min(max(index * block + grow, 0), size)))
    return sorted(edges)


def _near(starts: list[int], count: int, block: int, grow: int) -> torch.Tensor:
    """(len(starts), count): whether block ``j`` grown by ``grow`` holds pixel ``starts[i]``."""
    pixel = torch.tensor(starts)[:, None]
    first = torch.arange(count) * block
    return (pixel >= first - grow) & (pixel < first + block + grow)


def grown_cover(
    mask: torch.Tensor, *, block: int, height: int, width: int, grow: int, max_side: int
) -> list[tuple[int, int, int, int]]:
    """Disjoint rectangles ``(y0, y1, x0, x1)``, at most ``max_side`` pixels a side, covering exactly the
    pixels of a ``height`` x ``width`` image within ``grow`` pixels (in rows and columns) of a block set
    in the (rows, cols) ``mask`` of ``block`` x ``block`` blocks.

    The pixel set's borders lie on a grid of block borders +- ``grow``; its cells are merged as
    :func:`srlab.adaptive.regions.merge_blocks` merges blocks: runs along each row of cells, cut before
    they exceed ``max_side``, joined with the same run in the rows below while short enough.
    """
    if not bool(mask.any()):
        return []
    ys = _breaks(mask.shape[0], block, grow, height)
    xs = _breaks(mask.shape[1], block, grow, width)
    # Each cell is wholly in or out: it is in where a set block lies within ``grow`` of its first pixel.
    near_rows = _near(ys[:-1], mask.shape[0], block, grow)  # (cell rows, block rows)
    near_cols = _near(xs[:-1], mask.shape[1], block, grow)
    in_rows = (near_rows[:, :, None] & mask[None]).any(dim=1)  # (cell rows, block cols)
    cells = (in_rows[:, None, :] & near_cols[None]).any(dim=2).tolist()
    done: list[tuple[int, int, int, int]] = []
    open_: dict[tuple[int, int], int] = {}  # (x0, x1) -> top of the open rectangle
    for row, in_row in enumerate(cells):
        runs, col = [], 0
        while col < len(in_row):
            if not in_row[col]:
                col += 1
                continue
            start = col
            col += 1
            while col < len(in_row) and in_row[col] and xs[col + 1] - xs[start] <= max_side:
                col += 1
            runs.append((xs[start], xs[col]))
        still_open = {}
        for run in runs:
            top = open_.pop(run, ys[row])
            if ys[row + 1] - top > max_side:  # too tall with this row: close it, start anew here
                done.append((top, ys[row], *run))
                top = ys[row]
            still_open[run] = top
        done += [(top, ys[row], x0, x1) for (x0, x1), top in open_.items()]
        open_ = still_open
    done += [(top, ys[-1], x0, x1) for (x0, x1), top in open_.items()]
    return done


class _Counter:
    """MACs of the convolutions run, counted as count_macs counts them (output elements x input
    channels x kernel area)."""

    def __init__(self) -> None:
        self.total = 0

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: tuple[int, int] = (0, 0)
             ) -> torch.Tensor:
        out = F.conv2d(x, weight, bias, padding=padding)
        self.total += out.numel() * weight.shape[1] * weight.shape[2] * weight.shape[3]
        return out


def _window(rect: tuple[int, int, int, int], context: int, height: int, width: int
            ) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """``rect`` grown by ``context`` and clipped to the image, and the zero padding (rows, columns) of each
    3x3 convolution on it: one where a side lies on the image border (there the whole-image forward pads
    a zero), none where both sides are inside the image."""
    y0, y1, x0, x1 = rect
    window = (max(y0 - context, 0), min(y1 + context, height), max(x0 - context, 0), min(x1 + context, width))
    return window, (int(window[0] == 0 or window[1] == height), int(window[2] == 0 or window[3] == width))


def _crop(x: torch.Tensor, top: int, left: int, rect: tuple[int, int, int, int]) -> torch.Tensor:
    """The pixels of ``rect`` in ``x``, a map whose top-left pixel is image pixel (``top``, ``left``)."""
    y0, y1, x0, x1 = rect
    return x[..., y0 - top : y1 - top, x0 - left : x1 - left]


def _convolved(source: torch.Tensor, convs: list[tuple[torch.Tensor, torch.Tensor]], rect: tuple[int, int, int, int],
               counter: _Counter, *, relu: bool) -> list[torch.Tensor]:
    """3x3 convolutions ``(weight, bias)`` in series (each followed by a ReLU if ``relu``) on ``rect``, from
    a map ``source`` exact on ``rect`` grown by ``len(convs)``: each output cropped to ``rect``.

    Along a dimension inside the image, unpadded: each convolution loses a pixel on both sides. Along one
    with a side on the image border, padded by one zero on both sides: exact on the border side, and on
    an inner side the padding's wrong values reach one pixel further in per convolution, never the
    ``len(convs)`` pixels of context around ``rect``."""
    height, width = source.shape[-2:]
    (top, bottom, left, right), padding = _window(rect, len(convs), height, width)
    x = source[..., top:bottom, left:right]
    outputs = []
    for weight, bias in convs:
        x = counter.conv(x, weight, bias, padding)
        if relu:
            x = F.relu(x)
        top, left = top + 1 - padding[0], left + 1 - padding[1]
        outputs.append(_crop(x, top, left, rect))
    return outputs


_ESA_MACS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int, int], int]] = weakref.WeakKeyDictionary()


def _esa_macs(esa: nn.Module, channels: int, hw: tuple[int, int]) -> int:
    """MACs of ESA on one (channels, h, w) map, counted once per module and size."""
    counts = _ESA_MACS.setdefault(esa, {})
    key = (channels, *hw)
    if key not in counts:
        counts[key] = count_macs(esa, hw, channels=channels)
    return counts[key]


def _paste(target: torch.Tensor, rect: tuple[int, int, int, int], values: torch.Tensor) -> None:
    y0, y1, x0, x1 = rect
    target[..., y0:y1, x0:x1] = values


def _run_block(block: nn.Module, source: torch.Tensor, rects: list, counter: _Counter) -> torch.Tensor:
    """One residual distillation block on ``rects`` of the previous depth's map ``source``: its branch on
    each rectangle, then the channel attention's gate from the mean over all of them, then the residual.
    Returns the new depth's map (defined on ``rects`` only)."""
    target = torch.empty_like(source)
    total = source.new_zeros(1, source.shape[1], 1, 1)
    branches = []
    for rect in rects:
        convs = [(conv.weight, conv.bias) for conv in (block.conv1, block.conv2, block.conv3)]
        branch = counter.conv(torch.cat(_convolved(source, convs, rect, counter, relu=True), dim=1),
                              block.fuse.weight, block.fuse.bias)
        total += branch.sum(dim=(2, 3), keepdim=True)
        branches.append(branch)
    pixels = sum(branch.shape[-2] * branch.shape[-1] for branch in branches)
    attention = block.attention
    counter.total += pixels * source.shape[1]  # the average pool: one per element, as count_macs counts it
    hidden = F.relu(counter.conv(total / pixels, attention.squeeze.weight, attention.squeeze.bias))
    gate = torch.sigmoid(counter.conv(hidden, attention.excite.weight, attention.excite.bias))
    for (y0, y1, x0, x1), branch in zip(rects, branches):
        torch.addcmul(source[..., y0:y1, x0:x1], branch, gate, out=target[..., y0:y1, x0:x1])
    return target


@torch.no_grad()
def shared_upscale(network: RDSRAdaptive, lr: torch.Tensor, routes: torch.Tensor, *, block: int, region: int,
                   after_first: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, SharedStats]:
    """One LR image (1, 3, H, W) whose ``block`` x ``block`` blocks take the exits ``routes`` (rows, cols),
    run depth by depth (see the module docstring); rectangles at most ``region`` pixels a side. Blocks
    whose route is -1 take no exit: the network runs no block and no tail there (their fused features,
    which ESA reads around the other blocks, are exit 0's) and their SR pixels are zero, for the caller to
    fill.
    ``after_first`` (the cascade's second stage, :mod:`srlab.adaptive.rdsr_cascade`): called with the first
    block's (1, C, H, W) output (defined on the blocks of exit 1 or deeper) once it has run, it returns
    the routes the later depths, fusions and tails take."""
    _, _, height, width = lr.shape
    depth = len(network.blocks)
    counter = _Counter()
    lr = lr.contiguous(memory_format=torch.channels_last)

    def cover(mask: torch.Tensor, grow: int) -> list[tuple[int, int, int, int]]:
        return grown_cover(mask, block=block, height=height, width=width, grow=grow, max_side=region)

    shallow = F.relu(counter.conv(lr, network.head.weight, network.head.bias, (1, 1)))
    maps, rectangles, areas = [shallow], [], []
    for j, layer in enumerate(network.blocks, start=1):
        if j == 2 and after_first is not None and len(maps) == 2:
            routes = after_first(maps[1])
        rects = cover(routes >= j, BLOCK_RADIUS * (depth - j))
        rectangles.append(len(rects))
        areas.append(sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in rects))
        if rects:  # (none: no block goes this deep, nor deeper)
            maps.append(_run_block(layer, maps[-1], rects, counter))
    fused = torch.zeros_like(shallow)
    exits = [(k, cover(routes == k, 0)) for k in range(network.num_exits)]
    # Blocks that take no exit are fused as exit 0 (a 1x1 convolution of the shallow features): ESA reads
    # far around every block, and zeros there cost the blocks beside them up to 0.4 dB on clean photos.
    fusions = [(0, cover(routes <= 0, 0))] + exits[1:]
    for k, rects in fusions:
        weight, bias = (network.fuse.weight, network.fuse.bias) if k == depth else network.exit_fusion(k)
        for y0, y1, x0, x1 in rects:
            inputs = torch.cat([m[..., y0:y1, x0:x1] for m in (maps[1 : k + 1] or maps[:1])], dim=1)
            _paste(fused, (y0, y1, x0, x1), counter.conv(inputs, weight, bias))
    features = network.esa(fused) + shallow
    counter.total += _esa_macs(network.esa, shallow.shape[1], (height, width))
    subpixels = None  # every exit's tail output, shuffled into the SR image once at the end
    for k, rects in exits:
        tail = (network.tail.weight, network.tail.bias)
        if k < depth:  # an early exit's tail: the network's plus its trained correction
            delta = network.exit_tail_delta[k]
            tail = (tail[0] + delta.weight, tail[1] + delta.bias)
        for rect in rects:
            out = _convolved(features, [tail], rect, counter, relu=False)[0]
            if subpixels is None:
                subpixels = out.new_zeros((1, out.shape[1], height, width)).contiguous(memory_format=torch.channels_last)
            _paste(subpixels, rect, out)
        rectangles.append(len(rects))
    if subpixels is None:  # every block left out
        subpixels = shallow.new_zeros((1, network.tail.out_channels, height, width))
    sr = F.pixel_shuffle(subpixels, network.scale)
    return sr, SharedStats(macs=counter.total, rectangles=tuple(rectangles), area=tuple(areas), routes=routes)
