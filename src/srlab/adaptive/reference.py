"""Two reference methods built from zoo networks.

* ``static`` (registered): one route, any zoo network; the engine's output is then the official
  patch-wise output of that network (``--adaptive static`` runs any model through the patch engine).
* :class:`GradientRoutes`: a light and a heavy network, a patch going to the heavy one when its mean
  gradient magnitude reaches the ``threshold`` knob. Not a published method: it exercises the engine
  with real routing in tests and benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from srlab.adaptive.engine import PatchRoutedMethod
from srlab.adaptive.method import register_adaptive
from srlab.models.registry import spec_of


class StaticRoutes(PatchRoutedMethod):
    """Every patch on route 0, ``model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(scale=spec_of(model).scale, num_routes=1)
        self.model = model

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(patches), dtype=torch.long, device=patches.device)

    def route_module(self, index: int) -> nn.Module:
        return self.model


def mean_gradient_magnitude(patches: torch.Tensor) -> torch.Tensor:
    """(P, C, h, w) -> (P,) mean over pixels and channels of |horizontal| + |vertical| forward differences."""
    dx = (patches[..., :, 1:] - patches[..., :, :-1]).abs().flatten(1).mean(dim=1)
    dy = (patches[..., 1:, :] - patches[..., :-1, :]).abs().flatten(1).mean(dim=1)
    return torch.nan_to_num(dx) + torch.nan_to_num(dy)


class GradientRoutes(PatchRoutedMethod):
    """Route 0 ``light``, route 1 ``heavy``: a patch whose mean gradient magnitude is >= the threshold is heavy."""

    knob_name = "threshold"
    knob_range = (0.0, 2.0)  # the largest possible mean |dx| + |dy| of images in [0, 1]
    knob_sweep = (0.2, 0.1, 0.05, 0.02, 0.01, 0.0)

    def __init__(self, light: nn.Module, heavy: nn.Module, *, threshold: float) -> None:
        super().__init__(scale=spec_of(heavy).scale, num_routes=2, knob=threshold)
        self.paths = nn.ModuleList([light, heavy])

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        return (mean_gradient_magnitude(patches) >= self.knob).long()

    def route_module(self, index: int) -> nn.Module:
        return self.paths[index]


@register_adaptive
def static(model: nn.Module, *, checkpoint: Path | None = None) -> StaticRoutes:
    """``model`` on every patch (``checkpoint`` is where its weights came from; not needed)."""
    return StaticRoutes(model)
