"""The contract every training objective follows, and the registry of objectives by name.

* :class:`LossInputs` carries everything an objective may look at: ``sr`` (N, 3, H, W) in [0, 1] (the
  model's output, with its graph), ``hr`` (N, 3, H, W), ``lr`` (N, 3, h, w), the integer ``scale`` and
  ``uncertainty``: an (N, 1, H, W) log-variance map ``s`` the model predicts next to ``sr`` (UDL), or
  None for models that predict none; ``aux``: what a routing model's training forward returns next to
  ``sr`` (e.g. ClassSR's ``class_probs``, (N, classes)), empty for the others.
* An objective is an :class:`Objective`: an ``nn.Module`` whose ``forward(inputs: LossInputs) -> Tensor``
  returns a scalar, built with keyword-only arguments that all have defaults. Two class attributes
  say what it needs: ``needs_uncertainty`` (True: ``inputs.uncertainty`` must be given) and
  ``adversarial`` (True: the module owns a ``discriminator`` and has ``discriminator_loss(inputs)``).
* :func:`register_loss` registers an objective class under its name; :func:`build_objective` makes one
  from its name and its constructor's keyword arguments (``params``). An unknown name or parameter is an
  SrlabError that lists the valid ones.

Adding a loss is one module in this package whose class is decorated with ``@register_loss("name")``,
plus that module's line in the import list of :mod:`srlab.losses` (which makes it register).

Adversarial training (``gan``)
------------------------------
``forward(inputs)`` is the generator's adversarial loss: gradients reach ``sr`` (and so the model)
but never the discriminator's parameters. ``discriminator_loss(inputs)`` is the discriminator's loss
on ``hr`` (real) and ``sr.detach()`` (fake). The trainer keeps a second optimiser over
``module.discriminator.parameters()`` and steps it after the generator step:
``d_opt.zero_grad(); objective.discriminator_loss(inputs).backward(); d_opt.step()``. The
generator's optimiser must hold only the model's parameters (feature extractors are frozen:
``requires_grad`` False).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from srlab.errors import SrlabError


@dataclass(frozen=True)
class LossInputs:
    """One batch as the objectives see it (see the module docstring)."""

    sr: Tensor
    hr: Tensor
    lr: Tensor
    scale: int
    uncertainty: Tensor | None = None
    aux: Mapping[str, Tensor] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class of the registered objectives: ``forward(inputs: LossInputs) -> Tensor`` (a scalar)."""

    needs_uncertainty: bool = False
    adversarial: bool = False

    def __init__(self) -> None:  # narrows nn.Module's (*args, **kwargs): objectives take keywords only
        super().__init__()


_REGISTRY: dict[str, type[Objective]] = {}

def register_loss(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Register an :class:`Objective` subclass as loss ``name`` (its constructor: keyword-only, all defaulted)."""

    def decorate(cls: type[Objective]) -> type[Objective]:
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} is registered twice")
        if not issubclass(cls, Objective):
            raise TypeError(f"loss {name!r}: {cls.__name__} must subclass srlab.losses.base.Objective")
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is inspect.Parameter.empty:
                raise TypeError(f"loss {name!r}: constructor argument {p.name!r} must be keyword-only with a default")
        _REGISTRY[name] = cls
        return cls

    return decorate


def loss_names() -> tuple[str, ...]:
    """The registered loss names, in registration order."""
    return tuple(_REGISTRY)


def loss_class(name: str) -> type[Objective]:
    if name not in _REGISTRY:
        raise SrlabError(f"unknown loss {name!r}: use one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def objective_parameters(name: str) -> tuple[str, ...]:
    """The keyword arguments ``build_objective(name, params=...)`` accepts."""
    signature = inspect.signature(loss_class(name).__init__)
    return tuple(p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def build_objective(name: str, *, params: Mapping[str, Any] | None = None) -> Objective:
    """The objective ``name`` built with ``params`` as its keyword arguments."""
    cls = loss_class(name)
    if params is not None and not isinstance(params, Mapping):
        raise SrlabError(f"the parameters of loss {name!r} must be a mapping of keyword arguments, got {params!r}")
    params = dict(params or {})
    valid = objective_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        choices = ", ".join(valid) if valid else "none"
        raise SrlabError(f"unknown parameter {unknown[0]!r} for loss {name!r}: valid parameters are {choices}")
    return cls(**params)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what numeric loss parameters must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_pair(inputs: LossInputs, who: str) -> None:
    if inputs.sr.shape != inputs.hr.shape:
        raise SrlabError(f"the {who} loss: sr {tuple(inputs.sr.shape)} and hr {tuple(inputs.hr.shape)} differ in shape")


def require_uncertainty(inputs: LossInputs, who: str) -> Tensor:
    """``inputs.uncertainty`` checked against ``sr``: (N, 1, H, W) or (N, C, H, W)."""
    s = inputs.uncertainty
    if s is None:
        raise SrlabError(
            f"the {who} loss needs the model's uncertainty map (LossInputs.uncertainty, log variance): "
            "use a model that predicts one"
        )
    sr = inputs.sr
    if s.dim() != 4 or s.shape[0] != sr.shape[0] or s.shape[-2:] != sr.shape[-2:] or s.shape[1] not in (1, sr.shape[1]):
        raise SrlabError(
            f"the {who} loss: the uncertainty map must be shaped (N, 1, H, W) like sr {tuple(sr.shape)}, "
            f"got {tuple(s.shape)}"
        )
    return s
