"""What changes over a run: its stages, the UDL uncertainty head, and the patch-difficulty curriculum.

Stages
------
``stages: [{epochs: 10, losses: [...], lr: 1e-3}, {epochs: 5, losses: [{name: l2}], lr: 1e-4}]`` runs
the stages in order. The stage of an epoch is a pure function of the epoch (:func:`stage_at`), so a
resumed run lands in the right stage. Each stage builds its objective afresh (seeded, so a resumed run
builds the same one), starts a fresh Adam for the model, and restarts the learning-rate schedule
(warm-up, then the cosine over the stage's epochs, or the step schedule counted from the stage's start)
from its base rate ``lr``. A run without ``stages`` is one stage of ``epochs`` epochs with ``losses``.

UDL (uncertainty-driven loss, two stages)
-----------------------------------------
The ``udl`` loss needs a per-pixel log-variance map ``s`` next to ``sr``. Any model gets one from
:class:`UncertaintyHead`, a small network trained next to it: ``s = head(cat(sr.detach(), up(lr)))``
(conv3x3 - LeakyReLU - conv3x3 - LeakyReLU - conv3x3 to one channel, ``up`` nearest upsampling), so
the SR network itself is unchanged and its saved weights load as usual. In a stage with
``udl`` (``stage: estimate``) the model and the head train together on L_EU; the head sees the
detached ``sr``, so the model learns from the ``exp(-s)``-weighted L1 part alone. A later stage with
``udl`` (``stage: weighted``) freezes a copy of the model and head as they are when that stage
starts (the estimator) and weights the L1 of the model being trained with the estimator's ``s``.
The head and the estimator are saved in ``state.pt``, so both stages resume.

Curriculum over patch difficulty
--------------------------------
:class:`CurriculumSampler` replaces the plain epoch sampler when ``curriculum.measure`` is set. In
epoch ``e`` (0-based) it keeps a fraction ``f(e) = start + (1 - start) * min(1, e / epochs)`` of the
patches: it draws ``ceil(n / f)`` fresh random patches (n: the epoch's usual sample count, so the
number of iterations per epoch never changes), scores each, keeps the n easiest and shuffles them. The
score is ``gradient`` (mean squared finite difference of the HR patch: flat patches are easy) or
``bicubic`` (mean squared error of the bicubic upscaling of the LR patch: what bicubic already gets
right is easy). Everything depends on the seed and the epoch only, so resuming and several processes
work as with the plain sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Sampler

from srlab.data.resize import bicubic_upscale
from srlab.errors import SrlabError
from srlab.train.config import LossTerm, TrainConfig


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    start_epoch: int  # epochs before it
    epochs: int
    terms: tuple[tuple[str, float, dict[str, Any]], ...]
    lr: float

    @property
    def end_epoch(self) -> int:
        return self.start_epoch + self.epochs

    def udl_stage(self) -> str | None:
        """``estimate`` or ``weighted`` when the stage has a udl term, else None."""
        kinds = {params.get("stage", "estimate") for name, _, params in self.terms if name == "udl"}
        if len(kinds) > 1:
            raise SrlabError(f"{self.name}: udl estimate and weighted in one stage: put them in two stages")
        return kinds.pop() if kinds else None


def _terms(losses: list[LossTerm], config: TrainConfig) -> tuple[tuple[str, float, dict[str, Any]], ...]:
    if not losses:
        losses = config.losses
    return tuple((t.name, float(t.weight), dict(t.params)) for t in losses)


def stages(config: TrainConfig) -> list[Stage]:
    """The run's stages (one when ``config.stages`` is empty)."""
    if not config.stages:
        epochs = config.schedule.total_epochs or config.epochs
        return [Stage(0, "stage 1", 0, epochs, _terms([], config), config.optim.lr)]
    result, start = [], 0
    for i, stage in enumerate(config.stages):
        result.append(Stage(i, stage.name or f"stage {i + 1}", start, stage.epochs, _terms(stage.losses, config),
                            stage.lr or config.optim.lr))
        start += stage.epochs
    return result


def stage_at(config: TrainConfig, epoch: int) -> Stage:
    """The stage that trains epoch ``epoch`` (0-based; an epoch past the end: the last stage)."""
    all_stages = stages(config)
    for stage in all_stages:
        if epoch < stage.end_epoch:
            return stage
    return all_stages[-1]


def check_stages(config: TrainConfig) -> None:
    """A weighted udl stage needs an earlier estimate stage (its estimator)."""
    estimated = False
    for stage in stages(config):
        kind = stage.udl_stage()
        if kind == "weighted" and not estimated:
            raise SrlabError(
                f"{stage.name}: udl stage 'weighted' needs an earlier stage with udl stage 'estimate' "
                "(the uncertainty estimator): add one before it"
            )
        estimated = estimated or kind == "estimate"


class UncertaintyHead(nn.Module):
    """``s = head(cat(sr, nearest-upsampled lr))``: a log-variance map (N, 1, H, W) for the udl loss."""

    def __init__(self, *, channels: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(6, channels, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(channels, 1, 3, padding=1),
        )

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        up = F.interpolate(lr, size=sr.shape[-2:], mode="nearest")
        return self.body(torch.cat((sr, up), dim=1))


class TrainNet(nn.Module):
    """The module the training step calls: the model and, in an estimate stage, the uncertainty head.

    ``forward(lr) -> (sr, s, aux)`` with ``s`` None without a head. A model whose training forward
    returns ``(sr, aux)``, ``aux`` a dict of tensors (ClassSR's class probabilities), hands ``aux`` to the
    objectives (``LossInputs.aux``); for the others ``aux`` is empty."""

    def __init__(self, model: nn.Module, head: UncertaintyHead | None = None) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, lr: Tensor, **inputs: Tensor) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        # ``inputs``: what a step kind feeds the model besides the LR batch (step diffusion: the noisy HR
        # image and its noise level), passed through the DDP / compile wrapper like ``lr``.
        out = self.model(lr, **inputs)
        sr, aux = out if isinstance(out, tuple) else (out, {})
        if self.head is None:
            return sr, None, aux
        return sr, self.head(sr.detach().float(), lr.float()), aux


class CurriculumSampler(Sampler[int]):
    """Easiest patches first (see the module docstring); the interface of ``EpochSampler``."""

    def __init__(
        self, dataset: Any, *, seed: int, measure: str, start_fraction: float, epochs: int, scale: int,
        rank: int = 0, world_size: int = 1,
    ) -> None:
        length = len(dataset)
        if length < world_size:
            raise SrlabError(f"{length} training samples cannot be shared by {world_size} processes: raise data.repeat")
        self.dataset, self.length, self.seed, self.measure = dataset, length, seed, measure
        self.start_fraction, self.widen_epochs, self.scale = start_fraction, epochs, scale
        self.rank, self.world_size = rank, world_size
        # Candidate indices of different epochs never overlap: epoch e draws from [e * stride, (e+1) * stride).
        self.stride = math.ceil(length / start_fraction)
        self.epoch, self.start = 0, 0
        self._cache: tuple[int, list[int]] | None = None

    def fraction(self, epoch: int) -> float:
        if self.widen_epochs == 0:
            return 1.0
        return self.start_fraction + (1.0 - self.start_fraction) * min(1.0, epoch / self.widen_epochs)

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        if start % self.world_size:
            raise SrlabError(f"CurriculumSampler: start {start} is not a multiple of world_size {self.world_size}")
        self.epoch, self.start = epoch, start

    def scores(self, indices: list[int]) -> Tensor:
        """Difficulty of the patches ``dataset[i]`` (higher: harder)."""
        values = []
        for begin in range(0, len(indices), 256):
            items = [self.dataset[i] for i in indices[begin:begin + 256]]
            lr = torch.stack([item[0] for item in items])
            hr = torch.stack([item[1] for item in items])
            if self.measure == "gradient":
                dx = (hr[..., :, 1:] - hr[..., :, :-1]).square().mean(dim=(1, 2, 3))
                dy = (hr[..., 1:, :] - hr[..., :-1, :]).square().mean(dim=(1, 2, 3))
                values.append(dx + dy)
            else:
                values.append((bicubic_upscale(lr, self.scale) - hr).square().mean(dim=(1, 2, 3)))
        return torch.cat(values)

    def epoch_indices(self, epoch: int) -> list[int]:
        """The epoch's dataset indices in training order (all ranks)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        count = min(self.stride, math.ceil(self.length / self.fraction(epoch)))
        candidates = [epoch * self.stride + j for j in range(count)]
        # Stable sort (ties keep the candidate order), then the n easiest, shuffled.
        easiest = torch.sort(self.scores(candidates), stable=True).indices[: self.length]
        rng = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        chosen = [candidates[int(i)] for i in easiest[torch.randperm(self.length, generator=rng)]]
        self._cache = (epoch, chosen)
        return chosen

    def __len__(self) -> int:
        return (self.length - self.start) // self.world_size

    def __iter__(self):
        order = self.epoch_indices(self.epoch)[self.start:]
        return iter(order[self.rank::self.world_size][: len(self)])
