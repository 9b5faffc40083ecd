"""Adaptive inference: split, route, run each route's patches in batches, merge; count what was spent."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from srlab.adaptive.costs import route_macs
from srlab.adaptive.method import AdaptiveMethod
from srlab.adaptive.patches import blend_patches, check_batch, check_patching, split_patches
from srlab.errors import SrlabError


@dataclass(frozen=True)
class AdaptiveStats:
    """What one adaptive inference did (no timings: those live in benchmarks)."""

    route_counts: tuple[int, ...]  # patches per route: the routing histogram
    route_macs: tuple[int, ...]  # MACs of one patch on each route
    patch_hw: tuple[int, int]
    grid_hw: tuple[int, int]  # patch rows and columns per image
    out_hw: tuple[int, int]  # the SR size: the covered LR region times the scale

    @property
    def patches(self) -> int:
        return sum(self.route_counts)

    @property
    def macs_spent(self) -> int:
        """Sum over patches of their route's MACs (routing itself is not counted)."""
        return sum(n * macs for n, macs in zip(self.route_counts, self.route_macs))

    @property
    def macs_full(self) -> int:
        """Every patch on the heaviest route."""
        return self.patches * max(self.route_macs)

    @property
    def route_fractions(self) -> tuple[float, ...]:
        return tuple(n / self.patches for n in self.route_counts)


def adaptive_upscale(
    method: AdaptiveMethod,
    lr: torch.Tensor,
    *,
    patch: int = 32,
    stride: int = 28,
    batch_size: int = 128,
    whole_image: bool = False,
) -> tuple[torch.Tensor, AdaptiveStats]:
    """Upscale the (N, C, H, W) batch ``lr`` with ``method`` under the ClassSR/ARM patch protocol.

    ``whole_image=False`` (the published protocol, for evaluation): the output covers the LR region the
    patch grid covers (see :mod:`srlab.adaptive.patches`); compare it with the HR image cropped to
    ``stats.out_hw``, as the official test does. ``whole_image=True`` (for upscaling): the LR image is
    reflect-padded at the bottom/right just enough for the grid to reach its border, and the output is
    cropped to the whole image times the scale. Patches are
    grouped by route and each group runs in batches of at most ``batch_size`` (larger batches run faster
    on CPU and hold more activations: ``batch_size`` x one patch's). ``method`` runs as it is (put it in
    eval mode first, as for any inference).
    """
    check_patching(patch, stride)
    check_batch(lr)
    height, width = lr.shape[-2:]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SrlabError(f"adaptive batch size must be a positive integer, got {batch_size!r}")
    if whole_image:
        lr = _pad_to_grid(lr, patch, stride)
    patches, grid = split_patches(lr, patch, stride)
    with torch.no_grad():
        routes = method.route(patches)
        if routes.shape != (grid.count,) or routes.dtype != torch.long:
            raise ValueError(f"{type(method).__name__}.route must return {grid.count} int64 routes, got {routes.shape}")
        if routes.min() < 0 or routes.max() >= method.num_routes:
            raise ValueError(f"{type(method).__name__}.route returned a route outside 0..{method.num_routes - 1}")
        counts = torch.bincount(routes, minlength=method.num_routes)
        sr_patches = None
        for index in counts.nonzero().flatten().tolist():
            members = (routes == index).nonzero().flatten()
            if len(members) == grid.count and batch_size >= grid.count:  # one route, one batch: no gathering
                sr_patches = method.run(index, patches)
                break
            for chunk in members.split(batch_size):
                out = method.run(index, patches[chunk])
                if sr_patches is None:
                    sr_patches = out.new_empty((grid.count, *out.shape[1:]))
                sr_patches[chunk] = out
        sr = blend_patches(sr_patches, grid, method.scale)
    if whole_image:
        sr = sr[..., : height * method.scale, : width * method.scale]
    stats = AdaptiveStats(
        route_counts=tuple(counts.tolist()),
        route_macs=tuple(route_macs(method, i, grid.patch_hw) for i in range(method.num_routes)),
        patch_hw=grid.patch_hw,
        grid_hw=(grid.rows, grid.cols),
        out_hw=tuple(sr.shape[-2:]),
    )
    return sr, stats


def _pad_to_grid(lr: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """Reflect-pad the bottom/right so that the last patch of the official grid ends at the border."""
    height, width = lr.shape[-2:]
    pad_h = (-(height - patch) % stride) if height > patch else 0
    pad_w = (-(width - patch) % stride) if width > patch else 0
    if pad_h == pad_w == 0:
        return lr
    # pad < stride <= patch < side, so reflection is defined
    return F.pad(lr, (0, pad_w, 0, pad_h), mode="reflect")
