"""Task-based scoring: rate SR outputs with any user callable, averaged over a set.

A downstream task (a detector, a classifier, an OCR model) judges an SR method by how well it works on
the SR images. :class:`TaskMetric` wraps such a callable::

    metric = TaskMetric(lambda sr, hr: detector_map(detector(sr), detector(hr)), name="detector_map")
    for sr, hr in pairs:
        metric.update(sr, hr)
    metric.compute()   # {"detector_map": ...}

``fn(sr_batch, hr_batch)`` gets (N, C, H, W) tensors (a (C, H, W) image is given as a batch of one)
and returns either one float for the batch (counted as the mean of its N images) or a per-image
tensor of N values. With ``reference=False`` the callable is no-reference: ``fn(sr_batch)``.

The same accumulator serves the learned and no-reference metrics: ``TaskMetric(LPIPS(...), name="lpips")``,
``TaskMetric(NIQE(...), name="niqe", reference=False)``. Averages run in :class:`MeanMeter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from srlab.errors import SrlabError
from srlab.metrics.protocol import MeanMeter


def as_batch(x: Tensor, name: str) -> Tensor:
    """(C, H, W) -> (1, C, H, W); (N, C, H, W) unchanged; anything else is an SrlabError."""
    if not isinstance(x, Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise SrlabError(f"{name} must be a (C, H, W) or (N, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise SrlabError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
    return x.unsqueeze(0) if x.dim() == 3 else x


class TaskMetric:
    """Scores SR batches with ``fn`` and keeps the running mean (a :class:`MeanMeter`).

    Attributes:
        fn: the scoring callable, ``fn(sr, hr)`` (or ``fn(sr)`` when ``reference`` is False).
        name: the key :meth:`compute` returns.
        reference: whether ``fn`` needs the HR image.
        higher_is_better: for reports and model selection (not used in the arithmetic).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        *,
        reference: bool = True,
        higher_is_better: bool = True,
    ) -> None:
        if not callable(fn):
            raise SrlabError(f"TaskMetric {name!r}: fn must be callable, got {type(fn).__name__}")
        if not isinstance(name, str) or not name:
            raise SrlabError(f"TaskMetric: name must be a non-empty string, got {name!r}")
        self.fn = fn
        self.name = name
        self.reference = reference
        self.higher_is_better = higher_is_better
        self.meter = MeanMeter()

    def __call__(self, sr: Tensor, hr: Tensor | None = None) -> Tensor:
        """Per-image scores of a batch, as a float64 CPU tensor of N values (not accumulated)."""
        sr = as_batch(sr, "sr")
        n = sr.shape[0]
        with torch.no_grad():
            if self.reference:
                if hr is None:
                    raise SrlabError(f"metric {self.name!r} compares with the HR image: pass hr")
                hr = as_batch(hr, "hr")
                if hr.shape[0] != n:
                    raise SrlabError(f"metric {self.name!r}: sr has {n} images but hr has {hr.shape[0]}")
                out = self.fn(sr, hr)
            else:
                out = self.fn(sr)
        if isinstance(out, Tensor):
            values = out.detach().to("cpu", torch.float64).reshape(-1)
            if values.numel() == 1 and n > 1:
                return values.expand(n).clone()
            if values.numel() != n:
                raise SrlabError(
                    f"metric {self.name!r} returned {values.numel()} values for a batch of {n} images; "
                    "return one float or one value per image"
                )
            return values
        try:
            value = float(out)
        except (TypeError, ValueError) as exc:
            raise SrlabError(
                f"metric {self.name!r} returned {type(out).__name__}; return a float or a per-image tensor"
            ) from exc
        return torch.full((n,), value, dtype=torch.float64)

    def update(self, sr: Tensor, hr: Tensor | None = None) -> list[float]:
        """Score a batch (or one image), add it to the running mean, return the per-image scores."""
        values = self(sr, hr)
        for v in values.tolist():
            self.meter.update(v)
        return values.tolist()

    @property
    def count(self) -> int:
        return self.meter.count

    def compute(self) -> dict[str, float]:
        """``{name: mean over all images so far}``."""
        if self.meter.count == 0:
            raise SrlabError(f"metric {self.name!r}: no images scored yet")
        return {self.name: self.meter.mean}

    def reset(self) -> None:
        self.meter.reset()
