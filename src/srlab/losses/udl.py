"""The uncertainty-driven loss, UDL (Ning, Dong, Li, Wu, Shi, NeurIPS 2021), in its two stages.

The model predicts, next to ``sr``, a per-pixel map ``s = ln(theta)``: the log of the scale theta of a
Laplace distribution around ``sr`` (``LossInputs.uncertainty``, (N, 1, H, W), broadcast over channels).

* ``stage="estimate"`` (the paper's L_EU, stage 1): MAP estimate of ``sr`` and theta under a Laplace
  likelihood ``|y - f(x)| / theta + ln(theta)`` and the sparsity (Jeffreys) prior ``p(theta) ~ 1/theta``,
  which adds another ``ln(theta)``::

      L_EU = mean( exp(-s) * |sr - hr| + 2 * s )

  (the mean runs over every pixel and channel). The minimiser in s is ``s = ln(|sr - hr| / 2)``: large
  where the error is large (edges, texture).

* ``stage="weighted"`` (the paper's L_UDL, stage 2): a frozen stage-1 network supplies ``s``; its
  non-negative shift ``s_hat = s - min(s)`` (min over each image's map), detached, weights the L1::

      L_UDL = mean( s_hat * |sr - hr| )

  so the uncertain pixels (texture, edges) count more, the most certain pixel of each image not at all.
"""

from __future__ import annotations

from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, check_pair, register_loss, require_uncertainty

STAGES = ("estimate", "weighted")


@register_loss("udl")
class UDLLoss(Objective):
    """UDL: ``stage="estimate"`` (L_EU, trains sr and s) or ``"weighted"`` (L_UDL, s from a frozen model)."""

    needs_uncertainty = True

    def __init__(self, *, stage: str = "estimate") -> None:
        super().__init__()
        if stage not in STAGES:
            raise SrlabError(f"udl: stage must be one of {', '.join(STAGES)}, got {stage!r}")
        self.stage = stage

    def forward(self, inputs: LossInputs) -> Tensor:
        check_pair(inputs, "udl")
        s = require_uncertainty(inputs, "udl")
        error = (inputs.sr - inputs.hr).abs()
        if self.stage == "estimate":
            return (s.neg().exp() * error + 2.0 * s).mean()
        s = s.detach()
        s_hat = s - s.amin(dim=(1, 2, 3), keepdim=True)
        return (s_hat * error).mean()

    def extra_repr(self) -> str:
        return f"stage={self.stage!r}"
