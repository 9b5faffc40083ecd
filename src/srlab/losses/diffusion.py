"""``diffusion``: the denoising objective of a diffusion model (SR3, Saharia et al. 2022; ResShift, Yue et al. 2023).

It compares the denoiser's output with its target, both handed over by ``step: diffusion``
(:mod:`srlab.train.diffusion_step`) in ``LossInputs.aux`` (``prediction``, ``target``): the noise for SR3,
the clean image ``x_0`` for ResShift. ``norm`` is ``l1`` (the default of the SR3 reimplementation
Janspiry/Image-Super-Resolution-via-Iterative-Refinement) or ``l2`` (DDPM's simplified objective; ResShift's
official ``mse`` on ``x_0``), averaged over elements (the SR3 reimplementation sums; ResShift averages per
image, then over the batch: the same for a batch of equal sizes).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, register_loss

NORMS = ("l1", "l2")


@register_loss("diffusion")
class DiffusionLoss(Objective):
    """mean |prediction - target| (``l1``) or mean (prediction - target)^2 (``l2``)."""

    def __init__(self, *, norm: str = "l1") -> None:
        super().__init__()
        if norm not in NORMS:
            raise SrlabError(f"diffusion: norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.norm = norm

    def forward(self, inputs: LossInputs) -> Tensor:
        if "prediction" not in inputs.aux or "target" not in inputs.aux:
            raise SrlabError("loss diffusion needs the denoiser's prediction and target of `step: diffusion`: "
                             "set step: diffusion")
        prediction, target = inputs.aux["prediction"], inputs.aux["target"]
        return F.l1_loss(prediction, target) if self.norm == "l1" else F.mse_loss(prediction, target)
