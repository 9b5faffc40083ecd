"""What a benchmark run produces, as data: one entry per model and scale, the comparisons and plots.

:mod:`srlab.report.benchmark` fills a :class:`BenchmarkResult`; :mod:`srlab.report.tables` and
:mod:`srlab.report.html` write it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from srlab.inference.evaluate import DatasetResult
from srlab.profile.report import ModelProfile


@dataclass
class ModelEntry:
    """One model at one scale: its weights, profile and scores on every data set."""

    model: str
    scale: int
    weights: str
    profile: ModelProfile
    results: dict[str, DatasetResult] = field(default_factory=dict)


@dataclass(frozen=True)
class Panel:
    label: str
    path: str  # crop PNG, relative to the report folder
    psnr: float | None  # None for HR
    ssim: float | None


@dataclass(frozen=True)
class Comparison:
    dataset: str
    image: str
    scale: int
    crop: tuple[int, int, int]  # (top, left, side) in HR pixels
    overview: str  # the HR image with the crop outlined, relative path
    strip: str  # srlab.inference.compare's full-size comparison strip, relative path
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Plot:
    title: str
    path: str  # relative to the report folder
    kind: str  # "macs", "params" or "per_image"
    scale: int
    dataset: str


@dataclass
class BenchmarkResult:
    models: list[str]
    scales: list[int]
    datasets: list[str]
    entries: list[ModelEntry]
    score_keys: tuple[str, ...]
    meta: dict[str, Any]
    comparisons: list[Comparison] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)

    def entries_at(self, scale: int) -> list[ModelEntry]:
        return [e for e in self.entries if e.scale == scale]

    def entry(self, model: str, scale: int) -> ModelEntry:
        return next(e for e in self.entries if e.model == model and e.scale == scale)
