"""``diffusion``: the noise-prediction objective of a denoising diffusion model (SR3, Saharia et al. 2022).

It compares the noise the denoiser predicts with the noise that made its input, both handed over by
``step: diffusion`` (:mod:`srlab.train.diffusion_step`) in ``LossInputs.aux`` (``predicted_noise``,
``noise``); ``norm`` is ``l1`` (the default of the SR3 reimplementation Janspiry/Image-Super-Resolution-
via-Iterative-Refinement) or ``l2`` (DDPM's simplified objective), averaged over elements (the
reimplementation sums).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, register_loss

NORMS = ("l1", "l2")


@register_loss("diffusion")
class DiffusionLoss(Objective):
    """mean |eps_pred - eps| (``l1``) or mean (eps_pred - eps)^2 (``l2``)."""

    def __init__(self, *, norm: str = "l1") -> None:
        super().__init__()
        if norm not in NORMS:
            raise SrlabError(f"diffusion: norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.norm = norm

    def forward(self, inputs: LossInputs) -> Tensor:
        if "predicted_noise" not in inputs.aux or "noise" not in inputs.aux:
            raise SrlabError("loss diffusion needs the predicted and true noise of `step: diffusion`: set step: diffusion")
        predicted, noise = inputs.aux["predicted_noise"], inputs.aux["noise"]
        return F.l1_loss(predicted, noise) if self.norm == "l1" else F.mse_loss(predicted, noise)
