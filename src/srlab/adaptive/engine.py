"""Adaptive inference: split, route, run each route's patches in batches, merge; count what was spent."""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn

from srlab.adaptive.costs import route_macs
from srlab.adaptive.method import AdaptiveMethod, AdaptiveStats
from srlab.adaptive.patches import blend_patches, check_batch, check_patching, split_patches
from srlab.adaptive.regions import adaptive_upscale_regions
from srlab.errors import SrlabError
from srlab.models.complexity import count_macs


class PatchRoutedMethod(AdaptiveMethod):
    """A method that routes LR patches (ClassSR, ARM): routes ``0 .. num_routes - 1``, by convention the
    last one the heaviest. Subclasses implement :meth:`route` and :meth:`route_module` (and :meth:`run`
    where a route does more than call its module); :meth:`upscale` is :func:`adaptive_upscale` with the
    method's ``patch``, ``stride`` and ``batch_size`` (attributes; the ClassSR/ARM protocol by default)."""

    patch: int = 32
    stride: int = 28
    batch_size: int = 128
    # The blocks the region mode (upscaling) routes; a method whose routes fragment the image less on
    # larger blocks says so here (rdsr_adaptive: 64).
    region_block: int = 32
    # The context (LR pixels) each region-mode window runs with; a method whose routes lose little at window
    # borders with less says so here (rdsr_adaptive: 2).
    region_margin: int = 4

    def __init__(self, *, scale: int, num_routes: int, knob: float | None = None) -> None:
        super().__init__(scale=scale, knob=knob)
        self.num_routes = num_routes

    @abc.abstractmethod
    def route(self, patches: torch.Tensor) -> torch.Tensor:
        """(P, C, h, w) LR patches -> (P,) int64 route per patch; a pure function of the patches and knob."""

    def route_blocks(self, patches: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """The region mode's (rows * cols,) routes for the blocks of a ``grid_hw`` grid, ``patches`` in row-major
        order: :meth:`route`, unless a method also weighs what its routes' windows cost side by side (their
        margins of context; :func:`srlab.adaptive.regions.routes_with_seams`)."""
        return self.route(patches)

    @abc.abstractmethod
    def route_module(self, index: int) -> nn.Module:
        """The network route ``index`` runs (used by :meth:`run` and :meth:`route_macs`)."""

    def route_names(self) -> tuple[str, ...]:
        return tuple(f"route {i}" for i in range(self.num_routes))

    def run(self, index: int, patches: torch.Tensor) -> torch.Tensor:
        """A batch of LR patches through route ``index`` -> their SR patches."""
        return self.route_module(index)(patches)

    def route_macs(self, index: int, patch_hw: tuple[int, int]) -> int:
        """MACs route ``index`` spends on one patch of ``patch_hw`` LR pixels."""
        return count_macs(self.route_module(index), patch_hw)

    def router_macs(self, patch_hw: tuple[int, int]) -> int:
        """MACs the router spends on one patch (a classifier; 0 for rules such as ARM's edge score)."""
        return 0

    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        """``whole_image=False``: the published ClassSR/ARM protocol (:func:`adaptive_upscale`, for
        evaluation); True: the region mode (:func:`srlab.adaptive.regions.adaptive_upscale_regions`: the same
        routing of ``region_block`` x ``region_block`` blocks, no overlap, merged regions run in context;
        the fast way to upscale)."""
        if not whole_image:
            return adaptive_upscale(self, lr, patch=self.patch, stride=self.stride, batch_size=self.batch_size)
        sr, regions = adaptive_upscale_regions(self, lr, block=self.region_block, margin=self.region_margin)
        router = regions.blocks * route_macs(self, -1, (self.region_block, self.region_block))
        return sr, AdaptiveStats(
            route_counts=regions.route_counts, route_macs=(0,) * self.num_routes, route_names=self.route_names(),
            unit="block", out_hw=regions.out_hw, router_macs=router, measured=(regions.macs_spent + router, regions.macs_full),
            grid_hw=regions.grid_hw,
        )

    def full_path(self) -> nn.Module:
        return self.route_module(self.num_routes - 1)


def adaptive_upscale(
    method: PatchRoutedMethod,
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
        route_names=method.route_names(),
        unit="patch",
        router_macs=grid.count * route_macs(method, -1, grid.patch_hw),
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
