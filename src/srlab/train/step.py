"""One training step, and the registry of step kinds.

A step kind is a function ``step(run, lr_batch, hr_batch, *, config, dist, lr, d_lr) -> (loss, terms)``
registered with :func:`register_step` under the name that the config's ``step`` field selects (with
``data.labels``, also ``labels=``: the batch's image categories, read by ``step: multitask``). A new
kind (a mode whose step is not one forward of an LR/HR pair: ARM's sandwich rule, unsupervised,
diffusion) is one module ``srlab/train/<kind>_step.py`` plus its import line in
:mod:`srlab.train.steps`; it reuses :func:`backward_step` (or :func:`clip_and_step` after several
backward passes), :func:`update_ema` and the objective.

A kind that trains networks beside the model (the unpaired mode's degradation network and its two
discriminators) registers with ``modules=build(config) -> StepModules``: the run builds them once, seeded
by the run's seed, keeps them in ``run.step_modules``, saves and restores them with the run's state, and
gives the parameters of their ``generators`` to the model's optimiser and those of their
``discriminators`` to the discriminators' (``run.d_optimizer``). With ``validation_lr=fn(step_modules,
hr) -> lr`` the run validates the model on LR images that those networks make from the validation HR
images (CAR's resampler, ``step: car``) instead of the folder's LR images.

``supervised`` (the default): the model's forward (under autocast with ``amp``), the weighted objective
(:class:`srlab.losses.WeightedObjective`) on ``LossInputs(sr, hr, lr, scale, uncertainty)``, the
generator's step; then, with a ``gan`` term, the discriminator's step on its own optimiser
(``d_optimizer``), on the same detached ``sr``; under torchrun the discriminator's gradients are
averaged over the ranks (the generator's by the DDP wrapper). Last, the EMA update.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.losses import LossInputs
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step_modules import StepModules, ValidationLr, register_step_modules

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

StepFunction = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
_STEPS: dict[str, StepFunction] = {}


def register_step(
    name: str, *, modules: Callable[[TrainConfig], StepModules] | None = None,
    validation_lr: ValidationLr | None = None,
) -> Callable[[StepFunction], StepFunction]:
    """Register a step kind under ``name`` (the config's ``step``); ``modules`` builds the networks it
    trains beside the model, if any; ``validation_lr(step_modules, hr) -> lr`` makes the validation LR
    images with them (CAR's resampler), if the validation folder's LR images are not the model's input."""

    def decorate(step: StepFunction) -> StepFunction:
        if name in _STEPS:
            raise ValueError(f"training step {name!r} is registered twice")
        _STEPS[name] = step
        if modules is not None:
            register_step_modules(name, modules, validation_lr)
        elif validation_lr is not None:
            raise ValueError(f"training step {name!r}: validation_lr makes LR images with the step's modules")
        return step

    return decorate


def step_names() -> list[str]:
    return sorted(_STEPS)


def train_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float, labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step of the kind ``config.step`` on one batch (see the module docstring); ``labels``, the
    batch's image categories (``data.labels``), go to the kinds that read them (``step: multitask``)."""
    step = _STEPS.get(config.step)
    if step is None:
        raise SrlabError(f"unknown training step {config.step!r}: set step to one of {', '.join(step_names())}")
    extra = {} if labels is None else {"labels": labels}
    return step(run, lr_batch, hr_batch, config=config, dist=dist, lr=lr, d_lr=d_lr, **extra)


@register_step("supervised")
def supervised_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Train on one batch at learning rates ``lr`` (generator) and ``d_lr`` (discriminator); returns
    the objective's value and its terms (with ``discriminator``: the discriminator's loss)."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    loss, terms, inputs = forward_objective(run, lr_batch, hr_batch, config=config)
    backward_step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
    if run.d_optimizer is not None:
        for group in run.d_optimizer.param_groups:
            group["lr"] = d_lr
        d_loss = run.objective.discriminator_loss(inputs)
        run.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        average_gradients(run.d_optimizer, dist)
        run.d_optimizer.step()
        terms = {**terms, "discriminator": d_loss.detach()}
    if run.ema is not None:
        update_ema(run.ema, run.model, config.ema_decay)
    return loss, terms


def forward_objective(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor], LossInputs]:
    """The model's forward on ``lr_batch`` and the objective on it: (loss, terms, the objective's inputs)."""
    with autocast(config, run.device):
        sr, uncertainty, aux = run.net(lr_batch)
    if run.estimator is not None:  # udl stage 2: the frozen stage-1 estimate
        with torch.no_grad(), autocast(config, run.device):
            uncertainty = run.estimator(lr_batch)[1]
    inputs = LossInputs(sr=sr.float(), hr=hr_batch, lr=lr_batch, scale=config.scale,
                        uncertainty=None if uncertainty is None else uncertainty.float(), aux=aux)
    loss, terms = run.objective(inputs)
    if not torch.isfinite(loss):
        raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
    return loss, terms, inputs


def autocast(config: TrainConfig, device: torch.device):
    """The autocast context of ``config.amp`` (none for fp32): what a step's forward runs under."""
    dtype = _AMP_DTYPES.get(config.amp)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def backward_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, scaler: torch.amp.GradScaler | None,
                  grad_clip: float) -> None:
    """Backward and step, through the fp16 gradient scaler when there is one; clip the gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    clip_and_step(optimizer, scaler, grad_clip)


def clip_and_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, grad_clip: float) -> None:
    """Step on the gradients the parameters hold (accumulated by one or several backward passes, scaled
    by ``scaler`` when there is one), their norm clipped to ``grad_clip`` (0: not clipped)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if scaler is None:
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        return
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


def average_gradients(optimizer: torch.optim.Optimizer, dist: Dist) -> None:
    """Average the gradients over the ranks (the discriminator is not DDP-wrapped)."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                tdist.all_reduce(p.grad)
                p.grad.div_(dist.world_size)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters()):
        ema_p.lerp_(p, 1 - decay)
    for ema_b, b in zip(ema.buffers(), model.buffers()):
        ema_b.copy_(b)
