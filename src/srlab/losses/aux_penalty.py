"""A penalty that a model computes itself in its training forward, read from ``LossInputs.aux``.

Internally adaptive models regularise their own routing: CAMixerSR's ratio loss (the share of windows
sent to attention pulled towards one half), SMSR's sparsity maps (the share of (channel, position)
outputs computed). Their training forward returns ``(sr, aux)``; this loss is ``mean(aux[key])``, so
a scalar penalty passes through unchanged and a map is averaged (SMSR's official ``sparsity.mean()``).

``ramp_epochs`` (0: off) multiplies the value by ``min((epoch - 1) / ramp_epochs, 1)``, epoch counted
from 1: zero in the first epoch, full strength from epoch ``ramp_epochs + 1`` on (SMSR's official
``lambda_sparsity = min((epoch - 1) / 50, 1) * 0.1``). The epoch comes from the ``scheduled`` training
step (:mod:`srlab.train.scheduled_step`), which calls :meth:`AuxPenalty.set_training_epoch`.
"""

from __future__ import annotations

from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, register_loss


@register_loss("aux_penalty")
class AuxPenalty(Objective):
    """``ramp * mean(aux[key])``: a routing penalty from the model's training forward (see the module docstring)."""

    def __init__(self, *, key: str = "", ramp_epochs: int = 0) -> None:
        super().__init__()
        if not key:
            raise SrlabError(
                "aux_penalty: name the model's penalty in params.key (e.g. ratio_loss for CAMixerSR, sparsity for SMSR)"
            )
        if isinstance(ramp_epochs, bool) or not isinstance(ramp_epochs, int) or ramp_epochs < 0:
            raise SrlabError(f"aux_penalty: ramp_epochs must be an integer >= 0, got {ramp_epochs!r}")
        self.key, self.ramp_epochs = key, ramp_epochs
        self.epoch: int | None = None

    def set_training_epoch(self, epoch: int) -> None:
        """The epoch being trained, counted from 1 (called by the ``scheduled`` training step)."""
        self.epoch = epoch

    def ramp(self) -> float:
        if not self.ramp_epochs:
            return 1.0
        if self.epoch is None:
            raise SrlabError(
                f"aux_penalty {self.key!r}: ramp_epochs needs the epoch: set step: scheduled in the config"
            )
        return min((self.epoch - 1) / self.ramp_epochs, 1.0)

    def forward(self, inputs: LossInputs) -> Tensor:
        value = inputs.aux.get(self.key)
        if value is None:
            given = ", ".join(sorted(inputs.aux)) or "none"
            raise SrlabError(
                f"aux_penalty: the model's training forward gave no {self.key!r} (its aux outputs: {given}): "
                "train a model that computes it, or fix params.key"
            )
        return self.ramp() * value.float().mean()

    def extra_repr(self) -> str:
        return f"key={self.key!r}, ramp_epochs={self.ramp_epochs}"
