"""Networks a training step kind trains beside the model (see :mod:`srlab.train.step`), and their registry.

Apart from :mod:`srlab.train.step` so that :mod:`srlab.train.state` (which builds, saves and restores them)
can import it: ``step`` imports ``state``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from srlab.train.config import TrainConfig


class StepModules(nn.Module):
    """Networks a step kind trains beside the model: ``generators`` with the model, by its optimiser;
    ``discriminators`` by the discriminators' optimiser (``run.d_optimizer``).

    ``exported`` names generators that the run also writes at each validation, beside the model's
    weight files, as ``last.<name>.safetensors`` / ``best.<name>.safetensors`` (CAR's resampler: the
    model is only half of the pair that ``srlab car eval`` scores)."""

    def __init__(self, *, generators: dict[str, nn.Module], discriminators: dict[str, nn.Module],
                 exported: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.generators = nn.ModuleDict(generators)
        self.discriminators = nn.ModuleDict(discriminators)
        self.exported = exported


# Validation LR images made from the HR images by the step's networks: (step modules, HR (3, H, W)) ->
# LR (3, h, w); the HR image is scored cropped to (h * scale, w * scale).
ValidationLr = Callable[[StepModules, torch.Tensor], torch.Tensor]

_BUILDERS: dict[str, Callable[[TrainConfig], StepModules]] = {}
_VALIDATION_LR: dict[str, ValidationLr] = {}


def register_step_modules(
    step: str, build: Callable[[TrainConfig], StepModules], validation_lr: ValidationLr | None = None
) -> None:
    """``build(config)`` makes the networks of step kind ``step``; ``validation_lr``, if given, makes the
    validation LR images from the HR images with them, in place of the validation folder's LR images
    (called by ``register_step(modules=..., validation_lr=...)``)."""
    _BUILDERS[step] = build
    if validation_lr is not None:
        _VALIDATION_LR[step] = validation_lr


def validation_lr_maker(step: str) -> ValidationLr | None:
    """How step kind ``step`` makes its validation LR images (None: the validation folder's)."""
    return _VALIDATION_LR.get(step)


def build_step_modules(config: TrainConfig) -> StepModules | None:
    """The networks ``config.step`` trains beside the model (None for most kinds)."""
    build = _BUILDERS.get(config.step)
    return None if build is None else build(config)
