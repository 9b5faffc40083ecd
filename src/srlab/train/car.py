"""Joint training of CAR's resampler and upscaler, and the round-trip evaluation (Sun & Chen, TIP 2020).

The official repository (sunwj/CAR) publishes inference only. The objective here is the one of the
paper as the MindSpore port of CAR (mindspore models, ``research/cv/CAR``: ``train.py``,
``car_utils/loss.py``) trains it, the only published training code:

    L = L1(reconstruction, HR) + 0.005 * TV + 0.001 * offsets

* offsets: per LR pixel, sum over taps t of ``sqrt(dx_t^2 + dy_t^2) * d_t`` (dx, dy the raw tanh
  offsets), ``d_t`` the distance of tap t from (k/2, k/2) divided by k, averaged over batch and pixels:
  taps far from the kernel's centre pay more for moving.
* TV: ``|dy(i, j+1) - dy(i, j)| * w(i, j)`` plus ``|dx(i+1, j) - dx(i, j)| * w(i, j)`` (w the kernel
  weights), summed over taps and pixels and averaged over the batch: neighbouring kernels move alike.

The LR image between the two networks is rounded to 8 bits with a straight-through gradient
(:func:`srlab.models.car.quantize_8bit`). ``downscaler: bicubic`` trains the same upscaler on MATLAB
bicubic LR images (quantised) with the L1 term alone: the baseline that CAR is compared with.

Evaluation (official ``run.py``): the HR image cropped to multiples of 8, downscaled (by the pair's
resampler, or bicubic), rounded to 8 bits, upscaled, clamped and rounded; PSNR on Y (BT.601) with
``scale`` pixels shaved from every side.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from srlab.data.io import list_images, read_rgb
from srlab.data.resize import bicubic_downscale
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.metrics.color import rgb_to_y
from srlab.metrics.psnr import psnr
from srlab.models.car import CAR_SCALES, CarPair

TV_WEIGHT = 0.005
OFFSET_WEIGHT = 0.001
DOWNSCALERS = ("car", "bicubic")
# The resampler works at 1/8 of the HR size (official load_img crops to multiples of 8).
SIZE_MULTIPLE = 8


@dataclass
class CarTrainConfig:
    scale: int = 4
    # car: resampler and upscaler trained jointly; bicubic: the upscaler alone on bicubic LR images.
    downscaler: str = "car"
    iterations: int = 1000
    # HR patch side (a multiple of 8).
    patch_size: int = 96
    batch_size: int = 8
    # Adam (eps 1e-6 as the MindSpore port); cosine decay to lr * 0.01.
    lr: float = 2e-4
    resampler_channels: int = 256
    upscaler_channels: int = 256
    upscaler_blocks: int = 32
    seed: int = 0
    log_every: int = 50


def offset_loss(offsets_h: torch.Tensor, offsets_v: torch.Tensor) -> torch.Tensor:
    """The offsets term (module docstring)."""
    k = round(offsets_h.shape[1] ** 0.5)
    grid = torch.arange(k, dtype=offsets_h.dtype, device=offsets_h.device)
    distance = torch.sqrt((grid.view(-1, 1) - k / 2) ** 2 + (grid.view(1, -1) - k / 2) ** 2) / k
    b, _, h, w = offsets_h.shape
    magnitude = torch.sqrt(offsets_h.square() + offsets_v.square())
    return (magnitude * distance.reshape(1, k * k, 1, 1)).sum() / (b * h * w)


def tv_loss(offsets_h: torch.Tensor, offsets_v: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """The total-variation term (module docstring)."""
    across = (offsets_v[..., 1:] - offsets_v[..., :-1]).abs() * kernels[..., :-1]
    down = (offsets_h[..., 1:, :] - offsets_h[..., :-1, :]).abs() * kernels[..., :-1, :]
    return (across.sum() + down.sum()) / offsets_h.shape[0]


def car_objective(
    hr: torch.Tensor, reconstruction: torch.Tensor, kernels: torch.Tensor, offsets_h: torch.Tensor,
    offsets_v: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The joint objective and its terms (module docstring)."""
    terms = {
        "l1": F.l1_loss(reconstruction, hr),
        "tv": TV_WEIGHT * tv_loss(offsets_h, offsets_v, kernels),
        "offsets": OFFSET_WEIGHT * offset_loss(offsets_h, offsets_v),
    }
    return sum(terms.values()), {name: value.item() for name, value in terms.items()}


def build_pair(config: CarTrainConfig) -> CarPair:
    return CarPair(scale=config.scale, resampler_channels=config.resampler_channels,
                   upscaler_channels=config.upscaler_channels, upscaler_blocks=config.upscaler_blocks)


def bicubic_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB bicubic downscaling of [0, 1] images, rounded to 8 bits."""
    return bicubic_downscale(hr, scale, quantize=True)


def training_step(pair: CarPair, hr: torch.Tensor, downscaler: str) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one HR batch: the joint objective, or L1 of the upscaler on bicubic LR."""
    if downscaler == "car":
        reconstruction, _, kernels, offsets_h, offsets_v = pair(hr)
        return car_objective(hr, reconstruction, kernels, offsets_h, offsets_v)
    loss = F.l1_loss(pair.upscaler(bicubic_lr(hr, pair.scale)), hr)
    return loss, {"l1": loss.item()}


def _check(config: CarTrainConfig) -> None:
    if config.scale not in CAR_SCALES:
        raise SrlabError(f"CAR trains at scale {' or '.join(map(str, CAR_SCALES))}, not {config.scale}")
    if config.downscaler not in DOWNSCALERS:
        raise SrlabError(f"downscaler must be one of {', '.join(DOWNSCALERS)}, got {config.downscaler!r}")
    for name in ("batch_size", "resampler_channels", "upscaler_channels", "upscaler_blocks", "log_every"):
        if getattr(config, name) < 1:
            raise SrlabError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.resampler_channels % 4:
        raise SrlabError(f"resampler_channels must be a multiple of 4 (its stages are 1/4 and 1/2 as wide), "
                         f"got {config.resampler_channels}")
    if config.iterations < 0 or not config.lr > 0:
        raise SrlabError(f"iterations must be >= 0 and lr > 0, got {config.iterations} and {config.lr}")
    if config.patch_size % SIZE_MULTIPLE or config.patch_size <= 0:
        raise SrlabError(f"patch_size must be a positive multiple of {SIZE_MULTIPLE}, got {config.patch_size}")


def _load_training_images(train_dir: str | Path, patch_size: int) -> list[torch.Tensor]:
    images = [read_rgb(path) for path in list_images(train_dir)]
    images = [im for im in images if min(im.shape[-2:]) >= patch_size]
    if not images:
        raise SrlabError(f"no training image in {train_dir} is at least {patch_size} px on each side: "
                         f"point train_dir at HR images or lower patch_size")
    return images


def random_patches(images: list[torch.Tensor], config: CarTrainConfig, generator: torch.Generator) -> torch.Tensor:
    """A batch of random HR crops with random flips and transposes."""
    patches = []
    p = config.patch_size
    for _ in range(config.batch_size):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        top = int(torch.randint(image.shape[1] - p + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[2] - p + 1, (1,), generator=generator))
        patch = image[:, top:top + p, left:left + p]
        flips = torch.randint(2, (3,), generator=generator).tolist()
        patch = patch.flip(-1) if flips[0] else patch
        patch = patch.flip(-2) if flips[1] else patch
        patches.append(patch.transpose(-1, -2) if flips[2] else patch)
    return torch.stack(patches)


def train_car(config: CarTrainConfig, train_dir: str | Path, out: str | Path, *, log=print) -> CarPair:
    """Train for ``config.iterations`` and save ``{config, state_dict}`` to ``out``; return the pair."""
    _check(config)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    images = _load_training_images(train_dir, config.patch_size)
    pair = build_pair(config)
    trained = pair if config.downscaler == "car" else pair.upscaler  # the bicubic baseline has no resampler to train
    params = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, eps=1e-6)
    started = time.perf_counter()
    sums: dict[str, float] = {}
    for iteration in range(1, config.iterations + 1):
        lr = config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (iteration - 1) / config.iterations)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, terms = training_step(pair, random_patches(images, config, generator), config.downscaler)
        if not torch.isfinite(loss):
            raise SrlabError(f"the loss became {loss.item()} at iteration {iteration}: lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value
        if iteration % config.log_every == 0 or iteration == config.iterations:
            count = config.log_every if iteration % config.log_every == 0 else iteration % config.log_every
            log(f"iter {iteration} lr {lr:.2e} " + " ".join(f"{k} {v / count:.4g}" for k, v in sums.items())
                + f" time {time.perf_counter() - started:.0f}s")
            sums.clear()
    save_pair(pair, config, out)
    return pair


def save_pair(pair: CarPair, config: CarTrainConfig, out: str | Path) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save({"config": dataclasses.asdict(config), "state_dict": pair.state_dict()}, tmp)


def load_pair(path: str | Path) -> tuple[CarPair, CarTrainConfig]:
    """A pair saved by :func:`train_car` (read with ``weights_only``)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad or unsafe file
        raise SrlabError(f"{path} is not a CAR checkpoint written by train_car ({type(e).__name__}): "
                         "retrain or pick another file") from None
    try:
        config = CarTrainConfig(**saved["config"])
        pair = build_pair(config)
        pair.load_state_dict(saved["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise SrlabError(
            f"{path} is not a CAR checkpoint written by train_car ({e}): retrain or pick another file"
        ) from None
    return pair.eval(), config


@torch.no_grad()
def downscale_image(pair: CarPair, hr: torch.Tensor, downscaler: str) -> torch.Tensor:
    """The 8-bit LR image (3, H/s, W/s) of one HR image (3, H, W), cropped to multiples of 8 first."""
    h, w = (n // SIZE_MULTIPLE * SIZE_MULTIPLE for n in hr.shape[-2:])
    if not (h and w):
        raise SrlabError(f"an image of {hr.shape[-2]}x{hr.shape[-1]} is smaller than {SIZE_MULTIPLE}x{SIZE_MULTIPLE}")
    hr = hr[None, :, :h, :w]
    return (pair.downscale(hr) if downscaler == "car" else bicubic_lr(hr, pair.scale))[0]


@torch.no_grad()
def round_trip(pair: CarPair, hr: torch.Tensor, downscaler: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(8-bit LR, 8-bit reconstruction) of one HR image (3, H, W), cropped to multiples of 8."""
    lr = downscale_image(pair, hr, downscaler)
    return lr, (torch.round(pair.upscaler(lr[None]).clamp(0, 1) * 255) / 255)[0]


@torch.no_grad()
def evaluate_round_trip(pair: CarPair, hr_dir: str | Path, downscaler: str) -> dict[str, float]:
    """PSNR-Y (dB) of every image of ``hr_dir`` after the round trip (module docstring), and ``mean``."""
    pair.eval()
    scores = {}
    for path in list_images(hr_dir):
        hr = read_rgb(path)
        _, sr = round_trip(pair, hr, downscaler)
        hr = hr[:, : sr.shape[1], : sr.shape[2]]
        scores[path.name] = psnr(rgb_to_y(sr.double()), rgb_to_y(hr.double()), crop_border=pair.scale).item()
    if not scores:
        raise SrlabError(f"no images in {hr_dir}: point it at a folder of HR images")
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores


__all__ = ["CarTrainConfig", "car_objective", "downscale_image", "evaluate_round_trip", "load_pair", "offset_loss",
           "round_trip", "train_car", "tv_loss"]
