"""Search spaces: which model an architecture search builds and which of its hyper-parameters it draws.

A space is one :class:`SearchSpace` registered with :func:`register_space`: the registered model it
builds (``model``), ``suggest(trial)`` (the model's arguments drawn through an Optuna trial, so every
sampler and the study's storage see the same named parameters) and ``smallest`` (the candidates for its
cheapest member: the search counts their MACs and refuses a budget that none of them meets, rather than
drawing architectures that can never fit). Adding a space
is one function and one registration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from srlab.errors import SrlabError


@dataclass(frozen=True)
class SearchSpace:
    name: str
    model: str
    suggest: Callable[[Any], dict[str, Any]]  # an optuna.Trial -> the model's arguments
    smallest: tuple[dict[str, Any], ...]
    description: str


_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    if space.name in _SPACES:
        raise ValueError(f"search space {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def list_spaces() -> list[str]:
    return sorted(_SPACES)


def get_space(name: str) -> SearchSpace:
    if name not in _SPACES:
        raise SrlabError(f"unknown search space {name!r} (--space): use one of {', '.join(list_spaces())}")
    return _SPACES[name]


# srlab's fixed-scale upsamplers (srlab.list_upsamplers). Left out: the arbitrary-scale ones (liif, lte, meta),
# which cost 25-120x the MACs of the whole rdsr_s body at x4 and would only be drawn to be rejected by any
# budget, and `interpolate`, whose default mode makes it `nearest` again (its modes are listed by name).
RDSR_UPSAMPLERS = (
    "subpixel", "subpixel_progressive", "decomposed", "transposed", "attention", "bicubic", "bilinear", "nearest",
)


def _suggest_rdsr(trial: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "channels": trial.suggest_int("channels", 16, 64, step=8),
        "num_blocks": trial.suggest_int("num_blocks", 1, 8),
        "block": trial.suggest_categorical("block", ["distill", "residual"]),
        "attention": trial.suggest_categorical("attention", ["ca", "none"]),
        "spatial_attention": trial.suggest_categorical("spatial_attention", ["esa", "none"]),
        "upsampler": trial.suggest_categorical("upsampler", list(RDSR_UPSAMPLERS)),
    }
    if args["attention"] == "ca":  # the squeeze ratio means nothing without the attention
        args["ca_reduction"] = trial.suggest_categorical("ca_reduction", [4, 8, 16])
    return args


register_space(SearchSpace(
    name="rdsr",
    model="rdsr_s",
    suggest=_suggest_rdsr,
    smallest=tuple({"channels": 16, "num_blocks": 1, "block": "residual", "attention": "none",
                    "spatial_attention": "none", "upsampler": upsampler} for upsampler in RDSR_UPSAMPLERS),
    description="rdsr: width 16-64 (step 8), 1-8 blocks (residual distillation or plain residual), channel "
                "attention (reduction 4/8/16) or none, ESA or none, upsampler among srlab's fixed-scale ones",
))
