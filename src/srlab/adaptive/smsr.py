"""SMSR (:mod:`srlab.models.smsr`) as an adaptive method: sparse masks skip positions and channels.

SMSR has no knob (its masks are learnt); it joins the trade-off curves as one point. MACs are counted
on what actually ran (the sparse convolutions gather only the masked positions,
:func:`srlab.models.complexity.measure_macs`); the full-path MACs are the dense network's (the paper's
bracketed figure). The full path for timing is the same hard-mask network computed densely
(``sparse_inference = False``: the same output). The histogram counts spatial positions over all five
sparse mask modules: ``skipped`` (sparse channels not computed there) and ``computed``.
Counting what ran watches every operation of the forward (a dispatch mode): measured 5-10 % slower
than the plain forward (CAMixerSR-S 96x96 x4 and SMSR x2, 1 thread), which a latency of ``upscale``
includes; the full-path count is made once per input size (:mod:`srlab.adaptive.costs`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from srlab.adaptive.costs import full_path_macs
from srlab.adaptive.method import AdaptiveMethod, AdaptiveStats, register_adaptive
from srlab.errors import SrlabError
from srlab.models.complexity import measure_macs
from srlab.models.smsr import SMSR


class _DenseSMSR(nn.Module):
    """The model with its sparse convolutions computed densely (same output), for the static baseline."""

    def __init__(self, model: SMSR) -> None:
        super().__init__()
        self.model = model
        self.scale = model.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        previous, self.model.sparse_inference = self.model.sparse_inference, False
        try:
            return self.model(x)
        finally:
            self.model.sparse_inference = previous


class SmsrSparsity(AdaptiveMethod):
    def __init__(self, model: SMSR) -> None:
        super().__init__(scale=model.scale)
        self.model = model

    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        with torch.no_grad():
            sr, spent = measure_macs(self.model, lambda: self.model(lr))
        masks = [m.last_spatial_mask for m in self.model.body]
        computed = int(sum(mask.sum() for mask in masks))
        total = sum(mask.numel() for mask in masks)
        full = lr.shape[0] * full_path_macs(self, (lr.shape[-2], lr.shape[-1]))
        return sr, AdaptiveStats(
            route_counts=(total - computed, computed), route_macs=(0, 0), route_names=("skipped", "computed"),
            unit="position", out_hw=(sr.shape[-2], sr.shape[-1]), measured=(spent, full),
        )

    def full_path(self) -> nn.Module:
        return _DenseSMSR(self.model)


@register_adaptive
def smsr(model: nn.Module, *, checkpoint: Path | None = None) -> SmsrSparsity:
    """An SMSR network with its learnt sparse masks (no knob)."""
    if not isinstance(model, SMSR):
        raise SrlabError(f"adaptive method smsr runs SMSR networks, not {type(model).__name__}")
    return SmsrSparsity(model)
