"""The objective the trainer optimises: a weighted sum of registered objectives.

:class:`WeightedObjective` (made by :func:`build_weighted_objective` from ``(name, weight, params)``
triples) returns ``(total, terms)``: ``total = sum(weight * term)`` with its graph, and ``terms`` maps
each term's name to its unweighted value (detached, for logging).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, build_objective, is_number, loss_names

LossTerm = tuple[str, float, Mapping[str, Any] | None]


class WeightedObjective(nn.Module):
    """sum_k weight_k * objective_k(inputs); ``forward`` returns ``(total, {name: unweighted term})``.

    A name used twice is logged as ``name``, ``name_2``, ...
    """

    def __init__(self, *, terms: Sequence[LossTerm] = (("l1", 1.0, None),)) -> None:
        super().__init__()
        if not terms:
            raise SrlabError(f"no loss terms given: name at least one of {', '.join(loss_names())}")
        self.objectives = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for term in terms:
            if not isinstance(term, (tuple, list)) or len(term) != 3:
                raise SrlabError(f"a loss term is (name, weight, params), got {term!r}")
            name, weight, params = term
            if not is_number(weight) or weight < 0:
                raise SrlabError(f"loss {name!r}: the weight must be a number >= 0, got {weight!r}")
            key, k = str(name), 1
            while key in self.objectives:
                k += 1
                key = f"{name}_{k}"
            self.objectives[key] = build_objective(name, params=params)
            self.weights[key] = float(weight)

    @property
    def needs_uncertainty(self) -> bool:
        return any(m.needs_uncertainty for m in self.objectives.values())

    @property
    def adversarial(self) -> bool:
        return any(m.adversarial for m in self.objectives.values())

    def adversarial_objectives(self) -> dict[str, Objective]:
        """The terms that own a discriminator (each needs its own optimiser)."""
        return {k: m for k, m in self.objectives.items() if m.adversarial}

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


def build_weighted_objective(terms: Sequence[LossTerm]) -> WeightedObjective:
    """:class:`WeightedObjective` of ``(name, weight, params)`` triples, e.g. ``[("l1", 1.0, None),
    ("content", 1.0, {"feature_weights": "vgg19-dcbb9e9d.pth"}), ("gan", 5e-3, {"gan_type": "ragan"})]``."""
    return WeightedObjective(terms=terms)
