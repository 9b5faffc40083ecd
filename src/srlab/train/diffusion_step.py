"""``step: diffusion``: one step of a denoising diffusion model's noise-prediction training (SR3).

The model (:class:`srlab.models.sr3.SR3`) draws a noise level and a noise per HR image from the global RNG
of the batch's device (:meth:`SR3.draw_training_noise`), which the run saves with its state, so a resumed
run draws the same ones; the step calls the model's training forward ``net(lr, noisy=..., noise_level=...)``
(through the DDP / compile wrapper, so gradients are averaged over ranks like any step's) and hands the
predicted and the true noise to the objective in ``LossInputs.aux`` (``predicted_noise``, ``noise``), which
the ``diffusion`` loss (:mod:`srlab.losses.diffusion`) compares. ``LossInputs.sr`` is the clean image the
prediction implies, ``(noisy - sqrt(1 - g^2) * eps) / g`` in [0, 1] (clamped): other terms may read it,
though it is meaningless at high noise levels. Then the optimiser's step and the EMA update (EMA weights
are what a diffusion model is usually sampled with: set ``ema_decay``).

Validation samples the validation LR images with the model's own sampler settings (``steps`` and ``seed``
hyper-parameters: sr3_tiny's are 4 DDIM steps, seed 1), so it stays cheap and the same at every validation.
"""

from __future__ import annotations

import torch

from srlab.errors import SrlabError
from srlab.losses import LossInputs
from srlab.models.sr3 import SR3
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import autocast, backward_step, register_step, update_ema


@register_step("diffusion")
def diffusion_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One noise-prediction step on one batch (module docstring); ``d_lr`` is unused (no discriminator)."""
    if not isinstance(run.model, SR3):
        raise SrlabError(f"step diffusion trains a diffusion model (sr3, sr3_tiny), not {type(run.model).__name__}: set model.name")
    if run.d_optimizer is not None:
        raise SrlabError("step diffusion has no discriminator step: drop the gan loss")
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    noisy, level, noise = run.model.draw_training_noise(hr_batch)
    with autocast(config, run.device):
        predicted = run.net(lr_batch, noisy=noisy, noise_level=level)[0].float()
    g = level.view(-1, 1, 1, 1)
    clean = (((noisy - (1 - g.square()).sqrt() * predicted) / g + 1) / 2).clamp(0, 1)
    inputs = LossInputs(sr=clean, hr=hr_batch, lr=lr_batch, scale=config.scale,
                        aux={"predicted_noise": predicted, "noise": noise})
    loss, terms = run.objective(inputs)
    if not torch.isfinite(loss):
        raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
    backward_step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
    if run.ema is not None:
        update_ema(run.ema, run.model, config.ema_decay)
    return loss, terms
