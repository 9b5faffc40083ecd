"""Cascade execution of ``rdsr_adaptive``: a second router decides the deeper exits after the first block.

The router of the region mode (:class:`~srlab.layers.router.ExitRouter`) sees the LR block only.
A block that leaves at exit 1 or deeper runs the head and the first block anyway, so a router that
decides the deeper exits after them sees their 32 feature channels for free; measured before this was
built (``bench/rdsr_feature_router.py``, 2K test photos, routes / region-mode windows at -0.03 dB), such
a router takes half to 60 % of the LR-only router's distance to exact predictions. The cascade
(:attr:`RdsrExitRouting.execution` ``"cascade"``; the network built with ``feature_router`` and its
feature router calibrated, :func:`srlab.adaptive.rdsr.calibrate_feature_router`):

1. the LR router routes every block as the region mode does, within a share of the knob's budget
   (:attr:`~srlab.adaptive.rdsr.RdsrExitRouting.first_stage_share`, 0.5); the blocks it sends to bicubic
   upscaling or exit 0 keep that route;
2. the others (the *deep* blocks) run the head and the first block: on disjoint rectangles covering them
   grown by ``margin`` pixels (at most ``region`` a side), each computed from a window with
   :attr:`~srlab.adaptive.rdsr.RdsrExitRouting.first_block_context` pixels of context (2; the map is
   exact with :data:`FIRST_RADIUS`, 4: the head's 3x3 convolution and the block's three, but the deeper
   exits run from it with 2 pixels of context anyway); the kept blocks' windows (step 4) run side by side
   with these, their routes being final (at 2 threads they fill the time the first block's last windows
   leave one thread idle: 4-7 % faster at 2 threads in interleaved A/Bs on 7 of the 2K photos);
3. the feature router predicts each deep block's routes from its LR pixels and the first block's output
   on it, and the deep blocks are routed again by the same rule under what is left of the budget
   (the budget's full-path error summed with the feature router's predictions on the deep blocks),
   each route priced at what it still costs: nothing for bicubic, the exit's fusion, ESA and tail for
   exit 0, blocks 2 .. k and the exit for exit k (the head and the first block are paid);
4. the routes run as the region mode runs them (merged rectangles with ``region_margin`` pixels of
   context, 2; the kept blocks and the deep ones merged apart), bicubic and exit 0 from the LR image, the
   deeper exits from windows of the first block's map (which also holds the LR pixels: the head runs again
   there, 1 % of the MACs, rather than its output being stored).

``"cascade_shared"`` runs the same two stages in the shared-feature execution
(:mod:`srlab.adaptive.rdsr_shared`): the first block on the deep blocks grown by the context the later
blocks need, the feature router on its output, then the later depths on the blocks the second stage
sent there; fewer MACs (no region borders), but sweeps of whole feature maps.

MACs are counted for what ran: both routers, the first block's windows, every route's windows (an exit
from 1 on without the first block it took from the map).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from srlab.adaptive.rdsr_shared import grown_cover
from srlab.metrics.color import rgb_to_y
from srlab.models.rdsr_adaptive import RDSRAdaptive

FIRST_RADIUS = 4  # pixels of context for an exact map: the head (one 3x3 convolution) and the first block (three)


class FirstBlock(nn.Module):
    """The network's head and first block as one module: LR (N, 3, h, w) -> (N, 3 + C, h, w), the LR input
    and the first block's output (what the feature router sees, and what the deeper exits start from;
    they run the head again, 1 % of the MACs, rather than read the shallow features from memory).
    ``scale`` and :meth:`run` make it a route for :func:`srlab.adaptive.regions.run_window_sets` (output at the
    LR size)."""

    scale = 1

    def __init__(self, network: RDSRAdaptive) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.network.first_block(x)[1]), dim=1)

    def run(self, route: int, batch: torch.Tensor) -> torch.Tensor:
        return self(batch)


class CascadeRoutes:
    """The routes as :func:`~srlab.adaptive.regions.run_window_sets` runs them in the cascade: bicubic and exit 0
    on windows of the LR image, exit ``k`` >= 1 on windows of :class:`FirstBlock`'s map."""

    def __init__(self, network: RDSRAdaptive) -> None:
        self.network = network
        self.scale = network.scale
        self.offset = int(network.bicubic_route)  # route of exit 0

    def from_first_block(self, route: int) -> bool:
        return route > self.offset

    def run(self, route: int, batch: torch.Tensor) -> torch.Tensor:
        if not self.from_first_block(route):
            return self.network.forward_route(batch, route)
        shallow = F.relu(self.network.head(batch[:, :3]))
        return self.network.forward_exit_after_first(shallow, batch[:, 3:], route - self.offset)


def first_block_jobs(lr: torch.Tensor, deep: torch.Tensor, *, block: int, margin: int, region: int,
                     context: int) -> dict:
    """The windows (:func:`srlab.adaptive.regions.run_window_sets`' jobs, route 0) whose :class:`FirstBlock`
    outputs make its (1, 3 + C, H, W) map of the LR image (1, 3, H, W) on the (rows, cols) blocks ``deep``
    grown by ``margin`` pixels (undefined elsewhere): rectangles of at most ``region`` pixels a side, each
    computed with ``context`` pixels of context (exact with :data:`FIRST_RADIUS`)."""
    height, width = lr.shape[-2:]
    jobs: dict[tuple[int, int, int], list] = defaultdict(list)
    for y0, y1, x0, x1 in grown_cover(deep, block=block, height=height, width=width, grow=margin, max_side=region):
        top, bottom = max(y0 - context, 0), min(y1 + context, height)
        left, right = max(x0 - context, 0), min(x1 + context, width)
        jobs[(0, bottom - top, right - left)].append((0, top, left, y0 - top, x0 - left, y1 - y0, x1 - x0))
    return jobs


def deep_block_inputs(lr: torch.Tensor, first: torch.Tensor, blocks: torch.Tensor, *, block: int, cols: int
                      ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The feature router's inputs: for each shape of the deep ``blocks`` (flat indices into a grid of
    ``cols`` columns; the last row and column may be shorter), the indices of those blocks and (P, 3 + C,
    h, w) their LR pixels and the first block's output ``first`` (1, C, H, W) on them (their own pixels
    only: the map is defined on the deep blocks)."""
    height, width = lr.shape[-2:]
    groups: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for index in blocks.tolist():
        y0, x0 = index // cols * block, index % cols * block
        groups[(min(y0 + block, height) - y0, min(x0 + block, width) - x0)].append((index, y0, x0))
    inputs = []
    for (h, w), members in groups.items():
        # written in place in channels-last order, in which the router's first convolution runs fastest
        patches = torch.empty((len(members), 3 + first.shape[1], h, w), dtype=first.dtype,
                              memory_format=torch.channels_last)
        for row, (_, y0, x0) in enumerate(members):
            patches[row, :3] = lr[0, :, y0 : y0 + h, x0 : x0 + w]
            patches[row, 3:] = first[0, :, y0 : y0 + h, x0 : x0 + w]
        inputs.append((torch.tensor([index for index, _, _ in members]), patches))
    return inputs


DIHEDRAL: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
    lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2),
)


@torch.no_grad()
def feature_targets(network: RDSRAdaptive, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, patch: int,
                    stride: int, flips: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the feature router learns, per ``patch`` x ``patch`` LR block at ``stride`` of each (LR (3, h, w),
    HR) pair: (P, 3 + C, patch, patch) the LR block and the first block's output on it in the whole-image
    forward (bfloat16: the blocks of a few dozen photos held at once), (P, routes - 1) each cheaper route's
    mean squared Y difference to the full path and (P,) the full path's mean squared Y error, outputs
    rounded to 8 bits (8-bit levels squared). ``flips``: each pair also flipped left-right, up-down and transposed, each
    through the network (a flipped feature map is not the features of the flipped image)."""
    scale = network.scale
    inputs, diffs, errors = [], [], []
    for lr, hr in pairs:
        for variant in DIHEDRAL if flips else DIHEDRAL[:1]:
            image, truth = variant(lr[None]).contiguous(), variant(hr[None])
            ys = [rgb_to_y(network.forward_route(image, r).clamp(0, 1).mul(255).round() / 255) * 255
                  for r in range(network.num_routes)]
            maps = torch.cat([(y - ys[-1]) ** 2 for y in ys[:-1]] + [(ys[-1] - rgb_to_y(truth) * 255) ** 2], dim=1)
            means = F.avg_pool2d(maps, patch * scale, stride * scale)[0].flatten(1).t()
            x = torch.cat((image, network.first_block(image)[1]), dim=1)
            blocks = x.unfold(2, patch, stride).unfold(3, patch, stride)[0].permute(1, 2, 0, 3, 4)
            inputs.append(blocks.reshape(-1, x.shape[1], patch, patch).bfloat16())
            diffs.append(means[:, :-1])
            errors.append(means[:, -1])
    return torch.cat(inputs), torch.cat(diffs).float(), torch.cat(errors).float()
