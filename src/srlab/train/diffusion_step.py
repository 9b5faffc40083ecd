"""``step: diffusion``: one training step of a denoising diffusion model (SR3, ResShift).

The model makes the step's draw (:meth:`draw_training`, the contract of
:mod:`srlab.models.diffusion_training`) from the global RNG of the batch's device, which the step seeds for
the draw alone from (run seed, iteration, rank) and then restores: every rank draws its own noise for its part
of the global batch (with one seed for all, two ranks would train on the same noise levels and noises), and a
resumed run draws what the uninterrupted one would have. The draw holds the inputs of the training forward
(SR3: the noisy image and its noise level; ResShift: the residual-shifted noisy image and its step), the
target of that forward (SR3: the noise; ResShift: the clean image ``x_0``) and how an output becomes a clean
image. The step calls the training forward ``net(lr, **inputs)`` (through the DDP / compile wrapper, so
gradients are averaged over ranks like any step's) and hands the output and the target to the objective in
``LossInputs.aux`` (``prediction``, ``target``), which the ``diffusion`` loss (:mod:`srlab.losses.diffusion`)
compares (SR3: ``l1`` on the noise; ResShift: ``l2`` on ``x_0``, the official loss). ``LossInputs.sr`` is the
clean image the output implies, in [0, 1] (clamped): other terms may read it, though for SR3 it is meaningless
at high noise levels. Then the optimiser's step and the EMA update (EMA weights are what a diffusion model is
usually sampled with: set ``ema_decay``).

Validation samples the validation LR images with the model's own sampler settings (``steps`` and ``seed``
hyper-parameters: sr3_tiny's are 4 DDIM steps, resshift_tiny's its 4 trained steps, seed 1), so it stays
the same at every validation.
"""

from __future__ import annotations

import torch

from srlab.errors import SrlabError
from srlab.losses import LossInputs
from srlab.models.diffusion_training import is_diffusion_model
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import autocast, backward_step, register_step, update_ema


def draw_seed(seed: int, iteration: int, rank: int) -> int:
    """The seed of one rank's draw at one iteration: distinct for every (seed, iteration, rank < 1009)."""
    return (seed * 1_000_003 + iteration) * 1_009 + rank


@register_step("diffusion")
def diffusion_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One denoising step on one batch (module docstring); ``d_lr`` is unused (no discriminator)."""
    if not is_diffusion_model(run.model):
        name = getattr(getattr(run.model, "srlab_spec", None), "name", type(run.model).__name__)
        raise SrlabError(f"step diffusion trains a diffusion model (sr3, sr3_tiny, resshift, resshift_tiny), "
                         f"not {name}: set model.name")
    if run.d_optimizer is not None:
        raise SrlabError("step diffusion has no discriminator step: drop the gan loss")
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    devices = [hr_batch.device] if hr_batch.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(draw_seed(config.seed, run.iteration, dist.rank))
        draw = run.model.draw_training(lr_batch, hr_batch)
    with autocast(config, run.device):
        predicted = run.net(lr_batch, **draw.inputs)[0].float()
    inputs = LossInputs(sr=draw.clean(predicted), hr=hr_batch, lr=lr_batch, scale=config.scale,
                        aux={"prediction": predicted, "target": draw.target})
    loss, terms = run.objective(inputs)
    if not torch.isfinite(loss):
        raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
    backward_step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
    if run.ema is not None:
        update_ema(run.ema, run.model, config.ema_decay)
    return loss, terms
