"""Training objectives: :mod:`srlab.losses.objectives` defines the interface and the registry."""

from srlab.losses.objectives import (
    LOSS_NAMES,
    LossInputs,
    WeightedObjective,
    build_objective,
    build_weighted_objective,
)
from srlab.losses.pixel import CharbonnierLoss, build_pixel_loss

__all__ = [
    "LOSS_NAMES",
    "CharbonnierLoss",
    "LossInputs",
    "WeightedObjective",
    "build_objective",
    "build_pixel_loss",
    "build_weighted_objective",
]
