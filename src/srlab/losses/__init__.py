"""Training objectives behind one contract (:mod:`srlab.losses.base`) and their weighted sum.

Each loss lives in its own module and registers itself on import (``@register_loss("name")``); the
import list below is the one place a new loss module is added. Its order is the order of LOSS_NAMES.
"""

from srlab.losses import (  # noqa: F401  (explicit import list: registers the losses)
    pixel,
    udl,
    perceptual,
    tv,
    gan,
    contrastive,
    aux_penalty,
    classsr,
    pcsr,
    exits,
    diffusion,
)
from srlab.losses.base import (
    LossInputs,
    Objective,
    build_objective,
    loss_names,
    objective_parameters,
    register_loss,
)
from srlab.losses.weighted import WeightedObjective, build_weighted_objective

#: The registered loss names (pixel losses first: the order error messages list them in).
LOSS_NAMES = loss_names()

__all__ = [
    "LOSS_NAMES",
    "LossInputs",
    "Objective",
    "WeightedObjective",
    "build_objective",
    "build_weighted_objective",
    "loss_names",
    "objective_parameters",
    "register_loss",
]
