"""The training contract of srlab's diffusion models (SR3, ResShift), read by ``step: diffusion``.

A diffusion model trains on a draw: a noisy version of the HR batch made from the model's own forward
process. The model makes the draw (:meth:`draw_training`, from the global RNG of the batch's device, which
``step: diffusion`` seeds per run seed, iteration and rank), and the draw says what the training forward takes
(``inputs``, keyword arguments of ``model(lr, **inputs)``), what its output is compared with (``target``:
the noise for SR3, the clean image for ResShift) and what clean image an output implies (``clean``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class DiffusionDraw:
    """One training draw: ``model(lr, **inputs)`` should return ``target``; ``clean(output)`` is the clean
    HR image in [0, 1] an output implies (clamped)."""

    inputs: dict[str, Tensor]
    target: Tensor
    clean: Callable[[Tensor], Tensor]


def is_diffusion_model(model: object) -> bool:
    """Whether ``model`` makes training draws: ``model.draw_training(lr, hr) -> DiffusionDraw`` for an LR batch
    and its HR batch in [0, 1]."""
    return callable(getattr(model, "draw_training", None))
