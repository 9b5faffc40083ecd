"""``step: car``: CAR's resampler trained jointly with the model (Sun & Chen, TIP 2020; :mod:`srlab.models.car`).

The official repository (sunwj/CAR) publishes inference only. The objective is the paper's as the
MindSpore port of CAR (mindspore models, ``research/cv/CAR``: ``train.py``, ``car_utils/loss.py``), the
only published training code, trains it:

    L = losses(model(LR), HR) + car.tv_weight * TV + car.offset_weight * offsets     (L1, 0.005, 0.001)

where LR is the HR batch downscaled by the resampler (adaptive grid sampling) and rounded to 8 bits with a
straight-through gradient (:func:`srlab.models.car.quantize_8bit`), so that the model's loss reaches the
resampler. The regularisers:

* offsets: per LR pixel, sum over taps t of ``sqrt(dx_t^2 + dy_t^2) * d_t`` (dx, dy the raw tanh
  offsets), ``d_t`` the distance of tap t from (k/2, k/2) divided by k, averaged over batch and pixels:
  taps far from the kernel's centre pay more for moving.
* TV: ``|dy(i, j+1) - dy(i, j)| * w(i, j)`` plus ``|dx(i+1, j) - dx(i, j)| * w(i, j)`` (w the kernel
  weights), summed over taps and pixels and averaged over the batch: neighbouring kernels move alike.

The resampler is a generator of the step (built once, seeded; trained by the model's optimiser; saved in
``state.pt``; written at each validation as ``best.resampler.safetensors`` / ``last.resampler.safetensors``
beside the model's weights). Validation scores the round trip of the official ``run.py``: the model on the
resampler's 8-bit LR image of each HR image cropped to multiples of 8. The data pipeline's bicubic LR
batches are not used; the step runs on one process, in float32; training the same model with ``step:
supervised`` on them is CAR's baseline.
"""

from __future__ import annotations

import torch

from srlab.errors import SrlabError
from srlab.losses import LossInputs
from srlab.models.car import CarResampler, car_downscale, quantize_8bit, resample
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import backward_step, register_step, update_ema
from srlab.train.step_modules import StepModules

RESAMPLER = "resampler"


def offset_loss(offsets_h: torch.Tensor, offsets_v: torch.Tensor) -> torch.Tensor:
    """The offsets term (module docstring)."""
    k = round(offsets_h.shape[1] ** 0.5)
    grid = torch.arange(k, dtype=offsets_h.dtype, device=offsets_h.device)
    distance = torch.sqrt((grid.view(-1, 1) - k / 2) ** 2 + (grid.view(1, -1) - k / 2) ** 2) / k
    b, _, h, w = offsets_h.shape
    squared = offsets_h.square() + offsets_v.square()
    # sqrt's gradient at 0 is 0 * inf = NaN: where an offset is exactly (0, 0) its magnitude (0) gets gradient 0.
    moved = squared > 0
    magnitude = torch.where(moved, torch.where(moved, squared, 1.0).sqrt(), 0.0)
    return (magnitude * distance.reshape(1, k * k, 1, 1)).sum() / (b * h * w)


def tv_loss(offsets_h: torch.Tensor, offsets_v: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """The total-variation term (module docstring)."""
    across = (offsets_v[..., 1:] - offsets_v[..., :-1]).abs() * kernels[..., :-1]
    down = (offsets_h[..., 1:, :] - offsets_h[..., :-1, :]).abs() * kernels[..., :-1, :]
    return (across.sum() + down.sum()) / offsets_h.shape[0]


def build_resampler(config: TrainConfig) -> StepModules:
    resampler = CarResampler(scale=config.scale, channels=config.car.resampler_channels)
    return StepModules(generators={RESAMPLER: resampler}, discriminators={}, exported=(RESAMPLER,))


def resampled_lr(modules: StepModules, hr: torch.Tensor) -> torch.Tensor:
    """The validation LR image: the resampler's 8-bit downscaling of ``hr`` cropped to multiples of 8."""
    return car_downscale(modules.generators[RESAMPLER], hr)


@register_step("car", modules=build_resampler, validation_lr=resampled_lr)
def car_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One joint step of the resampler and the model on an HR batch (module docstring); ``lr_batch`` (the
    pipeline's bicubic LR) is not used."""
    if dist.enabled:  # the resampler is not DDP-wrapped: its gradients would differ between the ranks
        raise SrlabError("step car runs on one process: start it without torchrun")
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    resampled, kernels, offsets_h, offsets_v = resample(run.step_modules.generators[RESAMPLER], hr_batch)
    lr_images = quantize_8bit(resampled)
    loss, terms = run.objective(LossInputs(sr=run.net(lr_images)[0], hr=hr_batch, lr=lr_images, scale=config.scale))
    terms = {**terms, "tv": tv_loss(offsets_h, offsets_v, kernels), "offsets": offset_loss(offsets_h, offsets_v)}
    loss = loss + config.car.tv_weight * terms["tv"] + config.car.offset_weight * terms["offsets"]
    if not torch.isfinite(loss):
        raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
    backward_step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
    if run.ema is not None:
        update_ema(run.ema, run.model, config.ema_decay)
    return loss, {name: value.detach() for name, value in terms.items()}
