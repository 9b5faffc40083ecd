"""ClassSR (Kong et al., CVPR 2021) through the adaptive engine: the classifier routes each LR patch to a branch.

The routes are the model's branches ``net1`` (simple, cheapest), ``net2``, ``net3`` (hard, the full
network); a patch's route is the official test's decision, the argmax of the classifier's output
(``ClassSR_model.test``: ``torch.max(type, 1)[1]`` per 32x32 LR patch, stride 28), when the knob is 0.

Knob ``k`` (cost exponent, the PCSR-style cost-weighted decision): a patch goes to
``argmax_i p_i / c_i**k``, ``p`` the class probabilities and ``c_i`` the MACs branch ``i`` spends on the
patch divided by the full branch's. ``k = 0`` is the official argmax; a larger ``k`` discounts the
expensive branches, so more patches take the light ones (fewer MACs, lower quality). In logits:
``argmax_i (logit_i - k * log c_i)``, the same decision. ClassSR's branches cost about 0.3 / 0.65 / 1 of
the full one, so ``k = 1`` moves a patch down a class when the classifier was less than ~1.5-3x surer of
the heavier class. ``knob_sweep`` runs from cheap (k = 2) to the official decision (k = 0), densely
near 0 where a classifier that is not yet confident (probabilities close to uniform) changes its
decisions.

As in the official test, each SR patch is clamped to [0, 1] and rounded to 8-bit levels before the
patches are merged (:meth:`ClassSRRouting.run`). The merge is the engine's
(:func:`srlab.adaptive.patches.blend_patches`), which is the official ``combine``: the patch outputs
summed into the covered canvas, every overlap strip of ``(32 - 28) * scale`` rows (columns) halved,
the region past the last whole patch left out (the official test crops the HR image to it), and the
merged image not rounded again (the official PSNR is computed on the float merge). The differences:
the official code sums 0..255 values and merges in float32 on the CPU, the engine sums the same levels
divided by 255 in the model's dtype, and adds the four patches of a corner in another order, so merged
pixels can differ in the last bit (tests/adaptive/test_classsr_routing.py compares with a transcription
of the official loop to 1e-6). The classifier's MACs (3.8 M per 32x32 patch,
:meth:`ClassSRRouting.router_macs`) are in ``macs_spent`` and not in the full path's ``macs_full``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

from srlab.adaptive.engine import PatchRoutedMethod
from srlab.adaptive.method import register_adaptive
from srlab.errors import SrlabError
from srlab.models.classsr import ClassSR
from srlab.models.complexity import count_macs


class ClassSRRouting(PatchRoutedMethod):
    knob_name = "k"
    knob_range = (0.0, 16.0)
    #: Trade-off curve points, cheap to expensive (k = 0: the official decision).
    knob_sweep: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.0)

    def __init__(self, model: ClassSR, *, knob: float = 0.0) -> None:
        super().__init__(scale=model.scale, num_routes=len(model.branches), knob=knob)
        self.model = model
        self._log_costs: dict[tuple[int, int], torch.Tensor] = {}

    def log_relative_costs(self, patch_hw: tuple[int, int]) -> torch.Tensor:
        """(routes,) log of each branch's MACs on a patch of ``patch_hw`` over the full branch's."""
        if patch_hw not in self._log_costs:
            macs = [self.route_macs(i, patch_hw) for i in range(self.num_routes)]
            self._log_costs[patch_hw] = torch.tensor([math.log(m / macs[-1]) for m in macs], dtype=torch.float64)
        return self._log_costs[patch_hw]

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        logits = self.model.class_logits(patches)
        penalty = self.knob * self.log_relative_costs(tuple(patches.shape[-2:]))
        return torch.argmax(logits.double() - penalty.to(logits.device), dim=1)

    def route_module(self, index: int) -> nn.Module:
        return self.model.branches[index]

    def route_names(self) -> tuple[str, ...]:
        return ("net1 (simple)", "net2 (medium)", "net3 (hard)")

    def run(self, index: int, patches: torch.Tensor) -> torch.Tensor:
        return torch.round(self.model.branches[index](patches).clamp(0, 1) * 255.0) / 255.0

    def router_macs(self, patch_hw: tuple[int, int]) -> int:
        """The classifier's MACs on one patch (in ``macs_spent``, not in the full path's ``macs_full``)."""
        # count_macs traces a float32 input: count a float32 copy of a float64 (test) or half classifier
        return count_macs(copy.deepcopy(self.model.classifier).float(), patch_hw)


@register_adaptive
def classsr(model: nn.Module, *, checkpoint: Path | None = None, knob: float = 0.0) -> ClassSRRouting:
    """A built ClassSR model (``classsr_fsrcnn``, ``classsr_carn``, ``classsr_srresnet``) routed patch by patch.
    ``checkpoint``: the weights the model was built with; nothing else is read (the router is the model's
    own classifier)."""
    if not isinstance(model, ClassSR):
        raise SrlabError(
            f"adaptive method classsr runs a ClassSR model (classsr_fsrcnn, classsr_carn, classsr_srresnet), "
            f"got {type(model).__name__}"
        )
    return ClassSRRouting(model, knob=knob)
