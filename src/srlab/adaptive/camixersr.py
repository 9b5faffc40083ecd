"""CAMixerSR (:mod:`srlab.models.camixersr`) as an adaptive method: windows routed to attention or
convolution only.

The knob is the model's ``ratio`` (the official default 0.5; 1 sends every window to attention, the
full path). The decision is srlab's deterministic one (see the model's docstring). MACs are counted on
what actually ran (:func:`srlab.models.complexity.measure_macs`: attention only over the chosen
windows); the full-path MACs are the same weights at ratio 1. The histogram counts window decisions
summed over all mixers: ``convolution`` (the window skips attention) and ``attention``.
Counting what ran watches every operation of the forward (a dispatch mode): measured 5-10 % slower
than the plain forward (CAMixerSR-S 96x96 x4 and SMSR x2, 1 thread), which a latency of ``upscale``
includes; the full-path count is made once per input size (:mod:`srlab.adaptive.costs`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from srlab.adaptive.costs import full_path_macs
from srlab.adaptive.method import AdaptiveMethod, AdaptiveStats, register_adaptive
from srlab.errors import SrlabError
from srlab.models.camixersr import CAMixer, CAMixerSR, attended_count
from srlab.models.complexity import measure_macs


class CamixerRouting(AdaptiveMethod):
    knob_name = "ratio"
    knob_range = (0.0, 1.0)
    knob_sweep = (0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0)

    def __init__(self, model: CAMixerSR, *, knob: float) -> None:
        super().__init__(scale=model.scale, knob=knob)
        self.model = model

    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        counts = [0, 0]  # windows on convolution only, on attention

        def count_windows(mixer: CAMixer, inputs: tuple, output: tuple) -> None:
            x, ratio = inputs[0], inputs[2]
            windows = (x.shape[-2] // mixer.window_size) * (x.shape[-1] // mixer.window_size)
            # the mean decision per image (the mixer's second output) is all attended_count reads
            attended = attended_count(output[1].mean(dim=0, keepdim=True).expand(1, windows, 1), ratio)
            counts[1] += attended * x.shape[0]
            counts[0] += (windows - attended) * x.shape[0]

        previous, self.model.ratio = self.model.ratio, self.knob
        handles = [m.register_forward_hook(count_windows) for m in self.model.modules() if isinstance(m, CAMixer)]
        try:
            with torch.no_grad():
                sr, spent = measure_macs(self.model, lambda: self.model(lr))
        finally:
            self.model.ratio = previous
            for handle in handles:
                handle.remove()
        macs_full = lr.shape[0] * full_path_macs(self, (lr.shape[-2], lr.shape[-1]))
        return sr, AdaptiveStats(
            route_counts=tuple(counts), route_macs=(0, 0), route_names=("convolution", "attention"), unit="window",
            out_hw=(sr.shape[-2], sr.shape[-1]), measured=(spent, macs_full),
        )

    def full_path(self) -> nn.Module:
        full = copy.copy(self.model)  # shares the parameters; every window attended
        full.ratio = 1.0
        return full


@register_adaptive
def camixersr(model: nn.Module, *, checkpoint: Path | None = None, knob: float = 0.5) -> CamixerRouting:
    """A CAMixerSR network (``camixersr``, ``camixersr_s``) with attention ratio knob ``ratio``."""
    if not isinstance(model, CAMixerSR):
        raise SrlabError(f"adaptive method camixersr runs CAMixerSR networks, not {type(model).__name__}")
    return CamixerRouting(model, knob=knob)
