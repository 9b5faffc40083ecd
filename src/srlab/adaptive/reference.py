"""Two reference methods: the static baseline and a two-route toy, both built from zoo networks.

* ``static``: one route, a zoo network; the engine's output is then the official patch-wise output of
  that network, the baseline every adaptive method is compared with.
* ``gradient_routes``: a light and a heavy network (the same zoo architecture at two sizes), a patch
  going to the heavy one when its mean gradient magnitude reaches the ``threshold`` knob. Not a
  published method: it exercises the engine with real routing and serves as a cheap baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from srlab.adaptive.method import AdaptiveMethod, register_adaptive
from srlab.models.registry import build_model, spec_of


class StaticRoutes(AdaptiveMethod):
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


class GradientRoutes(AdaptiveMethod):
    """Route 0 ``light``, route 1 ``heavy``: a patch whose mean gradient magnitude is >= the threshold is heavy."""

    knob_name = "threshold"
    knob_range = (0.0, 2.0)  # the largest possible mean |dx| + |dy| of images in [0, 1]

    def __init__(self, light: nn.Module, heavy: nn.Module, *, threshold: float) -> None:
        super().__init__(scale=spec_of(heavy).scale, num_routes=2, knob=threshold)
        self.paths = nn.ModuleList([light, heavy])

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        return (mean_gradient_magnitude(patches) >= self.knob).long()

    def route_module(self, index: int) -> nn.Module:
        return self.paths[index]


@register_adaptive
def static(*, scale: int, model: str | nn.Module = "fsrcnn_etds", args: Mapping[str, Any] | None = None) -> StaticRoutes:
    """A zoo network (a name built with fresh weights, or a built model) on every patch."""
    if isinstance(model, str):
        model = build_model(model, scale=scale, args=args)
    return StaticRoutes(model)


@register_adaptive
def gradient_routes(
    *,
    scale: int,
    model: str = "fsrcnn_etds",
    light_args: Mapping[str, Any] | None = None,
    heavy_args: Mapping[str, Any] | None = None,
    knob: float = 0.05,
) -> GradientRoutes:
    """``model`` built with ``light_args`` and with ``heavy_args`` (fresh weights), split at ``knob``."""
    light = build_model(model, scale=scale, args=light_args)
    heavy = build_model(model, scale=scale, args=heavy_args)
    return GradientRoutes(light, heavy, threshold=knob)

