"""PCSR (:mod:`srlab.models.pcsr`) as an adaptive method: pixels routed to a light or a heavy sampler.

The knob is the paper's ``k``: a pixel goes heavy iff ``p_heavy / c_heavy**k > p_light / c_light**k``
(``k = 0``: the classifier's argmax, the official default; larger ``k`` sends fewer pixels heavy). The
full path is the same weights with every pixel on the heavy sampler (no refinement then: it only touches
light pixels). MACs follow :meth:`srlab.models.pcsr.PCSR.macs_spent`: backbone + classifier on every
pixel + each pixel's sampler; the full path's have no classifier. ``srlab eval`` scores the official
default test (32x32 LR patches at stride 28, 96 a batch, overlaps averaged; the full path on the same
patches); upscaling runs whole images (the official ``--per_image`` test), as ``srlab eval --adaptive off``
does.

A model built with ``routing="cluster"`` (the official ``adaptive_cluster``: each image's heavy probabilities
split by 2-means, :func:`srlab.models.pcsr.cluster_heavy`) decides without a threshold, so the method then
has no knob.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from srlab.adaptive.method import AdaptiveMethod, AdaptiveStats, register_adaptive
from srlab.adaptive.patches import blend_patches, check_batch, split_patches
from srlab.errors import SrlabError
from srlab.models.pcsr import PCSR, Routing

# The official test's patches (configs: patch_size 32, step 28) and its --patch_batch_size default.
PATCH, STRIDE, PATCH_BATCH = 32, 28, 96


class PcsrRouting(AdaptiveMethod):
    knob_name = "k"
    knob_range = (0.0, 10.0)
    knob_sweep = (4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.0)

    def __init__(self, model: PCSR, *, knob: float) -> None:
        super().__init__(scale=model.scale, knob=knob)
        self.model = model

    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        """``whole_image=True``: each image in one forward (the official ``--per_image`` test); False: the
        official default test, 32x32 LR patches at stride 28 (the image cut at the top-left to the region
        they cover), 96 patches a forward, overlaps averaged (:func:`srlab.adaptive.blend_patches`)."""
        check_batch(lr)
        with torch.no_grad():
            if whole_image:
                sr, routing = self.model.upscale_routed(lr, k=self.knob)
                unit_hw, grid_hw = (lr.shape[-2], lr.shape[-1]), None
            else:
                sr, routing, unit_hw, grid_hw = self._patch_protocol(lr)
        per_unit = routing.heavy.flatten(1).sum(dim=1).tolist()
        pixels = routing.heavy[0].numel()
        spent = sum(self.model.macs_spent(unit_hw, h) for h in per_unit)
        full = len(per_unit) * self.full_path().macs_spent(unit_hw, pixels)  # no classifier on the full path
        heavy = int(sum(per_unit))
        return sr, AdaptiveStats(
            route_counts=(routing.heavy.numel() - heavy, heavy), route_macs=(0, 0), route_names=("light", "heavy"),
            unit="pixel", out_hw=(sr.shape[-2], sr.shape[-1]), measured=(spent, full),
            patch_hw=None if grid_hw is None else unit_hw, grid_hw=grid_hw,
        )

    def _patch_protocol(
        self, lr: torch.Tensor
    ) -> tuple[torch.Tensor, Routing, tuple[int, int], tuple[int, int]]:
        """The official patch test, image by image: (SR, the patches' routing, the patch size, the grid)."""
        srs, routings = [], []
        for image in lr.split(1):
            patches, grid = split_patches(image, PATCH, STRIDE)
            outs = [self.model.upscale_routed(batch, k=self.knob) for batch in patches.split(PATCH_BATCH)]
            srs.append(blend_patches(torch.cat([out for out, _ in outs]), grid, self.scale))
            routings += [routing for _, routing in outs]
        routing = Routing(heavy=torch.cat([r.heavy for r in routings]), refined=torch.cat([r.refined for r in routings]))
        return torch.cat(srs), routing, grid.patch_hw, (grid.rows, grid.cols)

    def full_path(self) -> nn.Module:
        full = copy.copy(self.model)  # shares the parameters; only the routing differs
        full.routing = "heavy"
        return full


class PcsrClusterRouting(PcsrRouting):
    """PCSR's adaptive decision (``routing="cluster"``): no knob."""

    knob_name = None
    knob_sweep = ()


@register_adaptive
def pcsr(model: nn.Module, *, checkpoint: Path | None = None, knob: float | None = None) -> PcsrRouting:
    """A PCSR network (``pcsr_carn``, ``pcsr_fsrcnn``) with threshold knob ``k`` (default 0), or without a
    knob where the model routes by clustering (``routing="cluster"``)."""
    if not isinstance(model, PCSR):
        raise SrlabError(f"adaptive method pcsr runs PCSR networks (pcsr_carn, pcsr_fsrcnn), not {type(model).__name__}")
    if model.routing == "cluster":
        if knob is not None:
            raise SrlabError("PCSR with routing=cluster decides by clustering and has no knob: drop --knob")
        return PcsrClusterRouting(model, knob=None)
    return PcsrRouting(model, knob=0.0 if knob is None else knob)
