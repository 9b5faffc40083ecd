"""The metric registry: every image-quality metric registers one per-image function here by key.

The contract of a metric, declared once beside it with :func:`register_metric`::

    @register_metric("gmsd", higher_is_better=False, best=0.0)
    def score_gmsd(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol) -> float:
        return float(gmsd(sr, hr))

- **One argument order: SR first, HR (the reference) second**, everywhere. The function receives the
  pair as the evaluation protocol prepared it (:meth:`srlab.metrics.protocol.EvalProtocol.prepare`):
  (3, H, W) float64 tensors in [0, 1], the SR image rounded to 8-bit levels as saved, the border
  already shaved. It does its own colour handling (the Y channel, all three channels) and returns one
  float. A no-reference metric (``reference=False``) ignores ``hr``.
- ``higher_is_better``: the direction, for reports and model selection.
- ``best``: the value of a perfect pair (SR = HR), where the metric has one (``None`` for NIQE).
- ``weights``: the files the metric needs, ``{key: what the file is}``; the user names them with
  ``--metric_weights KEY=PATH``. ``load(files)`` builds the metric's model once from them, and the
  function then receives it as ``model=``. ``options`` are optional non-file keys (``lpips_net``).
- ``labelled``: the result key carries the protocol's label (``psnr`` -> ``psnr_y``, ``psnr_rgb``):
  PSNR and SSIM follow the protocol's channel; every other metric has its own fixed colour handling.

Adding a metric is one new module with its decorated function plus one import line in
:mod:`srlab.metrics` (which imports every metric module, so the registry is complete once
``srlab.metrics`` is imported). :class:`MetricSet` builds the named metrics of an evaluation (loading
weight files once); :class:`srlab.metrics.accumulator.ScoreAccumulator` keeps per-image values and means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from srlab.errors import SrlabError


class EvalProtocol(Protocol):
    """What the registry needs of :class:`srlab.metrics.protocol.EvalProtocol` (which builds on this
    module, so it is named structurally here rather than imported)."""

    @property
    def label(self) -> str: ...


ScoreFn = Callable[..., float]


@dataclass(frozen=True)
class Metric:
    """A registered metric: its key, its per-image function ``fn(sr, hr, *, protocol[, model])`` and its
    properties (see the module docstring)."""

    key: str
    fn: ScoreFn
    higher_is_better: bool
    best: float | None = None
    reference: bool = True
    labelled: bool = False
    weights: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    load: Callable[[Mapping[str, str]], Any] | None = None

    @property
    def needs_weights(self) -> bool:
        return bool(self.weights)

    def result_key(self, protocol: EvalProtocol) -> str:
        """The key of this metric's scores: ``psnr_y`` for a labelled metric under the paper protocol."""
        return f"{self.key}_{protocol.label}" if self.labelled else self.key


_METRICS: dict[str, Metric] = {}


def register_metric(
    key: str,
    *,
    higher_is_better: bool,
    best: float | None = None,
    reference: bool = True,
    labelled: bool = False,
    weights: Mapping[str, str] | None = None,
    options: Mapping[str, str] | None = None,
    load: Callable[[Mapping[str, str]], Any] | None = None,
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register ``fn(sr, hr, *, protocol[, model]) -> float`` as the metric ``key``."""
    if (load is None) != (not weights):
        raise ValueError(f"metric {key!r}: give both weights and load, or neither")

    def decorate(fn: ScoreFn) -> ScoreFn:
        if key in _METRICS:
            raise ValueError(f"metric {key!r} is already registered (by {_METRICS[key].fn.__module__})")
        _METRICS[key] = Metric(
            key, fn, higher_is_better, best, reference, labelled, dict(weights or {}), dict(options or {}), load,
        )
        return fn

    return decorate


def metric_names() -> tuple[str, ...]:
    """Every registered key, in registration order."""
    return tuple(_METRICS)


def get_metric(key: str) -> Metric:
    if key not in _METRICS:
        raise SrlabError(f"unknown metric {key!r}: choose from {', '.join(_METRICS)}")
    return _METRICS[key]


def weight_keys() -> tuple[str, ...]:
    """Every key ``--metric_weights`` accepts: the weight files of all metrics, then their options."""
    files = [k for m in _METRICS.values() for k in m.weights]
    options = [k for m in _METRICS.values() for k in m.options]
    return tuple(dict.fromkeys(files + options))


# The metrics every evaluation reports, whatever else it asks for (the papers' table columns).
PROTOCOL_METRICS = ("psnr", "ssim")


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"psnr,ssim,gmsd"`` -> ``("psnr", "ssim", "gmsd")``: PSNR and SSIM always first, then the others in
    the order given; unknown names are errors."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in _METRICS]
    if unknown:
        weighted = ", ".join(m.key for m in _METRICS.values() if m.needs_weights)
        raise SrlabError(
            f"unknown metric {', '.join(map(repr, unknown))}: choose from {', '.join(_METRICS)} "
            f"({weighted} also need --metric_weights files)"
        )
    return tuple(dict.fromkeys([*PROTOCOL_METRICS, *names]))


def parse_metric_weights(assignments: Sequence[str]) -> dict[str, str]:
    """``["lpips_lin=alex.pth", ...]`` -> {"lpips_lin": "alex.pth", ...}."""
    parsed = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SrlabError(
                f"--metric_weights expects KEY=PATH, got {item!r} (e.g. --metric_weights niqe=modelparameters.mat)"
            )
        parsed[key.strip()] = value.strip()
    return parsed


class MetricSet:
    """The metrics of one evaluation, built once: weighted ones load their files here, before any image.

    ``names`` are registered keys (or :class:`Metric` objects, for a metric that is not registered);
    ``weights`` maps ``--metric_weights`` keys to files.
    """

    def __init__(
        self, names: Sequence[str | Metric] = PROTOCOL_METRICS, weights: Mapping[str, str] | None = None,
    ) -> None:
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(weight_keys()))
        if unknown:
            raise SrlabError(
                f"--metric_weights: unknown key {', '.join(map(repr, unknown))}: use {', '.join(weight_keys())}"
            )
        chosen: dict[str, Metric] = {}
        for name in names:
            metric = name if isinstance(name, Metric) else get_metric(name)
            chosen.setdefault(metric.key, metric)
        self.metrics = tuple(chosen.values())
        self._models: dict[str, Any] = {}
        for metric in self.metrics:
            missing = [k for k in metric.weights if k not in weights]
            if missing:
                raise SrlabError(
                    f"metric {metric.key!r} needs --metric_weights {missing[0]}=PATH ({metric.weights[missing[0]]})"
                )
            if metric.load is not None:
                self._models[metric.key] = metric.load(weights)

    def keys(self, protocol: EvalProtocol) -> tuple[str, ...]:
        """The result keys, in order: e.g. ``("psnr_y", "ssim_y", "gmsd")``."""
        return tuple(m.result_key(protocol) for m in self.metrics)

    def score(self, sr: Tensor, hr: Tensor, protocol: EvalProtocol) -> dict[str, float]:
        """Every metric of one pair that ``protocol.prepare`` made (SR first, HR second)."""
        scores = {}
        for metric in self.metrics:
            loaded = {"model": self._models[metric.key]} if metric.key in self._models else {}
            value = metric.fn(sr, hr, protocol=protocol, **loaded)
            try:
                scores[metric.result_key(protocol)] = float(value)
            except (TypeError, ValueError) as exc:
                what = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise SrlabError(f"metric {metric.key!r} returned {what}; return one float for the image") from exc
        return scores
