"""Networks a training step kind trains beside the model (see :mod:`srlab.train.step`), and their registry.

Apart from :mod:`srlab.train.step` so that :mod:`srlab.train.state` (which builds, saves and restores them)
can import it: ``step`` imports ``state``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from srlab.train.config import TrainConfig


class StepModules(nn.Module):
    """Networks a step kind trains beside the model: ``generators`` with the model, by its optimiser;
    ``discriminators`` by the discriminators' optimiser (``run.d_optimizer``)."""

    def __init__(self, *, generators: dict[str, nn.Module], discriminators: dict[str, nn.Module]) -> None:
        super().__init__()
        self.generators = nn.ModuleDict(generators)
        self.discriminators = nn.ModuleDict(discriminators)


_BUILDERS: dict[str, Callable[[TrainConfig], StepModules]] = {}


def register_step_modules(step: str, build: Callable[[TrainConfig], StepModules]) -> None:
    """``build(config)`` makes the networks of step kind ``step`` (called by ``register_step(modules=...)``)."""
    _BUILDERS[step] = build


def build_step_modules(config: TrainConfig) -> StepModules | None:
    """The networks ``config.step`` trains beside the model (None for most kinds)."""
    build = _BUILDERS.get(config.step)
    return None if build is None else build(config)
