"""The upsampler contract: how a network turns LR-resolution features into an HR-resolution output.

An upsampler is a keyword-only factory ``factory(*, in_channels, out_channels, scale, <options with
defaults>) -> nn.Module`` registered by name with :func:`register_upsampler`. The module it builds maps
``(N, in_channels, H, W)`` to ``(N, out_channels, scale * H, scale * W)``; ``scales`` says which
integer scales it builds for (``None``: any). A model that takes an upsampler as a hyper-parameter
(``upsampler: str = "subpixel"``) builds it with :func:`build_upsampler`, so every registered
family (sub-pixel, interpolation + conv, transposed conv, ...) can be swapped in without editing the
model.

Every factory's docstring names its paper and its MAC convention: how
:func:`srlab.models.complexity.count_macs` counts it, per LR input of H x W pixels. Its registration
states its ``reach``: how many LR pixels away (per side) an output pixel may read its input features, at
every scale it builds (an int, or a function of its options): a model built with another upsampler than its
default adds the difference to its receptive radius (the tile overlap), see
:func:`srlab.models.registry.build_model`; ``tests/layers/test_upsamplers.py`` checks each stated reach
against the measured one.

Adding an upsampler: one new module in :mod:`srlab.layers.upsamplers` with the decorated factory, and
one line in that package's import list. A renamed upsampler keeps its old name as an alias
(``aliases=``), so configs and checkpoints that name it still build.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from srlab.errors import SrlabError

UpsamplerFactory = Callable[..., nn.Module]

_CONTRACT_ARGUMENTS = ("in_channels", "out_channels", "scale")


Reach = int | Callable[[dict[str, Any]], int]


@dataclass(frozen=True)
class UpsamplerEntry:
    name: str
    factory: UpsamplerFactory
    scales: tuple[int, ...] | None
    reach_rule: Reach

    def options(self) -> dict[str, Any]:
        """The factory's own options and their defaults (beyond the contract's three arguments)."""
        params = inspect.signature(self.factory).parameters
        return {k: p.default for k, p in params.items() if k not in _CONTRACT_ARGUMENTS}

    def reach(self, options: dict[str, Any] | None = None) -> int:
        """LR pixels (per side) an output pixel reads beyond its own, with ``options`` over the defaults."""
        if isinstance(self.reach_rule, int):
            return self.reach_rule
        return self.reach_rule({**self.options(), **(options or {})})


_UPSAMPLERS: dict[str, UpsamplerEntry] = {}
_ALIASES: dict[str, str] = {}  # old name -> registered name


def register_upsampler(
    name: str, *, reach: Reach, scales: tuple[int, ...] | None = None, aliases: tuple[str, ...] = ()
) -> Callable[[UpsamplerFactory], UpsamplerFactory]:
    """Register ``factory`` under ``name`` (and ``aliases``); it must take the contract's arguments,
    keyword-only. ``reach``: see the module docstring."""

    def decorate(factory: UpsamplerFactory) -> UpsamplerFactory:
        for taken in (name, *aliases):
            if taken in _UPSAMPLERS or taken in _ALIASES:
                raise ValueError(f"upsampler {taken!r} is registered twice")
        params = inspect.signature(factory).parameters
        if any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in params.values()):
            raise TypeError(f"upsampler factory {name!r} must take keyword-only arguments")
        missing = [a for a in _CONTRACT_ARGUMENTS if a not in params]
        if missing:
            raise TypeError(f"upsampler factory {name!r} must take {', '.join(missing)}")
        options_without_default = [
            k for k, p in params.items() if k not in _CONTRACT_ARGUMENTS and p.default is inspect.Parameter.empty
        ]
        if options_without_default:
            raise TypeError(f"upsampler factory {name!r}: options need defaults ({', '.join(options_without_default)})")
        _UPSAMPLERS[name] = UpsamplerEntry(name, factory, scales, reach)
        _ALIASES.update(dict.fromkeys(aliases, name))
        return factory

    return decorate


def list_upsamplers() -> list[str]:
    """The registered upsampler names, sorted (aliases left out)."""
    return sorted(_UPSAMPLERS)


def upsampler_entry(name: str) -> UpsamplerEntry:
    """The entry registered under ``name`` or under the name it is an alias of."""
    try:
        return _UPSAMPLERS[_ALIASES.get(name, name)]
    except KeyError:
        raise SrlabError(f"unknown upsampler {name!r}: choose one of {', '.join(list_upsamplers())}") from None


def build_upsampler(
    name: str, *, in_channels: int, out_channels: int, scale: int, options: dict[str, Any] | None = None
) -> nn.Module:
    """Build the registered upsampler ``name``; ``options`` override its own defaults."""
    entry = upsampler_entry(name)
    if entry.scales is not None and scale not in entry.scales:
        raise SrlabError(f"upsampler {name!r} does not build scale {scale}: use one of {list(entry.scales)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(entry.options()))
    if unknown:
        known = ", ".join(entry.options()) or "none"
        raise SrlabError(f"upsampler {name!r} has no option {', '.join(map(repr, unknown))}: its options are {known}")
    return entry.factory(in_channels=in_channels, out_channels=out_channels, scale=scale, **options)
