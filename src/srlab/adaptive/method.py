"""The contract of a content-adaptive method, what one adaptive inference reports, and the registry.

An adaptive method is an :class:`AdaptiveMethod`: a built zoo model run so that its compute follows the
image content, with one scalar knob that trades quality for compute. Two kinds exist:

* patch-routed (ClassSR, ARM, srlab's adaptive RDSR): the LR image is split into patches and each goes
  to one of the model's paths; these subclass :class:`srlab.adaptive.engine.PatchRoutedMethod`, which
  does the splitting, grouping, batching, merging and MAC accounting;
* internally adaptive (PCSR routes pixels, CAMixerSR windows, SMSR sparse positions): the model's own
  forward routes; a small wrapper (``srlab/adaptive/<method>.py``) sets the knob and reports what ran.

Every method answers :meth:`AdaptiveMethod.upscale` with the SR image and an :class:`AdaptiveStats`
(MACs actually spent, the same weights' full-path MACs, the routing histogram), and
:meth:`AdaptiveMethod.full_path`: the same weights computing everything, the baseline that the
quality/compute trade-off is measured against.

A new method is one file with a subclass and a factory ``def name(model, *, checkpoint=None, knob=...)``
decorated with :func:`register_adaptive`, plus its import line in :mod:`srlab.adaptive`; a model names
the method that runs it in its ``ModelInfo.adaptive``.
"""

from __future__ import annotations

import abc
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.models.registry import spec_of


@dataclass(frozen=True)
class AdaptiveStats:
    """What one adaptive inference did (no timings: those live in benchmarks).

    ``route_counts[i]`` units (patches, pixels, windows: ``unit``) went to route ``route_names[i]``, each
    costing ``route_macs[i]``; ``shared_macs`` were spent whatever the routing (a backbone the full path
    runs too) and ``router_macs`` on deciding the routes (a classifier the full path does not run).
    A method whose cost is measured as a whole rather than per unit sets ``route_macs`` to zeros and
    gives ``measured`` = (spent, full)."""

    route_counts: tuple[int, ...]  # the routing histogram
    route_macs: tuple[int, ...]
    route_names: tuple[str, ...]
    unit: str
    out_hw: tuple[int, int]  # the SR size
    shared_macs: int = 0
    router_macs: int = 0
    measured: tuple[int, int] | None = None
    patch_hw: tuple[int, int] | None = None  # patch-routed methods: the patch and the grid
    grid_hw: tuple[int, int] | None = None

    @property
    def units(self) -> int:
        return sum(self.route_counts)

    @property
    def macs_spent(self) -> int:
        """MACs of what actually ran (routing decisions included where the method counts them)."""
        if self.measured is not None:
            return self.measured[0]
        routed = sum(n * macs for n, macs in zip(self.route_counts, self.route_macs))
        return self.shared_macs + self.router_macs + routed

    @property
    def macs_full(self) -> int:
        """MACs of the same weights' full path: every unit on the heaviest route, no routing decisions."""
        if self.measured is not None:
            return self.measured[1]
        return self.shared_macs + self.units * max(self.route_macs)

    @property
    def route_fractions(self) -> tuple[float, ...]:
        return tuple(n / max(self.units, 1) for n in self.route_counts)

    def histogram(self) -> dict[str, int]:
        return dict(zip(self.route_names, self.route_counts))


class AdaptiveMethod(nn.Module, abc.ABC):
    """A model whose compute follows the content, with a knob (see the module docstring).

    Subclasses set ``knob_name``, ``knob_range`` (inclusive) and ``knob_sweep`` (the knob values a
    trade-off curve visits, cheap to expensive), or leave ``knob_name`` None for a method without a knob.
    """

    knob_name: ClassVar[str | None] = None
    knob_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)
    knob_sweep: ClassVar[tuple[float, ...]] = ()

    def __init__(self, *, scale: int, knob: float | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.knob = knob
        self.method_name = type(self).__name__  # the registered name once built by build_adaptive

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
    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        """(N, C, H, W) LR in [0, 1] -> (SR, what ran). ``whole_image=False`` asks for the method's
        published evaluation protocol where it has one (ClassSR/ARM: only the region the patch grid
        covers, ``stats.out_hw``; score it against the HR image cropped to that size)."""

    @abc.abstractmethod
    def full_path(self) -> nn.Module:
        """The same weights computing everything (every unit on the heaviest route), as a plain model
        ``lr -> sr`` on whole images: the static baseline of the trade-off."""


Factory = Callable[..., AdaptiveMethod]
_REGISTRY: dict[str, Factory] = {}


def register_adaptive(factory: Factory) -> Factory:
    """Register ``def name(model, *, checkpoint=None, knob=...) -> AdaptiveMethod`` under its name."""
    if factory.__name__ in _REGISTRY:
        raise ValueError(f"adaptive method {factory.__name__!r} is registered twice")
    _REGISTRY[factory.__name__] = factory
    return factory


def list_adaptive() -> list[str]:
    return sorted(_REGISTRY)


def build_adaptive(
    name: str, model: nn.Module, *, checkpoint: str | Path | None = None, knob: float | None = None
) -> AdaptiveMethod:
    """Run the built ``model`` (its weights from ``checkpoint``, if any) with adaptive method ``name``;
    ``knob`` None takes the method's default."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise SrlabError(f"unknown adaptive method {name!r}: choose one of {', '.join(list_adaptive())}")
    kwargs: dict[str, Any] = {"checkpoint": None if checkpoint is None else Path(checkpoint)}
    if knob is not None:
        if "knob" not in inspect.signature(factory).parameters:
            raise SrlabError(f"adaptive method {name} has no knob: leave the knob out")
        kwargs["knob"] = knob
    method = factory(model, **kwargs)
    method.method_name = name
    return method


def adaptive_for(
    model: nn.Module, *, method: str | None = None, checkpoint: str | Path | None = None, knob: float | None = None
) -> AdaptiveMethod:
    """The adaptive method that runs ``model``: ``method`` if given, else the one its ModelInfo names."""
    spec = spec_of(model)
    name = method or spec.info.adaptive
    if not name:
        raise SrlabError(
            f"model {spec.name!r} is not content-adaptive and has no knob: drop --knob, or run it through the "
            f"patch engine with --adaptive static"
        )
    return build_adaptive(name, model, checkpoint=checkpoint, knob=knob)


class AdaptiveModel(nn.Module):
    """``method`` as a plain model ``lr -> sr`` over whole images (``srlab upscale`` runs it like any model,
    tiles and strips included); the stats of every call are appended to ``calls``."""

    def __init__(self, method: AdaptiveMethod, model: nn.Module) -> None:
        super().__init__()
        self.method = method
        self.srlab_spec = spec_of(model)
        self.calls: list[AdaptiveStats] = []

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        sr, stats = self.method.upscale(lr, whole_image=True)
        self.calls.append(stats)
        return sr

    def take_calls(self) -> list[AdaptiveStats]:
        """The stats since the last take (e.g. the tiles of one image), emptying the list."""
        calls, self.calls = self.calls, []
        return calls
