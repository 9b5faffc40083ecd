"""The loss of a multi-exit network's early exits (``rdsr_adaptive``).

A model with early exits returns, in training, its full output as ``sr`` and the early exits' outputs
as ``aux["exit_srs"]`` (E, N, 3, H, W). ``exit_l1`` is the mean over the exits of their L1 to a target:
``hr`` (the default: next to the ``l1`` of ``sr`` it trains every exit to stand on its own, so that a
router may stop a patch at any of them) or ``full``, the full output ``sr`` detached (distillation: an
exit learns to compute what the full path computes, which is what a router needs where it stops a patch
early: the full path's PSNR, not a different image of about the same quality).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, register_loss


TARGETS = ("hr", "full")


@register_loss("exit_l1")
class ExitL1Loss(Objective):
    """mean over the early exits of mean |exit_sr - target|, the target ``hr`` or the detached full output."""

    def __init__(self, *, target: str = "hr") -> None:
        super().__init__()
        if target not in TARGETS:
            raise SrlabError(f"the exit_l1 loss: target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.target = target

    def forward(self, inputs: LossInputs) -> Tensor:
        exits = inputs.aux.get("exit_srs")
        if exits is None:
            raise SrlabError(
                "the exit_l1 loss needs a model with early exits (its training forward returns aux['exit_srs']): "
                "use rdsr_adaptive, or drop exit_l1 from the losses"
            )
        if exits.dim() != 5 or exits.shape[1:] != inputs.hr.shape:
            hr_shape = ", ".join(map(str, inputs.hr.shape))
            raise SrlabError(
                f"the exit_l1 loss: aux['exit_srs'] must be shaped (exits, *hr.shape) = (E, {hr_shape}), "
                f"got {tuple(exits.shape)}"
            )
        target = inputs.hr if self.target == "hr" else inputs.sr.detach()
        return F.l1_loss(exits.float(), target.float().expand_as(exits))
