"""The contract of a content-adaptive method, and the registry of methods.

An adaptive method (ClassSR, ARM, ...) is an :class:`AdaptiveMethod`: a module with ``num_routes``
computation paths of increasing cost, a deterministic router that sends every LR patch to one of them,
and one scalar knob that trades quality for compute. A new method is one file with a subclass and a
factory decorated with :func:`register_adaptive`; the engine (:mod:`srlab.adaptive.engine`) does the
splitting, grouping, batching, merging and MAC accounting for all of them.
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.models.complexity import count_macs


class AdaptiveMethod(nn.Module, abc.ABC):
    """Routes ``0 .. num_routes - 1``; by convention the last route is the heaviest.

    Subclasses set ``knob_name`` and ``knob_range`` (inclusive) or leave ``knob_name`` None for a method
    without a knob, and implement :meth:`route` and :meth:`route_module`.
    """

    knob_name: ClassVar[str | None] = None
    knob_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)

    def __init__(self, *, scale: int, num_routes: int, knob: float | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.num_routes = num_routes
        self.knob = knob

    @property
    def knob(self) -> float | None:
        return self._knob

    @knob.setter
    def knob(self, value: float | None) -> None:
        name = type(self).__name__
        if self.knob_name is None:
            if value is not None:
                raise SrlabError(f"adaptive method {name} has no knob: leave the knob out")
            self._knob = None
            return
        low, high = self.knob_range
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise SrlabError(
                f"{self.knob_name} of adaptive method {name} must be a number in [{low}, {high}], got {value!r}"
            )
        self._knob = float(value)

    @abc.abstractmethod
    def route(self, patches: torch.Tensor) -> torch.Tensor:
        """(P, C, h, w) LR patches -> (P,) int64 route per patch; a pure function of the patches and knob."""

    @abc.abstractmethod
    def route_module(self, index: int) -> nn.Module:
        """The network route ``index`` runs (used by :meth:`run` and :meth:`route_macs`)."""

    def run(self, index: int, patches: torch.Tensor) -> torch.Tensor:
        """A batch of LR patches through route ``index`` -> their SR patches."""
        return self.route_module(index)(patches)

    def route_macs(self, index: int, patch_hw: tuple[int, int]) -> int:
        """MACs route ``index`` spends on one patch of ``patch_hw`` LR pixels."""
        module = self.route_module(index)
        if any(p.dtype != torch.float32 for p in module.parameters()):
            # count_macs traces a float32 input; a float64 (test) or half copy is counted as float32
            module = copy.deepcopy(module).float()
        return count_macs(module, patch_hw)


_REGISTRY: dict[str, Callable[..., AdaptiveMethod]] = {}


def register_adaptive(factory: Callable[..., AdaptiveMethod]) -> Callable[..., AdaptiveMethod]:
    """Register a keyword-only factory ``def name(*, scale, knob=..., ...) -> AdaptiveMethod`` under its name."""
    if factory.__name__ in _REGISTRY:
        raise ValueError(f"adaptive method {factory.__name__!r} is registered twice")
    _REGISTRY[factory.__name__] = factory
    return factory


def list_adaptive() -> list[str]:
    return sorted(_REGISTRY)


def build_adaptive(name: str, *, scale: int, **kwargs: Any) -> AdaptiveMethod:
    """Build the registered adaptive method ``name``; ``kwargs`` (e.g. ``knob``) go to its factory."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise SrlabError(f"unknown adaptive method {name!r}: choose one of {', '.join(list_adaptive())}")
    try:
        return factory(scale=scale, **kwargs)
    except TypeError as e:
        raise SrlabError(f"adaptive method {name!r} cannot be built with {sorted(kwargs)}: {e}") from None
