"""CAR runs of ``srlab train`` read back: their pair of networks, the round-trip evaluation (Sun & Chen, TIP 2020).

A CAR run (``step: car``, :mod:`srlab.train.car_step`) writes the model (the upscaler, e.g. ``car_edsr``)
as ``best.safetensors`` / ``last.safetensors`` and its resampler beside them as
``best.resampler.safetensors`` / ``last.resampler.safetensors``. A run of the same model with ``step:
supervised`` on bicubic LR images is CAR's baseline: it has no resampler and is scored on MATLAB bicubic
LR images.

Evaluation (official ``run.py``): the HR image cropped to multiples of 8, downscaled (by the run's
resampler, or bicubic), rounded to 8 bits, upscaled, clamped and rounded; PSNR on Y (BT.601) with
``scale`` pixels shaved from every side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from srlab.data.io import list_images, read_rgb
from srlab.data.resize import bicubic_downscale
from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_y
from srlab.metrics.psnr import psnr
from srlab.models.car import SIZE_MULTIPLE, CarResampler, car_downscale
from srlab.models.create import create_model
from srlab.train.car_step import RESAMPLER
from srlab.train.checkpoint import BEST_FILE, LAST_FILE, export_file, run_config

WHICH = {"best": BEST_FILE, "last": LAST_FILE}


@dataclass
class CarRun:
    """A run's upscaler and, for a ``step: car`` run, its resampler (None: the bicubic baseline)."""

    upscaler: nn.Module
    resampler: CarResampler | None
    scale: int

    @property
    def downscaler(self) -> str:
        return "bicubic" if self.resampler is None else "car"


def load_car_run(run_dir: str | Path, which: str = "best") -> CarRun:
    """The networks of ``which`` (best or last) validation of the run in ``run_dir``."""
    run_dir = Path(run_dir)
    weights = run_dir / WHICH[which]
    if not weights.is_file():
        raise SrlabError(f"'{run_dir}' has no {WHICH[which]}: give the folder of a run of `srlab train` "
                         "that has validated at least once")
    config = run_config(run_dir)
    upscaler = create_model(checkpoint=weights).eval()
    if config.step == "supervised":
        return CarRun(upscaler, None, config.scale)
    if config.step != "car":
        raise SrlabError(f"'{run_dir}' was trained with step {config.step}: give a run of step car or supervised")
    resampler = CarResampler(scale=config.scale, channels=config.car.resampler_channels)
    path = run_dir / export_file(WHICH[which], RESAMPLER)
    try:
        with safe_open(str(path), framework="pt") as f:
            iteration = (f.metadata() or {}).get("srlab.iteration")
            state = {k: f.get_tensor(k) for k in f.keys()}
        resampler.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as e:
        problem = " ".join(str(e).split())[:200]
        raise SrlabError(f"cannot read the resampler '{path}' ({problem}): resume the run once "
                         "(srlab train --resume --out RUN_DIR) to rewrite it from state.pt") from None
    upscaler_iteration = _recorded_iteration(weights)
    if iteration != upscaler_iteration:  # a kill between the two writes of a checkpoint
        raise SrlabError(f"'{path}' holds iteration {iteration} but '{weights}' iteration {upscaler_iteration}: "
                         "resume the run once (srlab train --resume --out RUN_DIR) to rewrite them from state.pt")
    return CarRun(upscaler, resampler.eval(), config.scale)


def _recorded_iteration(path: Path) -> str | None:
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("srlab.iteration")


@torch.no_grad()
def downscale_image(run: CarRun, hr: torch.Tensor) -> torch.Tensor:
    """The 8-bit LR image (3, H/s, W/s) of one HR image (3, H, W), cropped to multiples of 8 first."""
    if run.resampler is not None:
        return car_downscale(run.resampler, hr)
    h, w = (n // SIZE_MULTIPLE * SIZE_MULTIPLE for n in hr.shape[-2:])
    if not (h and w):
        raise SrlabError(f"an image of {hr.shape[-2]}x{hr.shape[-1]} is smaller than {SIZE_MULTIPLE}x{SIZE_MULTIPLE}")
    return bicubic_downscale(hr[None, :, :h, :w], run.scale, quantize=True)[0]


@torch.no_grad()
def round_trip(run: CarRun, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(8-bit LR, 8-bit reconstruction) of one HR image (3, H, W), cropped to multiples of 8."""
    lr = downscale_image(run, hr)
    return lr, (torch.round(run.upscaler(lr[None]).clamp(0, 1) * 255) / 255)[0]


@torch.no_grad()
def evaluate_round_trip(run: CarRun, hr_dir: str | Path) -> dict[str, float]:
    """PSNR-Y (dB) of every image of ``hr_dir`` after the round trip (module docstring), and ``mean``."""
    scores = {}
    for path in list_images(hr_dir):
        hr = read_rgb(path)
        _, sr = round_trip(run, hr)
        hr = hr[:, : sr.shape[1], : sr.shape[2]]
        scores[path.name] = psnr(rgb_to_y(sr.double()), rgb_to_y(hr.double()), crop_border=run.scale).item()
    if not scores:
        raise SrlabError(f"no images in {hr_dir}: point it at a folder of HR images")
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores


__all__ = ["CarRun", "downscale_image", "evaluate_round_trip", "load_car_run", "round_trip"]
