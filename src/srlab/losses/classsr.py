"""ClassSR's Class-Loss and Average-Loss (Kong et al., CVPR 2021, section 3.3; official
XPixelGroup/ClassSR ``codes/models/loss.py``: ``class_loss_3class``, ``average_loss_3class``).

Both read the class probabilities ``p`` (N, M) that a ClassSR model's training forward returns next to
``sr`` (``LossInputs.aux["class_probs"]``, srlab.models.classsr); a model without them is an error.

* ``class_loss`` = mean over the N patches of ``(M - 1) - sum_{i<j} |p_i - p_j|``: the paper's
  negative sum of pairwise distances, plus the official constant ``M - 1`` so that a one-hot (confident)
  decision costs 0 and the uniform one the most. It pushes every patch towards one class.
* ``average_loss`` = ``sum_i |sum_n p_i(n) - N / M| / (2 (M - 1) N / M)``: how far the batch's
  soft class counts are from an equal share. The official divisor is ``(N / M) * 4``, which is this
  one at its M = 3, the loss's largest value (every patch in one class), so the loss lies in [0, 1].
  It keeps the classifier from sending every patch to the heaviest branch.

Official weights (``train_ClassSR_*.yml``): ``1000 * l1 + 0.5 * class_loss + 3 * average_loss``
(``configs/classsr_fsrcnn_stage2.yaml``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, register_loss


def class_probabilities(inputs: LossInputs, who: str) -> Tensor:
    """``inputs.aux["class_probs"]`` checked: (N, M) with M >= 2 and N the batch of ``sr``."""
    probs = inputs.aux.get("class_probs")
    if probs is None:
        raise SrlabError(
            f"the {who} loss needs the class probabilities of a ClassSR model's training forward "
            "(LossInputs.aux['class_probs']): train a classsr_* model with trains: all or classifier"
        )
    if probs.dim() != 2 or probs.shape[0] != inputs.sr.shape[0] or probs.shape[1] < 2:
        raise SrlabError(
            f"the {who} loss: class_probs must be shaped (N, classes >= 2) with N = {inputs.sr.shape[0]}, "
            f"got {tuple(probs.shape)}"
        )
    return probs


@register_loss("class_loss")
class ClassLoss(Objective):
    """mean over patches of (M - 1) - sum_{i<j} |p_i - p_j| (ClassSR's Class-Loss)."""

    def forward(self, inputs: LossInputs) -> Tensor:
        probs = class_probabilities(inputs, "class_loss")
        classes = probs.shape[1]
        first, second = torch.triu_indices(classes, classes, offset=1, device=probs.device)
        spread = (probs[:, first] - probs[:, second]).abs().sum(dim=1)
        return (classes - 1 - spread).mean()


@register_loss("average_loss")
class AverageLoss(Objective):
    """sum_i |sum_n p_i(n) - N / M|, divided by its largest value 2 (M - 1) N / M (ClassSR's Average-Loss)."""

    def forward(self, inputs: LossInputs) -> Tensor:
        probs = class_probabilities(inputs, "average_loss")
        patches, classes = probs.shape
        share = patches / classes
        return (probs.sum(dim=0) - share).abs().sum() / (2 * (classes - 1) * share)
