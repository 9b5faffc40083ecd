"""Evaluating a model on folders of images with the evaluation protocol (``srlab.metrics.protocol``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from srlab.data.datasets import PairedFolder, load_pair
from srlab.inference.upscale import upscale_tensor
from srlab.metrics.protocol import PAPER_PROTOCOL, EvalProtocol, ScoreAccumulator
from srlab.models.registry import spec_of


@dataclass
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float


@dataclass
class DatasetResult:
    dataset: str
    scale: int
    model: str
    psnr_y: float
    ssim_y: float
    images: list[ImageScore] = field(default_factory=list)
    # The x8 geometric self-ensemble ("+" rows of the papers) was used for every image.
    self_ensemble: bool = False

    def to_json(self) -> dict:
        data = asdict(self)
        # Recorded only when used, so plain results keep the key set of the files written before it existed.
        if not self.self_ensemble:
            del data["self_ensemble"]
        return data


def iter_folder(folder: PairedFolder, scale: int) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, LR, HR) for each image of a folder, decoded one at a time."""
    for pair in folder.pairs:
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
) -> tuple[dict[str, float], list[ImageScore]]:
    """Super-resolve each LR image and score it against its HR image; returns (set means, per image).

    ``self_ensemble`` scores the x8 geometric self-ensemble (``srlab.inference.ensemble``) instead."""
    scale = spec_of(model).scale
    accumulator = ScoreAccumulator(protocol)
    scores = []
    for name, lr, hr in tqdm(images, total=total, disable=not progress, desc="eval", leave=False):
        sr = upscale_tensor(model, lr, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble).float()
        per_image = accumulator.update(sr, hr.to(sr.device), scale)
        scores.append(ImageScore(name, per_image["psnr_y"], per_image["ssim_y"]))
    return accumulator.compute(), scores


def evaluate_folder(
    model: nn.Module,
    folder: PairedFolder,
    *,
    tile: int | None = None,
    tile_overlap: int | None = None,
    progress: bool = False,
    self_ensemble: bool = False,
) -> DatasetResult:
    spec = spec_of(model)
    means, scores = evaluate_images(
        model, iter_folder(folder, spec.scale), tile=tile, tile_overlap=tile_overlap, progress=progress,
        total=len(folder.pairs), self_ensemble=self_ensemble,
    )
    return DatasetResult(
        folder.name, spec.scale, spec.name, means["psnr_y"], means["ssim_y"], scores, self_ensemble=self_ensemble
    )
