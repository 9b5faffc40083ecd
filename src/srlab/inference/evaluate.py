"""Evaluating a model on folders of images: registered metrics (``srlab.metrics.registry``) under the
evaluation protocol (``srlab.metrics.protocol``), kept per image and as set means.

A content-adaptive model is evaluated through its adaptive method (``adaptive=``, see
:mod:`srlab.adaptive`) under the method's own protocol: the SR image may cover only part of the LR
image (ClassSR/ARM score the region their patch grid covers), and the HR image is cropped to it, as
their official tests do. The MACs actually spent are then kept per image and as set means next to
the same weights' full-path MACs.

A diffusion model (one with ``set_sampler`` and ``seed``, e.g. sr3) may be scored on ``samples`` K > 1
samples per image, drawn with seeds ``seed .. seed + K - 1``: an image's score is the mean over its
samples, the set's the mean over images (so the mean over every sample), and the spread is kept as the
standard deviation over an image's samples (population, ddof 0) averaged over the images, and as the set
scores of each seed (what ``--seed s`` alone gives) with their minimum and maximum. The mean of the K
samples' images is scored too: it approaches the posterior mean, which L1/L2-trained networks estimate,
so it shows how much of the score the samples' diversity costs. K = 1 is the plain evaluation."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from srlab.adaptive.method import AdaptiveMethod, AdaptiveStats
from srlab.data.datasets import PairedFolder, load_pair
from srlab.data.stream import EVAL_BYTES_PER_PIXEL, check_fits_in_memory
from srlab.errors import SrlabError
from srlab.inference.paths import PathModel
from srlab.inference.upscale import upscale_tensor
from srlab.metrics.accumulator import ScoreAccumulator, mean_scores
from srlab.metrics.protocol import PAPER_PROTOCOL, EvalProtocol
from srlab.metrics.registry import PROTOCOL_METRICS, MetricSet
from srlab.models.registry import spec_of


@dataclass
class ImageScore:
    name: str
    # e.g. {"psnr_y": ..., "ssim_y": ..., "gmsd": ...}: one key per metric, in the order they were asked for
    scores: dict[str, float]
    compute: AdaptiveStats | None = None  # adaptive inference: what ran
    # Several samples of a diffusion model: the scores of each, in seed order (``scores`` is their mean),
    # and those of the mean of their images.
    samples: list[dict[str, float]] | None = None
    mean_image: dict[str, float] | None = None

    def to_json(self) -> dict:
        data = {"name": self.name, **self.scores}
        if self.samples is not None:
            data.update(samples=self.samples, mean_image=self.mean_image)
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
        # a network without MACs (bicubic through the patch engine) spends all of its nothing
        return self.macs_spent / self.macs_full if self.macs_full else 1.0

    def to_json(self) -> dict:
        return {
            "macs_spent": self.macs_spent, "macs_full": self.macs_full,
            "adaptive": {"method": self.method, "knob_name": self.knob_name, "knob": self.knob,
                         "unit": self.unit, "routes": self.routes},
        }


@dataclass(frozen=True)
class SamplingSummary:
    """The spread of a set's scores over the samples of a diffusion model (module docstring)."""

    seeds: list[int]
    std: dict[str, float]  # standard deviation over an image's samples, averaged over the images
    per_seed: list[dict[str, float]]  # the set scores of each seed
    mean_image: dict[str, float]  # the set scores of the mean of each image's samples

    @classmethod
    def of(cls, seeds: Sequence[int], images: Sequence[ImageScore]) -> SamplingSummary:
        std = {key: statistics.fmean(statistics.pstdev(s[key] for s in image.samples) for image in images)
               for key in images[0].scores}
        per_seed = [mean_scores(image.samples[k] for image in images) for k in range(len(seeds))]
        return cls(list(seeds), std, per_seed, mean_scores(image.mean_image for image in images))

    def to_json(self) -> dict:
        return {
            "count": len(self.seeds), "seeds": self.seeds, "std": self.std,
            "min": {key: min(s[key] for s in self.per_seed) for key in self.std},
            "max": {key: max(s[key] for s in self.per_seed) for key in self.std},
            "per_seed": [{"seed": s, **scores} for s, scores in zip(self.seeds, self.per_seed, strict=True)],
            "mean_image": self.mean_image,
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
    sampling: SamplingSummary | None = None  # several samples per image of a diffusion model

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
        if self.sampling is not None:
            data["sampling"] = self.sampling.to_json()
        return data


def iter_folder(folder: PairedFolder, scale: int) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, LR, HR) for each image of a folder, decoded one at a time; an HR image too large to
    evaluate in the available memory is refused (from its header) before it is decoded."""
    for pair in folder.pairs:
        check_fits_in_memory(pair.hr, bytes_per_pixel=EVAL_BYTES_PER_PIXEL, task="evaluate it")
        lr, hr = load_pair(pair, scale)
        yield pair.name, lr, hr


def diffusion_sampler(model: nn.Module) -> nn.Module | None:
    """The module whose ``set_sampler`` seeds ``model``'s samples (a path model's own model), None for
    models without a sampler."""
    inner = model.model if isinstance(model, PathModel) else model
    return inner if hasattr(inner, "set_sampler") else None


def sample_seeds(model: nn.Module, samples: int) -> list[int]:
    """The seeds of ``samples`` samples per image: the model's seed and the next ones (none for one sample
    of any model). More than one sample of a model without a sampler is refused."""
    if samples == 1:
        return []
    sampler = diffusion_sampler(model)
    if samples < 1 or sampler is None:
        what = "must be at least 1" if samples < 1 else (
            f"model {spec_of(model).name!r} is not a diffusion model (e.g. sr3): it gives one output per image, "
            "drop --samples")
        raise SrlabError(f"--samples {samples}: {what}")
    return [sampler.seed + k for k in range(samples)]


def _score_samples(
    name: str, lr: torch.Tensor, hr: torch.Tensor, seeds: Sequence[int], sampler: nn.Module, *,
    upscale: Callable[[torch.Tensor], torch.Tensor], score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
) -> ImageScore:
    """One image scored on one sample per seed and on the mean of their images; the sampler's own seed is
    put back afterwards."""
    own_seed, total, per_sample = sampler.seed, None, []
    try:
        for seed in seeds:
            sampler.set_sampler(seed=seed)
            sr = upscale(lr)
            hr = hr.to(sr.device)
            per_sample.append(score(sr, hr))
            total = sr.double() if total is None else total + sr.double()
    finally:
        sampler.set_sampler(seed=own_seed)
    return ImageScore(name, mean_scores(per_sample), samples=per_sample,
                      mean_image=score((total / len(seeds)).float(), hr))


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
    samples: int = 1,
) -> tuple[dict[str, float], list[ImageScore]]:
    """Super-resolve each LR image and score it against its HR image with the registered ``metrics``
    (names, or a :class:`MetricSet` whose weights are loaded); returns (set means, per image).

    ``self_ensemble`` scores the x8 geometric self-ensemble (``srlab.inference.ensemble``) instead;
    ``adaptive`` runs ``model`` through that adaptive method; ``samples`` > 1 scores that many samples of
    a diffusion model per image (see the module docstring)."""
    scale = spec_of(model).scale
    if adaptive is not None and (tile is not None or self_ensemble):
        raise SrlabError("adaptive inference routes whole images: drop --tile and --self_ensemble")
    seeds = sample_seeds(model, samples)
    if samples > 1 and adaptive is not None:
        raise SrlabError("--samples scores several samples of a diffusion model: drop --adaptive")
    accumulator = ScoreAccumulator(protocol, metrics)
    scores = []
    for name, lr, hr in tqdm(images, total=total, disable=not progress, desc="eval", leave=False):
        compute = None
        if samples > 1:
            scores.append(_score_samples(
                name, lr, hr, seeds, diffusion_sampler(model),
                upscale=lambda x: upscale_tensor(model, x, tile=tile, tile_overlap=tile_overlap,
                                                 self_ensemble=self_ensemble).float(),
                score=lambda sr, hr: accumulator.metrics.score(*protocol.prepare(sr, hr, scale), protocol),
            ))
            continue
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
    if samples > 1:
        return mean_scores(image.scores for image in scores), scores
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
    samples: int = 1,
) -> DatasetResult:
    """Score a model on one folder with the registered ``metrics`` (default PSNR and SSIM), per image
    and as set means; with ``adaptive``, through that adaptive method, with the MACs it spent; with
    ``samples`` > 1, over that many samples of a diffusion model per image, with their spread."""
    spec = spec_of(model)
    means, scores = evaluate_images(
        model, iter_folder(folder, spec.scale), protocol=protocol, tile=tile, tile_overlap=tile_overlap,
        progress=progress, total=len(folder.pairs), self_ensemble=self_ensemble, metrics=metrics,
        adaptive=adaptive, samples=samples,
    )
    compute = None if adaptive is None else ComputeSummary.of(adaptive, scores)
    sampling = SamplingSummary.of(sample_seeds(model, samples), scores) if samples > 1 and scores else None
    return DatasetResult(folder.name, spec.scale, spec.name, means, scores, self_ensemble=self_ensemble,
                         compute=compute, sampling=sampling)
