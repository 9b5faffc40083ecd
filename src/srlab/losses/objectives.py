"""Training objectives behind one interface, a registry of them by name, and their weighted sum.

The interface the trainer relies on
-----------------------------------
* :class:`LossInputs` carries everything an objective may look at: ``sr`` (N, 3, H, W) in [0, 1] (the
  model's output, with its graph), ``hr`` (N, 3, H, W), ``lr`` (N, 3, h, w), the integer ``scale`` and
  ``uncertainty``: an (N, 1, H, W) log-variance map ``s`` the model predicts next to ``sr`` (UDL), or
  None for models that predict none.
* Every objective is an ``nn.Module`` whose ``forward(inputs: LossInputs) -> Tensor`` returns a scalar,
  built with keyword-only arguments that all have defaults, and with two class attributes:
  ``needs_uncertainty`` (True: ``inputs.uncertainty`` must be given) and ``adversarial`` (True: the
  module owns a ``discriminator`` and has ``discriminator_loss(inputs) -> Tensor``).
* :data:`LOSS_NAMES` lists the registered names; :func:`build_objective` makes one from its name and
  its constructor's keyword arguments (``params``). An unknown name or parameter is an SrlabError that
  lists the valid ones.
* :class:`WeightedObjective` (made by :func:`build_weighted_objective` from ``(name, weight, params)``
  triples) returns ``(total, terms)``: ``total = sum(weight * term)`` with its graph, and ``terms`` maps
  each term's name to its unweighted value (detached, for logging).

Adversarial training (``gan``)
------------------------------
``forward(inputs)`` is the generator's adversarial loss: gradients reach ``sr`` (and so the model)
but never the discriminator's parameters. ``discriminator_loss(inputs)`` is the discriminator's loss
on ``hr`` (real) and ``sr.detach()`` (fake). The trainer keeps a second optimiser over
``module.discriminator.parameters()`` and steps it after the generator step:
``d_opt.zero_grad(); objective.discriminator_loss(inputs).backward(); d_opt.step()``. The
generator's optimiser must hold only the model's parameters (feature extractors are frozen:
``requires_grad`` False).

Pixel losses (``l1``, ``l2``, ``charbonnier``) are the study's section 3.1.1 (:mod:`srlab.losses.pixel`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.losses.pixel import CharbonnierLoss

__all__ = [
    "LOSS_NAMES",
    "LossInputs",
    "L1Objective",
    "L2Objective",
    "CharbonnierObjective",
    "WeightedObjective",
    "build_objective",
    "build_weighted_objective",
]

LOSS_NAMES = ("l1", "l2", "charbonnier", "udl", "content", "texture", "tv", "gan", "contrastive")


@dataclass(frozen=True)
class LossInputs:
    """One batch as the objectives see it (see the module docstring)."""

    sr: Tensor
    hr: Tensor
    lr: Tensor
    scale: int
    uncertainty: Tensor | None = None


class L1Objective(nn.Module):
    """mean |sr - hr| (MAE)."""

    needs_uncertainty: bool = False
    adversarial: bool = False

    def __init__(self) -> None:
        super().__init__()

    def forward(self, inputs: LossInputs) -> Tensor:
        return F.l1_loss(inputs.sr, inputs.hr)


class L2Objective(nn.Module):
    """mean (sr - hr)^2 (MSE)."""

    needs_uncertainty: bool = False
    adversarial: bool = False

    def __init__(self) -> None:
        super().__init__()

    def forward(self, inputs: LossInputs) -> Tensor:
        return F.mse_loss(inputs.sr, inputs.hr)


class CharbonnierObjective(nn.Module):
    """mean sqrt((sr - hr)^2 + eps^2) (:class:`srlab.losses.pixel.CharbonnierLoss`)."""

    needs_uncertainty: bool = False
    adversarial: bool = False

    def __init__(self, *, eps: float = 1e-3) -> None:
        super().__init__()
        if not _is_number(eps) or eps <= 0:
            raise SrlabError(f"charbonnier: eps must be a positive number, got {eps!r}")
        self.loss = CharbonnierLoss(eps=float(eps))

    def forward(self, inputs: LossInputs) -> Tensor:
        return self.loss(inputs.sr, inputs.hr)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _registry() -> dict[str, type[nn.Module]]:
    # Imported here: those modules import LossInputs from this one.
    from srlab.losses.contrastive import ContrastiveLoss
    from srlab.losses.gan import GANLoss
    from srlab.losses.perceptual import ContentLoss, TextureLoss
    from srlab.losses.tv import TVLoss
    from srlab.losses.udl import UDLLoss

    return {
        "l1": L1Objective, "l2": L2Objective, "charbonnier": CharbonnierObjective, "udl": UDLLoss,
        "content": ContentLoss, "texture": TextureLoss, "tv": TVLoss, "gan": GANLoss,
        "contrastive": ContrastiveLoss,
    }


def objective_parameters(name: str) -> tuple[str, ...]:
    """The keyword arguments ``build_objective(name, params=...)`` accepts."""
    cls = _lookup(name)
    signature = inspect.signature(cls.__init__)
    return tuple(p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _lookup(name: str) -> type[nn.Module]:
    registry = _registry()
    if name not in registry:
        raise SrlabError(f"unknown loss {name!r}: use one of {', '.join(LOSS_NAMES)}")
    return registry[name]


def build_objective(name: str, *, params: Mapping[str, Any] | None = None) -> nn.Module:
    """The objective ``name`` built with ``params`` as its keyword arguments."""
    cls = _lookup(name)
    if params is not None and not isinstance(params, Mapping):
        raise SrlabError(f"the parameters of loss {name!r} must be a mapping of keyword arguments, got {params!r}")
    params = dict(params or {})
    valid = objective_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        choices = ", ".join(valid) if valid else "none"
        raise SrlabError(f"unknown parameter {unknown[0]!r} for loss {name!r}: valid parameters are {choices}")
    return cls(**params)


class WeightedObjective(nn.Module):
    """sum_k weight_k * objective_k(inputs); ``forward`` returns ``(total, {name: unweighted term})``.

    A name used twice is logged as ``name``, ``name_2``, ...
    """

    def __init__(self, *, terms: Sequence[tuple[str, float, Mapping[str, Any] | None]] = (("l1", 1.0, None),)) -> None:
        super().__init__()
        if not terms:
            raise SrlabError(f"no loss terms given: name at least one of {', '.join(LOSS_NAMES)}")
        self.objectives = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for term in terms:
            if not isinstance(term, (tuple, list)) or len(term) != 3:
                raise SrlabError(f"a loss term is (name, weight, params), got {term!r}")
            name, weight, params = term
            if not _is_number(weight) or weight < 0:
                raise SrlabError(f"loss {name!r}: the weight must be a number >= 0, got {weight!r}")
            key, k = str(name), 1
            while key in self.objectives:
                k += 1
                key = f"{name}_{k}"
            self.objectives[key] = build_objective(name, params=params)
            self.weights[key] = float(weight)

    @property
    def needs_uncertainty(self) -> bool:
        return any(getattr(m, "needs_uncertainty", False) for m in self.objectives.values())

    @property
    def adversarial(self) -> bool:
        return any(getattr(m, "adversarial", False) for m in self.objectives.values())

    def adversarial_objectives(self) -> dict[str, nn.Module]:
        """The terms that own a discriminator (each needs its own optimiser)."""
        return {k: m for k, m in self.objectives.items() if getattr(m, "adversarial", False)}

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        total: Tensor | None = None
        terms: dict[str, Tensor] = {}
        for key, objective in self.objectives.items():
            value = objective(inputs)
            terms[key] = value.detach()
            weighted = self.weights[key] * value
            total = weighted if total is None else total + weighted
        assert total is not None
        return total, terms

    def discriminator_loss(self, inputs: LossInputs) -> Tensor:
        """Sum of the adversarial terms' discriminator losses (an SrlabError if there is none)."""
        adversarial = self.adversarial_objectives()
        if not adversarial:
            raise SrlabError("no adversarial loss term: add 'gan' to the losses to train a discriminator")
        losses = [m.discriminator_loss(inputs) for m in adversarial.values()]
        return torch.stack(losses).sum()


def build_weighted_objective(terms: Sequence[tuple[str, float, Mapping[str, Any] | None]]) -> WeightedObjective:
    """:class:`WeightedObjective` of ``(name, weight, params)`` triples, e.g. ``[("l1", 1.0, None),
    ("content", 1.0, {"feature_weights": "vgg19-dcbb9e9d.pth"}), ("gan", 5e-3, {"gan_type": "ragan"})]``."""
    return WeightedObjective(terms=terms)


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


def check_pair(inputs: LossInputs, who: str) -> None:
    if inputs.sr.shape != inputs.hr.shape:
        raise SrlabError(f"the {who} loss: sr {tuple(inputs.sr.shape)} and hr {tuple(inputs.hr.shape)} differ in shape")
