"""Evaluating a model on folders of images: registered metrics (``srlab.metrics.registry``) under the
evaluation protocol (``srlab.metrics.protocol``), kept per image and as set means."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from srlab.data.datasets import PairedFolder, load_pair
from srlab.data.stream import EVAL_BYTES_PER_PIXEL, check_fits_in_memory
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

    def to_json(self) -> dict:
        return {"name": self.name, **self.scores}


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
) -> tuple[dict[str, float], list[ImageScore]]:
    """Super-resolve each LR image and score it against its HR image with the registered ``metrics``
    (names, or a :class:`MetricSet` whose weights are loaded); returns (set means, per image).

    ``self_ensemble`` scores the x8 geometric self-ensemble (``srlab.inference.ensemble``) instead."""
    scale = spec_of(model).scale
    accumulator = ScoreAccumulator(protocol, metrics)
    scores = []
    for name, lr, hr in tqdm(images, total=total, disable=not progress, desc="eval", leave=False):
        sr = upscale_tensor(model, lr, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble).float()
        scores.append(ImageScore(name, accumulator.update(sr, hr.to(sr.device), scale)))
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
) -> DatasetResult:
    """Score a model on one folder with the registered ``metrics`` (default PSNR and SSIM), per image
    and as set means."""
    spec = spec_of(model)
    means, scores = evaluate_images(
        model, iter_folder(folder, spec.scale), protocol=protocol, tile=tile, tile_overlap=tile_overlap,
        progress=progress, total=len(folder.pairs), self_ensemble=self_ensemble, metrics=metrics,
    )
    return DatasetResult(folder.name, spec.scale, spec.name, means, scores, self_ensemble=self_ensemble)
