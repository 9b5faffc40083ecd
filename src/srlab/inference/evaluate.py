"""Evaluating a model on folders of images: registered metrics (``srlab.metrics.registry``) under the
evaluation protocol (``srlab.metrics.protocol``), kept per image and as set means.

A content-adaptive model is evaluated through its adaptive method (``adaptive=``, see
:mod:`srlab.adaptive`) under the method's own protocol: the SR image may cover only part of the LR
image (ClassSR/ARM score the region their patch grid covers), and the HR image is cropped to it, as
their official tests do. The MACs actually spent are then kept per image and as set means next to
the same weights' full-path MACs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from srlab.adaptive.method import AdaptiveMethod, AdaptiveStats
from srlab.data.datasets import PairedFolder, load_pair
from srlab.data.stream import EVAL_BYTES_PER_PIXEL, check_fits_in_memory
from srlab.errors import SrlabError
from srlab.inference.upscale import upscale_tensor
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.protocol import PAPER_PROTOCOL, EvalProtocol
from srlab.metrics.registry import PROTOCOL_METRICS, MetricSet
from srlab.models.registry import spec_of


@dataclass
class ImageScore:
    name: str
    # e.g. {"psnr_y": ..., "ssim_y": ..., "gmsd": ...}: one key per metric, in the order they were asked for
    scores: dict[str, float]
    compute: AdaptiveStats | None = None  # adaptive inference: what ran

    def to_json(self) -> dict:
        data = {"name": self.name, **self.scores}
        if self.compute is not None:
            data.update(macs_spent=self.compute.macs_spent, macs_full=self.compute.macs_full,
                        routes=self.compute.histogram())
        return data


@dataclass(frozen=True)
class ComputeSummary:
    """What an adaptive evaluation spent on a set: MACs as means per image, the routing histogram summed."""

    method: str
    knob_name: str | None
    knob: float | None
    macs_spent: float
    macs_full: float
    unit: str
    routes: dict[str, int]

    @classmethod
    def of(cls, method: AdaptiveMethod, images: Sequence[ImageScore]) -> ComputeSummary:
        calls = [image.compute for image in images]
        routes: dict[str, int] = {}
        for stats in calls:
            for name, count in stats.histogram().items():
                routes[name] = routes.get(name, 0) + count
        return cls(
            method=method.method_name, knob_name=method.knob_name, knob=method.knob,
            macs_spent=sum(s.macs_spent for s in calls) / len(calls), macs_full=sum(s.macs_full for s in calls) / len(calls),
            unit=calls[0].unit, routes=routes,
        )

    @property
    def macs_fraction(self) -> float:
        return self.macs_spent / self.macs_full

    def to_json(self) -> dict:
        return {
            "macs_spent": self.macs_spent, "macs_full": self.macs_full,
            "adaptive": {"method": self.method, "knob_name": self.knob_name, "knob": self.knob,
                         "unit": self.unit, "routes": self.routes},
        }


@dataclass
class DatasetResult:
    dataset: str
    scale: int
    model: str
    # set means, keyed like ImageScore.scores
    scores: dict[str, float]
    images: list[ImageScore] = field(default_factory=list)
    # The x8 geometric self-ensemble ("+" rows of the papers) was used for every image.
    self_ensemble: bool = False
    compute: ComputeSummary | None = None  # adaptive inference: MACs spent and the routing

    @property
    def psnr_y(self) -> float:
        return self.scores["psnr_y"]

    @property
    def ssim_y(self) -> float:
        return self.scores["ssim_y"]

    def to_json(self) -> dict:
        data = {"dataset": self.dataset, "scale": self.scale, "model": self.model, **self.scores}
        data["images"] = [image.to_json() for image in self.images]
        # Recorded only when used, so plain results keep the key set of the files written before it existed.
        if self.self_ensemble:
            data["self_ensemble"] = True
        if self.compute is not None:
            data.update(self.compute.to_json())
        return data


def iter_folder(folder: PairedFolder, scale: int) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, LR, HR) for each image of a folder, decoded one at a time; an HR image too large to
    evaluate in the available memory is refused (from its header) before it is decoded."""
    for pair in folder.pairs:
        check_fits_in_memory(pair.hr, bytes_per_pixel=EVAL_BYTES_PER_PIXEL, task="evaluate it")
        lr, hr = load_pair(pair, scale)
        yield pair.name, lr, hr


def evaluate_images(
    model: nn.Module,
    images: Iterable[tuple[str, torch.Tensor, torch.Tensor]],
    *,
    protocol: EvalProtocol = PAPER_PROTOCOL,
    tile: int | None = None,
    tile_overlap: int | None = None,
    progress: bool = False,
    total: int | None = None,
    self_ensemble: bool = False,
    metrics: MetricSet | Sequence[str] = PROTOCOL_METRICS,
    adaptive: AdaptiveMethod | None = None,
) -> tuple[dict[str, float], list[ImageScore]]:
    """Super-resolve each LR image and score it against its HR image with the registered ``metrics``
    (names, or a :class:`MetricSet` whose weights are loaded); returns (set means, per image).

    ``self_ensemble`` scores the x8 geometric self-ensemble (``srlab.inference.ensemble``) instead;
    ``adaptive`` runs ``model`` through that adaptive method (see the module docstring)."""
    scale = spec_of(model).scale
    if adaptive is not None and (tile is not None or self_ensemble):
        raise SrlabError("adaptive inference routes whole images: drop --tile and --self_ensemble")
    accumulator = ScoreAccumulator(protocol, metrics)
    scores = []
    for name, lr, hr in tqdm(images, total=total, disable=not progress, desc="eval", leave=False):
        compute = None
        if adaptive is None:
            # at a non-integer scale the model renders the HR size (srlab.metrics.protocol)
            size = None if float(scale).is_integer() else tuple(hr.shape[-2:])
            sr = upscale_tensor(
                model, lr, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble, size=size
            ).float()
        else:
            param = next(model.parameters(), None)  # bicubic has none
            device = lr.device if param is None else param.device
            with torch.no_grad():
                sr, compute = adaptive.upscale(lr.unsqueeze(0).to(device), whole_image=False)
            sr = sr[0].float()
            hr = hr[..., : sr.shape[-2], : sr.shape[-1]]  # the region the method's protocol covers
        scores.append(ImageScore(name, accumulator.update(sr, hr.to(sr.device), scale), compute))
    return accumulator.compute(), scores


def evaluate_folder(
    model: nn.Module,
    folder: PairedFolder,
    *,
    protocol: EvalProtocol = PAPER_PROTOCOL,
    tile: int | None = None,
    tile_overlap: int | None = None,
    progress: bool = False,
    self_ensemble: bool = False,
    metrics: MetricSet | Sequence[str] = PROTOCOL_METRICS,
    adaptive: AdaptiveMethod | None = None,
) -> DatasetResult:
    """Score a model on one folder with the registered ``metrics`` (default PSNR and SSIM), per image
    and as set means; with ``adaptive``, through that adaptive method, with the MACs it spent."""
    spec = spec_of(model)
    means, scores = evaluate_images(
        model, iter_folder(folder, spec.scale), protocol=protocol, tile=tile, tile_overlap=tile_overlap,
        progress=progress, total=len(folder.pairs), self_ensemble=self_ensemble, metrics=metrics,
        adaptive=adaptive,
    )
    compute = None if adaptive is None else ComputeSummary.of(adaptive, scores)
    return DatasetResult(folder.name, spec.scale, spec.name, means, scores, self_ensemble=self_ensemble,
                         compute=compute)
