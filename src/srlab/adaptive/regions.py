"""Adaptive upscaling without the evaluation protocol's overlap: route blocks, run merged regions in context.

The ClassSR/ARM protocol (:mod:`srlab.adaptive.engine`) runs 32x32 patches at stride 28 and averages
the overlaps: (32/28)^2 = 1.31x the arithmetic of the image, and every patch sees zero padding at its
own border, which costs PSNR near the seams (ARM-CARN x4 on the 1020-pixel proxy validation photos:
0.04-0.12 dB below the whole-image forward at eta 4, nearly every patch on the full network;
bench/bench_adaptive_speed.py). That is the published protocol and stays
the one for evaluation. :func:`adaptive_upscale_regions` is an UPSCALING mode that routes the same way
and computes less and better:

* Blocks: the LR image is cut into ``block`` x ``block`` blocks without overlap (the last row/column of
  blocks is shorter where the image is not a multiple of ``block``). Each block is routed by the
  method's own ``route_blocks`` (its ``route``, unless it also weighs its windows' margins:
  :func:`routes_with_seams`) on a full-size ``block`` x ``block`` patch: the block itself, or for a short
  last block the patch that ends at the image border (so a method calibrated on 32x32 patches, like
  ARM's lookup table, always sees 32x32 patches).
* Regions: the blocks of one route are merged into rectangles (runs of neighbouring blocks in a row,
  runs with the same columns in successive rows joined), each at most ``region`` LR pixels a side (128
  by default: ARM-CARN's full width runs ~1.2x faster on 128-pixel tiles than on a whole 255x189 image
  on a 1-thread CPU, its activations staying closer to the cache).
* Context: each rectangle runs with ``margin`` LR pixels of the real image around it (cut at the image
  border, where the network's own zero padding then matches the whole-image forward's) and only its
  own pixels are kept. No blending: every output pixel comes from exactly one run. With a margin as
  large as the network's receptive radius the output equals the whole-image forward of each block's
  route; the default 4 is within 0.002 dB of it for ARM-CARN on photos (a 32x32 block alone in its
  route costs (40/32)^2 = 1.56x its pixels; merged regions much less).
* Runs of the same route and window shape are batched (at most ``batch_size`` windows a call); with T
  torch threads, T batches run side by side on one thread each (2026-12-06, AMD EPYC Zen 4, 4 2K photos,
  rdsr_adaptive at knob 0.02: 1.50 -> 1.12 s at 2 threads, 1.82 s at 1; the outputs the same), and each
  pastes its own windows into the output; :func:`run_window_sets` runs several kinds of windows (each
  with its method, source and output) on the same threads in one pass.

With every block on one route the image is one region per ``region`` tile and the output is that
route's tiled whole-image forward. The MACs are counted for the windows actually run (margins
included) and compared with the heaviest route on the whole image (:class:`RegionStats`).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import torch

from srlab.adaptive.costs import route_macs
from srlab.adaptive.method import AdaptiveMethod
from srlab.adaptive.patches import check_batch
from srlab.errors import SrlabError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RegionStats:
    """What one region-mode inference did: blocks per route and the windows run, with their MACs."""

    route_counts: tuple[int, ...]  # blocks per route, all images together
    block: int
    grid_hw: tuple[int, int]  # block rows and columns per image
    out_hw: tuple[int, int]
    windows: tuple[tuple[int, int, int, int], ...]  # (route, LR height, LR width, how many) of what ran
    macs_spent: int  # every window run, at its route's MACs for its size (margins included)
    macs_full: int  # the heaviest route once on each whole image

    @property
    def blocks(self) -> int:
        return sum(self.route_counts)

    @property
    def route_fractions(self) -> tuple[float, ...]:
        return tuple(n / self.blocks for n in self.route_counts)


@dataclass(frozen=True)
class Region:
    """A rectangle of blocks ``[row0, row1) x [col0, col1)`` and its route."""

    route: int
    row0: int
    row1: int
    col0: int
    col1: int


def merge_blocks(routes: torch.Tensor, max_blocks: int) -> list[Region]:
    """Cover a (rows, cols) route map with rectangles of one route each, at most ``max_blocks`` a side.

    Runs of equal routes along each row (cut every ``max_blocks``) are joined with the run of the same
    route and columns in the row below while the rectangle stays at most ``max_blocks`` rows tall.
    """
    rows, cols = routes.shape
    grid = routes.tolist()
    done: list[Region] = []
    open_: dict[tuple[int, int, int], int] = {}  # (route, col0, col1) -> first row of the open rectangle
    for row in range(rows):
        runs = []
        col = 0
        while col < cols:
            end = col + 1
            while end < cols and end - col < max_blocks and grid[row][end] == grid[row][col]:
                end += 1
            runs.append((grid[row][col], col, end))
            col = end
        still_open = {}
        for run in runs:
            first = open_.pop(run, row)
            if row - first == max_blocks:  # full height: close it and start a new one here
                done.append(Region(run[0], first, row, run[1], run[2]))
                first = row
            still_open[run] = first
        done += [Region(route, first, row, c0, c1) for (route, c0, c1), first in open_.items()]
        open_ = still_open
    done += [Region(route, first, rows, c0, c1) for (route, c0, c1), first in open_.items()]
    return done


def routes_with_seams(unary: torch.Tensor, costs: torch.Tensor, seam: float, *, sweeps: int = 4) -> torch.Tensor:
    """(rows * cols,) block routes (row-major) that lower ``sum(unary[block, route]) + seam * sum over
    neighbouring blocks on different routes (a, b) of (costs[a] + costs[b])`` for the (rows, cols, R) per-block
    costs ``unary`` and the (R,) ``costs`` of a block on each route: where two neighbours take different routes,
    each one's window runs a strip of context on that side (``margin / block`` of its own MACs), which
    ``unary`` (the routes' costs for a block alone) leaves out. Iterated conditional modes from the per-block
    argmin (ties to the costlier route), the two colours of a checkerboard in turn, ``sweeps`` times."""
    rows, cols, count = unary.shape
    routes = _cheapest_costliest_first(unary)
    if seam == 0:
        return routes.flatten()
    colour = (torch.arange(rows)[:, None] + torch.arange(cols)) % 2
    every = torch.arange(count)
    for _ in range(sweeps):
        for turn in (0, 1):
            energy = unary.clone()
            for neighbour in _neighbours(routes):  # -1 beyond the border: no context cut there
                differs = (neighbour[..., None] >= 0) & (every != neighbour[..., None])
                energy += seam * differs * (costs + costs[neighbour.clamp(min=0)][..., None])
            routes = torch.where(colour == turn, _cheapest_costliest_first(energy), routes)
    return routes.flatten()


def _cheapest_costliest_first(energy: torch.Tensor) -> torch.Tensor:
    """The route (last axis) of least ``energy``, ties to the costlier (later) route: a cheaper route must earn
    its place, as in :func:`srlab.adaptive.rdsr.routes_at_price`."""
    return energy.shape[-1] - 1 - torch.argmin(energy.flip(-1), dim=-1)


def _neighbours(grid: torch.Tensor) -> list[torch.Tensor]:
    """The (rows, cols) ``grid``'s value at each cell's right, left, lower and upper neighbour (-1 past the border)."""
    padded = torch.nn.functional.pad(grid, (1, 1, 1, 1), value=-1)
    return [padded[1:-1, 2:], padded[1:-1, :-2], padded[2:, 1:-1], padded[:-2, 1:-1]]


def _block_starts(size: int, block: int) -> torch.Tensor:
    """Tops (lefts) of the routing patches: every ``block``, the last one ending at the border."""
    return torch.arange(0, size, block).clamp(max=max(size - block, 0))


def routing_patches(image: torch.Tensor, block: int) -> tuple[torch.Tensor, int, int]:
    """(1, C, H, W) -> (rows * cols, C, b, b) patches, b = min(block, side), and the block grid."""
    _, c, h, w = image.shape
    bh, bw = min(block, h), min(block, w)
    tops, lefts = _block_starts(h, block), _block_starts(w, block)
    # Rows, then columns, gathered from the contiguous image (an index into an unfolded view is ~10x slower).
    row_index = (tops[:, None] + torch.arange(bh)).flatten().to(image.device)
    col_index = (lefts[:, None] + torch.arange(bw)).flatten().to(image.device)
    grid = image[0][:, row_index][..., col_index]  # (C, rows * bh, cols * bw)
    patches = grid.view(c, len(tops), bh, len(lefts), bw).permute(1, 3, 0, 2, 4).reshape(-1, c, bh, bw)
    return patches, len(tops), len(lefts)


def add_region_windows(jobs: dict, image: int, routes: torch.Tensor, *, block: int, margin: int, region: int,
                       height: int, width: int) -> None:
    """Add to ``jobs`` ((route, window height, window width) -> windows) the windows that run image
    ``image``'s (rows, cols) block ``routes``: merged rectangles of at most ``region`` pixels a side, each
    with ``margin`` pixels of context cut at the image border; a window is (image, y0, x0, dy, dx, h, w):
    where it is, and where in it the rectangle's own pixels are."""
    for part in merge_blocks(routes, max(1, region // block)):
        top, bottom = part.row0 * block, min(part.row1 * block, height)
        left, right = part.col0 * block, min(part.col1 * block, width)
        y0, y1 = max(top - margin, 0), min(bottom + margin, height)
        x0, x1 = max(left - margin, 0), min(right + margin, width)
        jobs[(part.route, y1 - y0, x1 - x0)].append((image, y0, x0, top - y0, left - x0, bottom - top, right - left))


def _window_workers(chunks: int) -> int:
    """How many windows run at once: torch's thread count (at most one worker per chunk of windows)."""
    return max(1, min(torch.get_num_threads(), chunks))


@dataclass
class WindowSet:
    """Windows of one kind for :func:`run_window_sets`: ``jobs`` ((route, window height, window width) ->
    windows, as :func:`add_region_windows` makes them) of ``lr`` run by ``method`` (``method.run(route,
    batch)``, output ``method.scale`` times the window); ``sources``: where a route's windows are cut from
    instead of ``lr`` (a map of ``lr``'s batch size, height and width); ``out``: an output to paste into (made
    by the first window that finishes where None)."""

    method: AdaptiveMethod
    lr: torch.Tensor
    jobs: Mapping
    sources: Mapping[int, torch.Tensor] | None = None
    out: torch.Tensor | None = None


def run_windows(method: AdaptiveMethod, lr: torch.Tensor, jobs: dict, *, batch_size: int,
                channels_last: bool, sources: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor:
    """Run every chunk of windows of ``lr`` on its route and paste each window's own pixels into the output
    (:class:`WindowSet`'s arguments; :func:`run_window_sets` for one set)."""
    return run_window_sets([WindowSet(method, lr, jobs, sources)], batch_size=batch_size,
                           channels_last=channels_last)[0]


def run_window_sets(sets: Sequence[WindowSet], *, batch_size: int, channels_last: bool) -> list[torch.Tensor | None]:
    """Run the chunks of windows (at most ``batch_size`` windows of one route and shape a chunk) of every
    set, in the sets' order, and paste each window's own pixels into its set's output; the outputs (None for
    a set without windows and without ``out``).

    With T torch threads the chunks run T at a time, each on one thread (torch's own threads set to 1
    meanwhile): the windows are small, and a convolution over one 128-pixel window splits across two
    threads far worse than two windows run side by side (measured in bench/bench_adaptive_speed.py); the
    sets share the threads, so a later set's chunks fill the time an earlier set's last chunks leave.
    Every window's output is computed exactly as on one thread; only the order they finish in differs."""
    chunks = [(index, route, win_h, win_w, windows[start : start + batch_size])
              for index, window_set in enumerate(sets) for (route, win_h, win_w), windows in window_set.jobs.items()
              for start in range(0, len(windows), batch_size)]
    outputs = [window_set.out for window_set in sets]
    chunk_counts = [sum(chunk[0] == index for chunk in chunks) for index in range(len(sets))]
    made = threading.Lock()

    def run(chunk: tuple) -> None:
        index, route, win_h, win_w, windows = chunk
        window_set = sets[index]
        lr, method = window_set.lr, window_set.method
        n, _, height, width = lr.shape
        scale = method.scale
        source = lr if window_set.sources is None else window_set.sources.get(route, lr)
        batch = torch.cat([source[i : i + 1, :, y0 : y0 + win_h, x0 : x0 + win_w] for i, y0, x0, *_ in windows])
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            out = method.run(route, batch)
        whole = len(windows) == n == 1 and out.shape[-2:] == (height * scale, width * scale)
        if whole and outputs[index] is None and chunk_counts[index] == 1:
            outputs[index] = out  # one window, the whole image: nothing to paste
            return
        with made:
            if outputs[index] is None:
                # in the outputs' memory order, so that pasting copies runs of memory, not scattered values
                outputs[index] = torch.empty((n, out.shape[1], height * scale, width * scale), dtype=out.dtype,
                                             device=out.device, memory_format=_memory_format(out))
        target = outputs[index]
        # each worker pastes its own windows (disjoint pixels): the copies run side by side too
        for k, (i, y0, x0, dy, dx, h, w) in enumerate(windows):
            target[i, :, (y0 + dy) * scale : (y0 + dy + h) * scale, (x0 + dx) * scale : (x0 + dx + w) * scale] = (
                out[k, :, dy * scale : (dy + h) * scale, dx * scale : (dx + w) * scale]
            )

    for _ in side_by_side(run, chunks):
        pass
    return outputs


def side_by_side(function: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
    """``function`` of each item, in order, computed T at a time on one torch thread each (T: torch's thread
    count, at most one per item; torch's own threads set to 1 meanwhile): for many small pieces of work,
    each of which splits across threads far worse than the pieces run side by side. The worker threads
    live as long as the process (starting them took ~1 ms each, several times per image)."""
    workers = _window_workers(len(items))
    if workers == 1:
        yield from map(function, items)
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # before the pool's threads first run torch: they keep one thread
    try:
        yield from _pool(workers).map(function, items)
    finally:
        torch.set_num_threads(threads)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="srlab-windows")
        return _POOLS[workers]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for a channels-last tensor (one that is not also plainly contiguous), else the default."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def adaptive_upscale_regions(
    method: AdaptiveMethod,
    lr: torch.Tensor,
    *,
    block: int = 32,
    margin: int = 4,
    region: int = 128,
    batch_size: int = 64,
    channels_last: bool = True,
) -> tuple[torch.Tensor, RegionStats]:
    """Upscale the (N, C, H, W) batch ``lr`` with ``method``, routing ``block`` x ``block`` blocks and running
    each route on merged regions of at most ``region`` LR pixels a side with ``margin`` pixels of context.

    The output covers the whole image (N, C, H * scale, W * scale). Not the evaluation protocol (see the
    module docstring): use :func:`srlab.adaptive.adaptive_upscale` to score a method as published.
    ``channels_last``: the windows go to the routes in channels-last memory order, in which PyTorch's CPU
    convolutions run 1.3-1.5x faster than in the default order on ARM-CARN's subnets (same values up to
    float rounding); leave it False for routes that are not convolutional.
    """
    check_batch(lr)
    for name, value, low in (("block", block, 1), ("margin", margin, 0), ("region", region, 1),
                             ("batch size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SrlabError(f"region-mode {name} must be an integer >= {low}, got {value!r}")
    if region < block:
        raise SrlabError(f"region-mode region ({region}) must be at least one block ({block}) LR pixels")
    scale = method.scale
    n, _, height, width = lr.shape
    counts = [0] * method.num_routes
    jobs: dict[tuple[int, int, int], list[tuple[int, int, int, int, int, int]]] = defaultdict(list)
    with torch.no_grad():
        for image in range(n):
            patches, rows, cols = routing_patches(lr[image : image + 1], block)
            routes = method.route_blocks(patches, (rows, cols))
            if routes.shape != (rows * cols,) or routes.dtype != torch.long:
                raise ValueError(
                    f"{type(method).__name__}.route_blocks must return {rows * cols} int64 routes, got {routes.shape}"
                )
            if routes.min() < 0 or routes.max() >= method.num_routes:
                raise ValueError(f"{type(method).__name__}.route_blocks returned a route outside 0..{method.num_routes - 1}")
            for index, count in enumerate(torch.bincount(routes, minlength=method.num_routes).tolist()):
                counts[index] += count
            add_region_windows(jobs, image, routes.view(rows, cols), block=block, margin=margin, region=region,
                               height=height, width=width)
    sr = run_windows(method, lr, jobs, batch_size=batch_size, channels_last=channels_last)
    heaviest = method.num_routes - 1
    stats = RegionStats(
        route_counts=tuple(counts),
        block=block,
        grid_hw=(len(_block_starts(height, block)), len(_block_starts(width, block))),
        out_hw=(height * scale, width * scale),
        windows=tuple((route, h, w, len(ws)) for (route, h, w), ws in jobs.items()),
        macs_spent=sum(len(ws) * route_macs(method, route, (h, w)) for (route, h, w), ws in jobs.items()),
        macs_full=n * route_macs(method, heaviest, (height, width)),
    )
    return sr, stats
