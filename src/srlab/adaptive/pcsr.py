"""PCSR (:mod:`srlab.models.pcsr`) as an adaptive method: pixels routed to a light or a heavy sampler.

The knob is the paper's ``k``: a pixel goes heavy iff ``p_heavy / c_heavy**k > p_light / c_light**k``
(``k = 0``: the classifier's argmax, the official default; larger ``k`` sends fewer pixels heavy). The
full path is the same weights with every pixel on the heavy sampler (no refinement then: it only touches
light pixels). MACs follow :meth:`srlab.models.pcsr.PCSR.macs_spent`: backbone + classifier on every
pixel + each pixel's sampler; the full path's have no classifier. Whole images (or srlab's tiles) are processed, as PCSR's per-image test.

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
from srlab.errors import SrlabError
from srlab.models.pcsr import PCSR


class PcsrRouting(AdaptiveMethod):
    knob_name = "k"
    knob_range = (0.0, 10.0)
    knob_sweep = (4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.0)

    def __init__(self, model: PCSR, *, knob: float) -> None:
        super().__init__(scale=model.scale, knob=knob)
        self.model = model

    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        with torch.no_grad():
            sr, routing = self.model.upscale_routed(lr, k=self.knob)
        heavy = int(routing.heavy.sum())
        lr_hw = (lr.shape[-2], lr.shape[-1])
        per_image = [int(routing.heavy[i].sum()) for i in range(lr.shape[0])]
        pixels = routing.heavy[0].numel()
        spent = sum(self.model.macs_spent(lr_hw, h) for h in per_image)
        full = lr.shape[0] * self.full_path().macs_spent(lr_hw, pixels)  # no classifier on the full path
        return sr, AdaptiveStats(
            route_counts=(routing.heavy.numel() - heavy, heavy), route_macs=(0, 0), route_names=("light", "heavy"),
            unit="pixel", out_hw=(sr.shape[-2], sr.shape[-1]), measured=(spent, full),
        )

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
