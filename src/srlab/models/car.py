"""CAR: the content adaptive resampler and its upscaler (Sun & Chen, TIP 2020).

Paper: Sun and Chen, "Learned Image Downscaling for Upscaling using Content Adaptive Resampler", IEEE
TIP 29 (2020). Official code: sunwj/CAR (commit 05b2277, GPL-3.0; srlab's code is written from its
structure, none of it copied), ``modules.py`` (the resampler network ``DSN``), ``EDSR/edsr.py`` (the upscaler) and
``adaptive_gridsampler/`` (the CUDA resampler, here :func:`srlab.layers.adaptive_gridsampler.adaptive_resample`).
Module structure and parameter names are the official ones, so the official ``kgn.pth`` (resampler)
and ``usn.pth`` (upscaler) load strictly into :attr:`CarPair.resampler` and :attr:`CarPair.upscaler`
(:func:`load_official_car` drops the ``module.`` prefix of their DataParallel wrapping).

The pipeline (official ``run.py``): HR in [0, 1] (height and width multiples of 8) -> the resampler
predicts, per LR pixel, a k x k kernel (k = 3s + 1, weights clamped to [1e-6, 1] and normalised to sum
1) and k*k horizontal and vertical offsets (tanh, times the offset unit s) -> the adaptive grid sampler
downscales -> clamp to [0, 1] and round to 8 bits -> the upscaler (an EDSR whose mean shift works on
[0, 1] input, residual scaling 0.1; 32 blocks x 256 channels in the paper) reconstructs the HR image.

``channels`` (the resampler's trunk width, 256 officially; its first stages are channels/4 and
channels/2 wide) is exposed so that CPU-sized runs can narrow the network with the official layout.

The upscaler is the registered model ``car_edsr`` (``srlab train/eval/upscale --model car_edsr``). Its
defaults are CPU-sized (32 channels, 8 blocks: the README's demonstration); the paper's upscaler
(``channels=256, num_blocks=32``, the official ``usn.pth``) has exactly EDSR's tensors, so detection
cannot tell the two apart: pass ``--model car_edsr`` for it. Joint training with the resampler is the
training step ``car`` (:mod:`srlab.train.car_step`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.layers.adaptive_gridsampler import adaptive_resample
from srlab.layers.mean_shift import MeanShift
from srlab.layers.upsamplers.subpixel import ProgressiveUpsampler
from srlab.models.edsr import ResBlock
from srlab.models.registry import ModelInfo, register_model

# The resampler downscales by 8 and upsamples its features back to 1/s: s must divide 8.
CAR_SCALES = (2, 4)
# The resampler works at 1/8 of the HR size (official load_img crops HR images to multiples of 8).
SIZE_MULTIPLE = 8
# modules.py LEAKY_FACTOR
_LEAKY = 0.2


def kernel_size(scale: int) -> int:
    """The official resampling kernel size, 3s + 1 (run.py KSIZE)."""
    return 3 * scale + 1


class _DownsampleBlock(nn.Module):
    """Pixel-unshuffle by ``factor``, then a conv (``downsample.1``)."""

    def __init__(self, factor: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.downsample = nn.Sequential(nn.PixelUnshuffle(factor), nn.Conv2d(in_channels * factor**2, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x)


class _UpsampleBlock(nn.Module):
    """A 1x1 conv to factor^2 x channels, then pixel-shuffle (``upsample.0``)."""

    def __init__(self, factor: int, channels: int) -> None:
        super().__init__()
        self.upsample = nn.Sequential(nn.Conv2d(channels, channels * factor**2, 1), nn.PixelShuffle(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class _ResidualBlock(nn.Module):
    """Reflection-padded conv, LeakyReLU, reflection-padded conv, plus the input (``transform.1``/``.4``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.transform = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.LeakyReLU(_LEAKY),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.transform(x)


def _padded_convs(channels: int, out_channels: list[int]) -> list[nn.Module]:
    """[ReflectionPad2d(1), 3x3 conv] per entry, a ReLU after all but the last."""
    layers: list[nn.Module] = []
    for i, out in enumerate(out_channels):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, out, 3)]
        if i < len(out_channels) - 1:
            layers.append(nn.ReLU())
        channels = out
    return layers


def _trunk(channels: int, scale: int) -> nn.Sequential:
    """Three padded convs + ReLU at 1/8, an upsample to 1/s, a padded conv + ReLU."""
    return nn.Sequential(
        *_padded_convs(channels, [channels] * 3), nn.ReLU(), _UpsampleBlock(8 // scale, channels),
        *_padded_convs(channels, [channels]), nn.ReLU(),
    )


class CarResampler(nn.Module):
    """The resampler network (official ``DSN``): HR (B, 3, H, W) in [0, 1], H and W multiples of 8 ->
    (kernels, offsets_h, offsets_v), each (B, k*k, H/s, W/s)."""

    def __init__(self, *, scale: int, channels: int = 256) -> None:
        super().__init__()
        if scale not in CAR_SCALES:
            raise ValueError(f"CAR downscales by {' or '.join(map(str, CAR_SCALES))}, not {scale}")
        self.scale = scale
        taps = kernel_size(scale) ** 2
        quarter, half = channels // 4, channels // 2
        self.sub_mean = MeanShift(1.0, sign=-1)
        self.ds_1 = nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(3, quarter, 5), nn.LeakyReLU(_LEAKY))
        self.ds_2 = _DownsampleBlock(2, quarter, half)
        self.ds_4 = _DownsampleBlock(2, half, half)
        self.res_4 = nn.Sequential(*(_ResidualBlock(half) for _ in range(5)))
        self.ds_8 = _DownsampleBlock(2, half, channels)
        self.kernels_trunk = _trunk(channels, scale)
        self.kernels_weight = nn.Sequential(*_padded_convs(channels, [channels, taps]))
        self.offsets_trunk = _trunk(channels, scale)
        self.offsets_h_generation = nn.Sequential(*_padded_convs(channels, [channels, taps]), nn.Tanh())
        self.offsets_v_generation = nn.Sequential(*_padded_convs(channels, [channels, taps]), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.ds_4(self.ds_2(self.ds_1(self.sub_mean(x))))
        x = self.ds_8(x + self.res_4(x))
        weights = self.kernels_weight(self.kernels_trunk(x)).clamp(1e-6, 1)
        kernels = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-6)
        offsets = self.offsets_trunk(x)
        return kernels, self.offsets_h_generation(offsets), self.offsets_v_generation(offsets)


class CarUpscaler(nn.Module):
    """CAR's EDSR (official ``EDSR/edsr.py``): srlab's EDSR layout, but the mean shift works on [0, 1]
    input (``MeanShift(1)``) and the residual blocks are scaled by 0.1 at every size."""

    def __init__(self, *, scale: int, channels: int = 256, num_blocks: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = MeanShift(1.0, sign=-1)
        self.add_mean = MeanShift(1.0, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1))
        self.body = nn.Sequential(
            *(ResBlock(channels, res_scale=0.1) for _ in range(num_blocks)), nn.Conv2d(channels, channels, 3, padding=1)
        )
        self.tail = nn.Sequential(ProgressiveUpsampler(channels, scale), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x))
        return self.add_mean(self.tail(self.body(x) + x))


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8 bits (run.py), with a straight-through gradient (identity), so that
    the upscaler's loss reaches the resampler in joint training."""
    rounded = torch.round(x.clamp(0, 1) * 255) / 255
    return x + (rounded - x).detach()


class CarPair(nn.Module):
    """A resampler and its upscaler: ``downscale`` (HR -> 8-bit LR), ``forward`` (HR -> (reconstruction,
    LR, kernels, offsets_h, offsets_v))."""

    def __init__(self, resampler: CarResampler, upscaler: nn.Module) -> None:
        super().__init__()
        self.scale = resampler.scale
        self.resampler, self.upscaler = resampler, upscaler

    def resample(self, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(LR before quantisation, kernels, offsets_h, offsets_v) (see :func:`resample`)."""
        return resample(self.resampler, hr)

    def downscale(self, hr: torch.Tensor) -> torch.Tensor:
        """HR (height and width multiples of 8) -> the 8-bit CAR image, in [0, 1]."""
        return quantize_8bit(self.resample(hr)[0])

    def forward(self, hr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lr, kernels, offsets_h, offsets_v = self.resample(hr)
        lr = quantize_8bit(lr)
        return self.upscaler(lr), lr, kernels, offsets_h, offsets_v


def resample(resampler: CarResampler, hr: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(LR before quantisation, kernels, offsets_h, offsets_v) of HR (B, 3, H, W), H and W multiples of
    8; the offset unit is the scale (run.py)."""
    kernels, offsets_h, offsets_v = resampler(hr)
    lr = adaptive_resample(hr, kernels, offsets_h, offsets_v, offset_unit=resampler.scale, scale=resampler.scale)
    return lr, kernels, offsets_h, offsets_v


@torch.no_grad()
def car_downscale(resampler: CarResampler, hr: torch.Tensor) -> torch.Tensor:
    """The 8-bit CAR image (3, h/s, w/s) of one HR image (3, H, W), first cropped to h x w, the largest
    multiples of 8 (official load_img); on the resampler's device."""
    h, w = (n // SIZE_MULTIPLE * SIZE_MULTIPLE for n in hr.shape[-2:])
    if not (h and w):
        raise SrlabError(f"an image of {hr.shape[-2]}x{hr.shape[-1]} is smaller than {SIZE_MULTIPLE}x{SIZE_MULTIPLE}")
    device = next(resampler.parameters()).device
    return quantize_8bit(resample(resampler, hr[None, :, :h, :w].to(device))[0])[0]


def load_official_car(pair: CarPair, kgn: Mapping[str, torch.Tensor], usn: Mapping[str, torch.Tensor]) -> CarPair:
    """Load the official ``kgn.pth`` (resampler) and ``usn.pth`` (upscaler) state dicts strictly."""
    for module, state in ((pair.resampler, kgn), (pair.upscaler, usn)):
        module.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    return pair


@register_model(ModelInfo(
    paper="Sun and Chen, Learned Image Downscaling for Upscaling using Content Adaptive Resampler (TIP 2020)",
    origin="https://github.com/sunwj/CAR",
    licence="GPL-3.0",
    scales=CAR_SCALES,
    size_multiple=1,
    # head + 2 convs per block + body conv + upsampler convs + tail conv (<= 1 LR px each).
    receptive_radius=lambda a: 2 * a["num_blocks"] + 8,
    reparameterizable=False,
    half_precision_safe=True,
))
def car_edsr(*, scale: int, channels: int = 32, num_blocks: int = 8) -> CarUpscaler:
    """CAR's upscaler (module docstring): CPU-sized by default; the paper's is channels=256, num_blocks=32."""
    return CarUpscaler(scale=scale, channels=channels, num_blocks=num_blocks)
