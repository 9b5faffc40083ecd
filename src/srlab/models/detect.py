"""Which registered model a checkpoint holds, read from its tensors' names and shapes.

srlab's own checkpoints record their model, scale and hyper-parameters; official releases do not. For
those, every registered variant is built on the meta device (no memory, no initialisation) at each of its
scales, in its training form and, for re-parameterisable models, its fused inference form, and the
checkpoint's names and shapes (less the tensors a model derives itself, see ``weight_tensors``) are
compared with the variant's. Nothing about an architecture is listed here: where hyper-parameters change
the names or shapes (numbers of blocks, channels), the architecture declares beside itself how to read
them from a state dict (``ModelInfo.args_from_weights``), and the proposal is checked the same way.

A released file listed in srlab's registry of official weights (:mod:`srlab.models.official`) is known
by its SHA-256: its model, scale and hyper-parameters are the registry's, which settles what the tensors
alone cannot (FSRCNN's scale, weights that fit two architectures), and only its form is read from the
tensors.

A variant's default form wins over one with hyper-parameters read from the weights, and among those the
one that overrides fewest defaults. Weights that fit several models, or one network at several scales
(CARN-M's multi-scale release; FSRCNN, whose tensors do not depend on the scale), are ambiguous: a scale
written in the file name (``_x4``) settles the scale among those that fit, otherwise the error asks for
``--scale`` or ``--model``.

Model factories run under ``torch.device("meta")`` here: they must not fill process-wide caches with
tensors while they build (none does).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.models import official
from srlab.models.registry import build_model, list_models, model_entry
from srlab.models.reparam import deploy, has_deploy_form
from srlab.models.weights import FORMS, Checkpoint, read_checkpoint, weight_tensors


@dataclass(frozen=True)
class Detected:
    """A registered model that a checkpoint fits exactly."""

    name: str
    scale: int | float
    # The hyper-parameters beyond the variant's defaults: read from the weights, or given by the user.
    args: dict[str, Any] = field(default_factory=dict)
    form: str = "train"

    def describe(self) -> str:
        args = "".join(f" {k}={v}" for k, v in self.args.items())
        deployed = " (deploy form)" if self.form == "deploy" else ""
        return f"{self.name} x{self.scale}{args}{deployed}"


@dataclass(frozen=True)
class _Variant:
    """A variant built on the meta device: its tensors' shapes, and the model (for its derived keys)."""

    model: nn.Module
    shapes: dict[str, tuple[int, ...]]


def _frozen(args: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items()))


@functools.lru_cache(maxsize=1024)
def _variant(name: str, scale: int | float, args: tuple[tuple[str, Any], ...], form: str) -> _Variant | None:
    """The variant (None where these hyper-parameters do not build, or it has no such form)."""
    if form == "deploy":
        trained = _variant(name, scale, args, "train")
        if trained is None or not has_deploy_form(trained.model):
            return None
        with torch.device("meta"):
            model = deploy(trained.model)
    else:
        with torch.device("meta"):
            try:
                model = build_model(name, scale=scale, args=dict(args))
            except SrlabError:  # hyper-parameters read from foreign weights may not build
                return None
    return _Variant(model, {k: tuple(v.shape) for k, v in model.state_dict().items()})


def _fits(variant: _Variant | None, state: Mapping[str, Tensor]) -> bool:
    if variant is None or not variant.shapes:  # a model without weights is never "detected"
        return False
    own = weight_tensors(variant.model, state)
    return len(own) == len(variant.shapes) and all(
        tuple(tensor.shape) == variant.shapes.get(k) for k, tensor in own.items()
    )


_NUMBER = re.compile(r"\d+")


def _layout(keys) -> frozenset[str]:
    """Key names with their numbers blanked (``body.#.conv#``): the same for every depth and (checked by
    the tests) every scale of an architecture, so it tells cheaply which variants can fit at all."""
    return frozenset(_blanked(k) for k in keys)


@functools.lru_cache(maxsize=65536)
def _blanked(key: str) -> str:
    return _NUMBER.sub("#", key)


def _scales(name: str, scale: int | float | None) -> tuple[int | float, ...]:
    info = model_entry(name).info
    if scale is None:
        return info.scales
    return (scale,) if info.arbitrary_scale or scale in info.scales else ()


def _matches(
    name: str, state: Mapping[str, Tensor], scale: int | float | None, args: Mapping[str, Any]
) -> Iterator[Detected]:
    for s in _scales(name, scale):
        for form in FORMS:
            if _fits(_variant(name, s, _frozen(args), form), state):
                yield Detected(name, s, dict(args), form)


def _could_fit(name: str, state: Mapping[str, Tensor]) -> bool:
    """Whether the state dict has the layout of the variant's default form (at its first scale)."""
    first = model_entry(name).info.scales[0]
    for form in FORMS:
        variant = _variant(name, first, (), form)
        if variant is not None and _layout(weight_tensors(variant.model, state)) == _layout(variant.shapes):
            return True
    return False


def _read_args(name: str, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
    """The hyper-parameters the architecture reads from the weights that differ from its defaults."""
    reader = model_entry(name).info.args_from_weights
    if reader is None:
        return None
    try:
        read = reader(state)
    except (KeyError, IndexError, ValueError):  # the weights of another architecture
        return None
    defaults = model_entry(name).defaults()
    changed = {k: v for k, v in read.items() if k in defaults and v != defaults[k]}
    return changed or None


def matching_models(
    state: Mapping[str, Tensor],
    *,
    name: str | None = None,
    scale: int | float | None = None,
    args: Mapping[str, Any] | None = None,
) -> list[Detected]:
    """Every registered model (or only ``name``; at ``scale`` if given) that the state dict fits exactly:
    the variants' default forms if any fits, otherwise those built with hyper-parameters read from the
    weights, fewest changed defaults first. ``args`` (the user's hyper-parameters) apply to every
    candidate, so only models that have them are tried."""
    args = dict(args or {})
    names = [name] if name is not None else list_models()
    # The layout check skips most variants cheaply; it knows the default layouts only.
    screened = name is None and not args
    found = [d for n in names if not screened or _could_fit(n, state) for d in _matches(n, state, scale, args)]
    if found:
        return found
    for n in names:
        read = _read_args(n, state)
        if read is not None:
            found.extend(_matches(n, state, scale, {**read, **args}))
    return sorted(found, key=lambda d: len(d.args))


def detect_model(
    checkpoint: Checkpoint | str | Path,
    *,
    name: str | None = None,
    scale: int | float | None = None,
    args: Mapping[str, Any] | None = None,
) -> Detected:
    """The one registered model, scale, hyper-parameters and form that the checkpoint holds, or an
    :class:`SrlabError` naming the candidates (ambiguous) or the closest models (none fits).
    ``name``, ``scale`` and ``args`` narrow the search; a checkpoint written by srlab is read as it
    records."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else read_checkpoint(checkpoint)
    if ckpt.model is not None:
        return Detected(ckpt.model, ckpt.scale, dict(ckpt.args), ckpt.form)
    found = _released(ckpt, name, scale, args) or matching_models(ckpt.state_dict, name=name, scale=scale, args=args)
    if not found:
        raise _no_match(ckpt, name, scale, args)
    fewest = len(found[0].args)
    found = [d for d in found if len(d.args) == fewest]
    networks = list(dict.fromkeys((d.name, _frozen(d.args), d.form) for d in found))
    if len(networks) > 1:
        shown = ", ".join(d.describe() for d in found[:6]) + (", ..." if len(found) > 6 else "")
        raise SrlabError(
            f"checkpoint '{ckpt.path}' fits several models ({shown}): pass --model NAME (and --scale S) "
            "to choose"
        )
    if len(found) == 1:
        return found[0]
    return _one_scale(ckpt.path, found)


def _released(
    ckpt: Checkpoint, name: str | None, scale: int | float | None, args: Mapping[str, Any] | None
) -> list[Detected]:
    """What the registry says the file is (narrowed by the user's flags), its form read from the tensors;
    empty for a file the registry does not list."""
    found = []
    for entry in official.releases_of(ckpt.path):
        if name in (None, entry.model) and scale in (None, entry.scale):
            found += _matches(entry.model, ckpt.state_dict, entry.scale, {**entry.args, **(args or {})})
    return found


def _one_scale(path: Path, found: list[Detected]) -> Detected:
    """One network that fits several scales: the one its file name states, if any."""
    by_scale = {d.scale: d for d in found}
    named = {int(s) for s in re.findall(r"(?<![a-z0-9])x(\d+)(?!\d)", path.stem.lower())}
    if len(named) == 1 and (hinted := named.pop()) in by_scale:
        return by_scale[hinted]
    scales = ", ".join(f"x{s}" for s in by_scale)
    any_scale = " (it renders at any scale >= 1)" if model_entry(found[0].name).info.arbitrary_scale else ""
    raise SrlabError(
        f"checkpoint '{path}' holds {found[0].name} weights that serve {scales} alike{any_scale}: "
        "pass --scale S"
    )


def _no_match(
    ckpt: Checkpoint, name: str | None, scale: int | float | None, args: Mapping[str, Any] | None
) -> SrlabError:
    if not ckpt.state_dict:
        return SrlabError(f"checkpoint '{ckpt.path}' holds no tensors: give a file with the model's weights")
    if scale is not None and (elsewhere := matching_models(ckpt.state_dict, name=name, args=args)):
        shown = ", ".join(d.describe() for d in elsewhere[:6])
        return SrlabError(f"checkpoint '{ckpt.path}' fits {shown}, not x{scale}: fix --scale or leave it out")
    given = "".join(f" {k}={v}" for k, v in (args or {}).items())
    if name is not None:
        return SrlabError(
            f"checkpoint '{ckpt.path}' does not fit model {name!r}{given} at any of its scales and forms: "
            "check --model and --model_arg, or leave them out to detect the model"
        )
    keys = _layout(ckpt.state_dict)
    closest = sorted(list_models(), key=lambda n: -_overlap(keys, _layout(_default_shapes(n))))[:3]
    first = next(iter(ckpt.state_dict))
    return SrlabError(
        f"checkpoint '{ckpt.path}' fits no registered model{given} ({len(ckpt.state_dict)} tensors, first "
        f"{first!r}; nearest names: {', '.join(closest)}): pass --model NAME and --scale S if it is one "
        "of srlab's models (`srlab models` lists them)"
    )


def _default_shapes(name: str) -> dict[str, tuple[int, ...]]:
    variant = _variant(name, model_entry(name).info.scales[0], (), "train")
    return variant.shapes if variant is not None else {}


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / max(len(a | b), 1)
