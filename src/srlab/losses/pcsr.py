"""PCSR's balance loss ``loss_avg`` (Jeong et al., ECCV 2024; official 3587jjh/PCSR ``train_pcsr.py``).

It reads the per-pixel class probabilities that PCSR's training forward returns next to ``sr``
(``LossInputs.aux["pcsr_probs"]``, (N, 2, H, W): light, heavy; srlab.models.pcsr) and pulls the soft
count of heavy pixels in the batch towards a share ``target`` of all pixels::

    loss_avg = | sum p_heavy - T | / T,    T = target * (number of pixels in the batch)

The official code has ``target`` one half (``L1Loss(prob[:, :, 1].sum(), b * q / 2) / (b * q / 2)``);
without it the classifier would send every pixel to the heavy sampler, whose output is the better one.
Official phase-1 objective (``configs/carn-pcsr-phase1.yaml``): ``1000 * l1 + 3 * pcsr_average``.
"""

from __future__ import annotations

from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, is_number, register_loss


@register_loss("pcsr_average")
class PCSRAverage(Objective):
    """|sum of the heavy probabilities - T| / T, T = ``target`` x pixels (PCSR's ``loss_avg``)."""

    def __init__(self, *, target: float = 0.5) -> None:
        super().__init__()
        if not is_number(target) or not 0 < target <= 1:
            raise SrlabError(f"pcsr_average: target (the share of heavy pixels) must be in (0, 1], got {target!r}")
        self.target = float(target)

    def forward(self, inputs: LossInputs) -> Tensor:
        probs = inputs.aux.get("pcsr_probs")
        if probs is None:
            raise SrlabError(
                "the pcsr_average loss needs the pixel class probabilities of a PCSR model's training forward "
                "(LossInputs.aux['pcsr_probs']): train a pcsr_* model with trains: all or classifier"
            )
        if probs.dim() != 4 or probs.shape[1] != 2:
            raise SrlabError(f"pcsr_average: pcsr_probs must be shaped (N, 2, H, W), got {tuple(probs.shape)}")
        heavy = probs[:, 1].float()
        count = heavy.numel() * self.target
        return (heavy.sum() - count).abs() / count

    def extra_repr(self) -> str:
        return f"target={self.target}"
