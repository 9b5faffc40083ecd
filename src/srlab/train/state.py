"""The mutable state of a run (:class:`RunState`): what ``state.pt`` stores and what a stage builds.

``RunState.state()`` is a plain dict of tensors, numbers and strings (``torch.load(weights_only=True)``
loads it); :meth:`RunState.restore` puts one back. :func:`enter_stage` builds a stage's objective, UDL
head / estimator, optimisers and the module the step calls; it is seeded by (seed, stage) apart from
the global RNG, so a resumed run builds the same modules.
"""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from srlab.errors import SrlabError
from srlab.losses import WeightedObjective, build_weighted_objective
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.stages import Stage, TrainNet, UncertaintyHead
from srlab.train.step_modules import StepModules, build_step_modules


class RunState:
    """Weights, EMA, optimisers, position in the data, scores and the stage's modules."""

    def __init__(self, model: nn.Module, ema: nn.Module | None, *, rank: int, device: torch.device) -> None:
        self.model, self.ema = model, ema
        self.rank, self.device = rank, device
        self.epoch = 0  # completed epochs
        self.batches_in_epoch = 0  # batches done in the current epoch
        self.iteration = 0
        self.best_psnr = -math.inf
        self.best_epoch = 0
        self.last_scores = {"psnr_y": math.nan, "ssim_y": math.nan}
        self.validated_at = -1  # the iteration of the last validation
        # Built by enter_stage: the stage's index, objective, optimisers, UDL head / estimator, the fp16
        # gradient scaler and the module the step calls (the model, DDP- or compile-wrapped).
        self.stage = 0
        self.objective: WeightedObjective | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.head: UncertaintyHead | None = None
        self.estimator: TrainNet | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.net: nn.Module = model
        # The networks the step kind trains beside the model (srlab.train.step.StepModules), built once.
        self.step_modules: StepModules | None = None

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are validated and saved: the EMA when there is one."""
        return self.model if self.ema is None else self.ema

    def exported(self) -> dict[str, nn.Module]:
        """What each validation writes: the evaluated weights (part ``""``) and the step's exported networks."""
        parts = {"": self.evaluated}
        if self.step_modules is not None:
            parts.update({name: self.step_modules.generators[name] for name in self.step_modules.exported})
        return parts

    def discriminators(self) -> dict[str, nn.Module]:
        if self.objective is None:
            return {}
        return {key: m.discriminator for key, m in self.objective.adversarial_objectives().items()}

    def state(self, rng: list[dict]) -> dict:
        """``rng``: every rank's RNG states (:func:`rng_state`), in rank order."""
        return {
            "rng": rng,
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "iteration": self.iteration,
            "best_psnr": self.best_psnr,
            "best_epoch": self.best_epoch,
            "last_psnr": self.last_scores["psnr_y"],
            "last_ssim": self.last_scores["ssim_y"],
            "validated_at": self.validated_at,
            "stage": self.stage,
            "head": None if self.head is None else self.head.state_dict(),
            "estimator": None if self.estimator is None else self.estimator.state_dict(),
            "discriminators": {key: d.state_dict() for key, d in self.discriminators().items()},
            "d_optimizer": None if self.d_optimizer is None else self.d_optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "step_modules": None if self.step_modules is None else self.step_modules.state_dict(),
        }

    def restore(self, state: dict) -> None:
        """Load ``state`` (checked by :func:`srlab.train.checkpoint.load_state`) into the run."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state["ema"] is None:
                raise SrlabError("the run was trained without EMA: keep ema_decay at 0 to resume it")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, module in (("head", self.head), ("estimator", self.estimator)):
            if module is not None:
                if state.get(name) is None:
                    raise SrlabError(
                        f"state.pt has no UDL {name}: the run's stages changed; resume with its own config"
                    )
                module.load_state_dict(state[name])
        saved = state.get("discriminators") or {}
        for key, discriminator in self.discriminators().items():
            if key not in saved:
                raise SrlabError(f"state.pt has no discriminator for loss {key!r}: the run's losses changed; "
                                 "resume with its own config")
            discriminator.load_state_dict(saved[key])
        if self.step_modules is not None:
            if state.get("step_modules") is None:
                raise SrlabError("state.pt has no networks of the training step: the run's step changed; "
                                 "resume with its own config")
            self.step_modules.load_state_dict(state["step_modules"])
        if self.d_optimizer is not None:
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batches_in_epoch = state["epoch"], state["batches_in_epoch"]
        self.iteration, self.best_psnr, self.best_epoch = state["iteration"], state["best_psnr"], state["best_epoch"]
        self.last_scores = {"psnr_y": state["last_psnr"], "ssim_y": state["last_ssim"]}
        self.validated_at = state["validated_at"]
        if state.get("rng") is not None:  # absent in runs saved before RNG states were
            # A run resumed on another number of processes reuses the saved states cyclically.
            set_rng_state(state["rng"][self.rank % len(state["rng"])], self.device)


def enter_stage(run: RunState, stage: Stage, config: TrainConfig, dist: Dist, *, restoring: bool) -> None:
    """Build the stage's objective, UDL head / estimator, optimisers and the module to call, in ``run``."""
    device = run.device
    udl = stage.udl_stage()
    if udl == "weighted":
        # The estimator: the model and head as they are when the weighted stage starts, frozen.
        if run.head is None and not restoring:
            raise SrlabError(f"{stage.name}: no uncertainty head to freeze: train an udl estimate stage first")
        head = run.head if run.head is not None else UncertaintyHead(channels=config.udl_head_channels)
        run.estimator = TrainNet(copy.deepcopy(run.model), copy.deepcopy(head).to(device)).requires_grad_(False).eval()
    else:
        run.estimator = None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if run.step_modules is None:  # built once per run, kept across stages
            torch.manual_seed(config.seed * 1009 + 3)
            modules = build_step_modules(config)
            run.step_modules = None if modules is None else modules.to(device)
        torch.manual_seed(config.seed * 1009 + 17 * (stage.index + 1))
        run.objective = build_weighted_objective(stage.terms).to(device)
        run.head = UncertaintyHead(channels=config.udl_head_channels).to(device) if udl == "estimate" else None
    if run.objective.needs_uncertainty and udl is None:
        raise SrlabError(f"{stage.name}: a loss needs the uncertainty map, which only the udl loss provides")
    # Not those of model.freeze (parameters a model itself freezes stay listed, as state.pt files hold them).
    frozen = tuple(config.model.freeze)
    params = [p for name, p in run.model.named_parameters() if not name.startswith(frozen)]
    params += [] if run.head is None else list(run.head.parameters())
    d_params = [p for d in run.discriminators().values() for p in d.parameters()]
    if run.step_modules is not None:
        params += list(run.step_modules.generators.parameters())
        d_params += list(run.step_modules.discriminators.parameters())
    if not params:
        raise SrlabError("model.freeze freezes every parameter: leave at least one module to train")
    run.optimizer = torch.optim.Adam(
        params, lr=stage.lr, betas=config.optim.betas, weight_decay=config.optim.weight_decay
    )
    run.d_optimizer = None
    if d_params:
        run.d_optimizer = torch.optim.Adam(
            d_params, lr=config.d_optim.lr, betas=config.d_optim.betas, weight_decay=config.d_optim.weight_decay,
        )
    run.scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    run.stage = stage.index
    # The forward/backward pass goes through the DDP wrapper (it averages the gradients over the
    # ranks); `model` itself is what is saved, validated and EMA-averaged. Every rank steps the same
    # optimiser on the same averaged gradients, so the weights and the EMA stay equal on all ranks.
    net: nn.Module = TrainNet(run.model, run.head)
    if dist.enabled:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    run.net = net


def freeze(model: nn.Module, prefixes: list[str]) -> None:
    """Stop the gradient of the parameters whose names start with one of ``prefixes`` (model.freeze)."""
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in names):
            tops = sorted({name.split(".", 1)[0] + "." for name in names})
            raise SrlabError(f"model.freeze: {prefix!r} starts no parameter name of the model: use prefixes of its "
                             f"names, e.g. its top-level modules {', '.join(tops)}")
    for name, parameter in model.named_parameters():
        if name.startswith(tuple(prefixes)):
            parameter.requires_grad_(False)


def rng_state(device: torch.device) -> dict:
    """This process's RNG states (torch, CUDA, NumPy, Python) as tensors and numbers: ``weights_only``-loadable."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].cpu().numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss_next"]))
