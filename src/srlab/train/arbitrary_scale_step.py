"""``step: arbitrary_scale``: LIIF's training rule for arbitrary-scale models (Meta-SR, LIIF, LTE).

Official recipe (yinboc/liif ``datasets/wrappers.py::SRImplicitDownsampled`` with
``train_edsr-baseline-liif.yaml``): each item draws a scale s uniformly in [1, scale_max], crops a
``round(48 * s)`` HR square, resizes it to the 48 x 48 LR input, and keeps ``sample_q = 2304`` of its
HR pixels, at random, as (coordinate, cell, colour) triples; the loss is L1 on those pixels.

Here the run's patches are the source: ``config.scale`` is ``scale_max`` and the LR patch side
(``data.patch_size / scale``, 48 for 192 at x4) is the input size. Each step draws one scale for the
batch (from the seed and the iteration, so a resumed run draws what the uninterrupted one would
have), crops every HR patch at its own random offset, makes the LR input with MATLAB's bicubic
(:func:`srlab.data.resize.imresize`, 8-bit as srlab's LR images are; the official code uses PIL's) and
samples as many HR pixels as the LR patch has. Models with ``query`` (LIIF, LTE) are trained on those
pixels; Meta-RDN renders the whole crop. The objective sees the pixels as a (N, 3, Q, 1) image, so use
pixel-wise losses (the official: ``l1``). Runs in one process (the query bypasses the DDP wrapper).
"""

from __future__ import annotations

import random

import torch

from srlab.data.resize import imresize
from srlab.errors import SrlabError
from srlab.layers.upsamplers.liif import grid_cells, grid_coords
from srlab.losses import LossInputs
from srlab.models.registry import spec_of
from srlab.train.arm_sandwich_step import iteration_rng
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import backward_step, register_step, update_ema


def sample_scale_batch(
    hr_batch: torch.Tensor, *, lr_size: int, scale_max: float, rng: random.Random
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(s, LR inputs (N, 3, lr_size, lr_size), HR crops (N, 3, round(lr_size * s), ...)) for one draw of s."""
    scale = rng.uniform(1, scale_max)
    hr_size = round(lr_size * scale)
    side = hr_batch.shape[-1]
    crops = []
    for hr in hr_batch:
        top, left = rng.randint(0, hr_batch.shape[-2] - hr_size), rng.randint(0, side - hr_size)
        crops.append(hr[:, top:top + hr_size, left:left + hr_size])
    hr_crops = torch.stack(crops)
    lr = imresize(hr_crops.clamp(0, 1), size=(lr_size, lr_size), quantize=True)
    return scale, lr, hr_crops


def sample_pixels(
    hr_crops: torch.Tensor, count: int, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` random pixels of each crop: (coord (N, Q, 2), cell (N, Q, 2), colour (N, 3, Q))."""
    n, _, height, width = hr_crops.shape
    generator = torch.Generator().manual_seed(rng.getrandbits(62))
    picks = torch.stack([torch.randperm(height * width, generator=generator)[:count] for _ in range(n)])
    picks = picks.to(hr_crops.device)
    coord = grid_coords(height, width, device=hr_crops.device).to(hr_crops.dtype)[picks]
    colour = torch.gather(hr_crops.flatten(2), 2, picks[:, None, :].expand(n, hr_crops.shape[1], count))
    return coord, grid_cells(coord, height, width), colour


@register_step("arbitrary_scale")
def arbitrary_scale_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step at a random scale in [1, config.scale] (see the module docstring)."""
    model, spec = run.model, spec_of(run.model)
    if not spec.info.arbitrary_scale:
        raise SrlabError(f"step arbitrary_scale: model {spec.name!r} takes integer scales only: use step: supervised")
    if dist.enabled:
        raise SrlabError("step arbitrary_scale runs in one process: train without torchrun")
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    rng = iteration_rng(config, run)
    lr_size = lr_batch.shape[-1]
    scale, lr_in, hr_crops = sample_scale_batch(hr_batch, lr_size=lr_size, scale_max=config.scale, rng=rng)
    if hasattr(model, "query"):
        coord, cell, target = sample_pixels(hr_crops, lr_size * lr_size, rng)
        sr = model.query(lr_in, coord, cell).permute(0, 2, 1).unsqueeze(-1)
        target = target.unsqueeze(-1)
    else:
        model.scale = scale  # Meta-SR's filters take 1/s; it renders the whole crop
        sr, target = model(lr_in, size=tuple(hr_crops.shape[-2:])), hr_crops
    loss, terms = run.objective(LossInputs(sr=sr.float(), hr=target, lr=lr_in, scale=config.scale))
    if not torch.isfinite(loss):
        raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
    backward_step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
    model.scale = spec.scale  # validation and checkpoints see the run's scale
    if run.ema is not None:
        update_ema(run.ema, model, config.ema_decay)
    return loss, terms
