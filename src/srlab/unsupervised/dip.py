"""Deep Image Prior super-resolution (Ulyanov, Vedaldi and Lempitsky, CVPR 2018 / IJCV 2020).

A randomly initialised hourglass network maps a fixed noise image ``z`` of the HR size to an image
``x``; its weights are fitted so that ``x`` downscaled with a Lanczos2 kernel matches the LR image.
The network's structure is the prior: it fits natural structure long before noise, so the fit is
stopped after a fixed number of iterations. Nothing is learnt from other images.

The settings are those of the official ``super-resolution.ipynb`` (DmitryUlyanov/deep-image-prior):

- the ``skip`` network with 32 input channels, 128 channels down and up and 4 skip channels over 5
  scales, reflection padding, bilinear upsampling, LeakyReLU(0.2), BatchNorm, a sigmoid at the end.
  :func:`skip_network` builds it with the official module tree, so its ``state_dict`` has the official
  key names and shapes and an official state dict loads strictly;
- ``z``: uniform noise in [0, 0.1) (``get_noise``, ``var=1/10``); every iteration the network sees
  ``z + 0.03 n`` with fresh standard normal ``n`` (``reg_noise_std``: 0.03 at x4, 0.05 at x8);
- Adam, learning rate 0.01, over the network's weights only; 2000 iterations at x4, 4000 at x8;
- the loss: the MSE between the LR image and the output downscaled by :class:`LanczosDownsampler`
  (the official ``Downsampler(kernel_type='lanczos2', phase=0.5, preserve_size=True)``);
- the network stays in training mode throughout (BatchNorm normalises with the image's own
  statistics), as the notebook never calls ``eval()``;
- the result is one more forward pass after the last step, on the last iteration's perturbed input:
  the notebook's closure rebinds the global ``net_input``, so its final ``net(net_input)`` sees that
  input, not ``z``. No exponential average of outputs: the SR notebook has none (the denoising one does).

What srlab adds, having only the LR image (the notebook crops an HR image to multiples of 32 and
makes its LR image): the HR canvas is the LR size times the scale, rounded up to a multiple of 32 and
to at least 64 (every one of the five scales then halves exactly, and the deepest 3x3 convolution's
reflection padding has two pixels to reflect); the network renders the whole canvas and its centre
crop of exactly ``scale`` x the LR size is both what the loss downscales and the result. Any LR size
works. At odd scales the Lanczos downsampler pads one HR pixel more at the bottom and right than at the
top and left so that it returns the LR size (the official padding, the same on both sides, returns one
pixel fewer; the notebook supports only x4 and x8, where the two agree).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srlab.errors import SrlabError

SKIP_SCALES = 5
CANVAS_MULTIPLE = 2**SKIP_SCALES
MIN_CANVAS = 2 * CANVAS_MULTIPLE


# --------------------------------------------------------------------------------------- network


class Concat(nn.Module):
    """Runs each child on the input and concatenates the results along ``dim``, centre-cropping them to
    the smallest height and width (the official ``Concat``; children are named "0", "1", ...)."""

    def __init__(self, dim: int, *branches: nn.Module) -> None:
        super().__init__()
        self.dim = dim
        for index, branch in enumerate(branches):
            self.add_module(str(index), branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self._modules.values()]
        height = min(o.shape[2] for o in outputs)
        width = min(o.shape[3] for o in outputs)
        cropped = []
        for o in outputs:
            top, left = (o.shape[2] - height) // 2, (o.shape[3] - width) // 2
            cropped.append(o[:, :, top:top + height, left:left + width])
        return torch.cat(cropped, dim=self.dim)


class _Numbered(nn.Sequential):
    """A Sequential whose children are named "1", "2", ... in the order added (the official code's
    ``Module.add``), which is where the official state dict's key names come from."""

    def append_numbered(self, module: nn.Module) -> _Numbered:
        self.add_module(str(len(self) + 1), module)
        return self


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Reflection padding (present, of width 0, for 1x1 kernels too: it keeps the official indices)
    then the convolution, as the official ``conv(..., pad='reflection')``."""
    return nn.Sequential(nn.ReflectionPad2d((kernel_size - 1) // 2),
                         nn.Conv2d(in_channels, out_channels, kernel_size, stride))


def _conv_bn_act(block: _Numbered, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
    block.append_numbered(_conv(in_channels, out_channels, kernel_size, stride))
    block.append_numbered(nn.BatchNorm2d(out_channels))
    block.append_numbered(nn.LeakyReLU(0.2, inplace=True))


def skip_network(input_channels: int = 32, output_channels: int = 3, *, channels_down: int = 128,
                 channels_up: int = 128, channels_skip: int = 4, scales: int = SKIP_SCALES) -> nn.Sequential:
    """The official ``skip`` hourglass with the SR notebook's settings (``get_net(input_depth, 'skip',
    'reflection', skip_n33d=128, skip_n33u=128, skip_n11=4, num_scales=5, upsample_mode='bilinear')``).

    Each scale i is ``Concat(skip_i, deeper_i)``, BatchNorm, then a 3x3 and a 1x1 conv-BN-LeakyReLU;
    ``skip_i`` is a 1x1 conv-BN-LeakyReLU to ``channels_skip``; ``deeper_i`` a stride-2 3x3 and a 3x3
    conv-BN-LeakyReLU, the next scale (not at the deepest), and a bilinear x2 upsampling. A 1x1
    convolution and a sigmoid make the image."""
    network = _Numbered()
    level, depth = network, input_channels
    for i in range(scales):
        deepest = i == scales - 1
        skip, deeper = _Numbered(), _Numbered()
        level.append_numbered(Concat(1, skip, deeper))
        level.append_numbered(nn.BatchNorm2d(channels_skip + (channels_down if deepest else channels_up)))
        _conv_bn_act(skip, depth, channels_skip, 1)
        _conv_bn_act(deeper, depth, channels_down, 3, stride=2)
        _conv_bn_act(deeper, channels_down, channels_down, 3)
        deeper_main = _Numbered()
        if not deepest:
            deeper.append_numbered(deeper_main)
        deeper.append_numbered(nn.Upsample(scale_factor=2, mode="bilinear"))
        _conv_bn_act(level, channels_skip + (channels_down if deepest else channels_up), channels_up, 3)
        _conv_bn_act(level, channels_up, channels_up, 1)
        level, depth = deeper_main, channels_down
    network.append_numbered(_conv(channels_up, output_channels, 1))
    network.append_numbered(nn.Sigmoid())
    return network


# --------------------------------------------------------------------------------------- downsampler


def lanczos2_kernel(factor: int) -> torch.Tensor:
    """The official ``get_kernel(factor, 'lanczos', phase=0.5, kernel_width=4 * factor + 1, support=2)``:
    a ``4 factor`` x ``4 factor`` separable kernel, ``L(x) = sinc(x) sinc(x / 2)`` sampled at the HR
    pixel centres ``x = (j + 1.5 - (4 factor + 2) / 2) / factor`` (half-pixel phase), normalised to sum
    1. Computed in float64, as the official numpy code, and returned as float64."""
    positions = (np.arange(1, 4 * factor + 1) + 0.5 - (4 * factor + 2) / 2) / factor
    taps = np.sinc(positions) * np.sinc(positions / 2)
    kernel = np.outer(taps, taps)
    return torch.from_numpy(kernel / kernel.sum())


class LanczosDownsampler(nn.Module):
    """Downscale by an integer ``factor`` with :func:`lanczos2_kernel`, after replicate padding so that an
    image of ``factor * h`` rows gives ``h`` (the official ``Downsampler`` with ``preserve_size=True``).

    The official module is a dense ``n x n`` convolution whose off-diagonal weights are zero; this one
    convolves each channel separately with the same kernel (the same sums without the zero terms)."""

    def __init__(self, factor: int, channels: int = 3) -> None:
        super().__init__()
        self.factor = factor
        kernel = lanczos2_kernel(factor).float()
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).clone(), persistent=False)
        total = kernel.shape[0] - factor
        self.padding = (total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = self.padding
        x = F.pad(x, (before, after, before, after), mode="replicate")
        return F.conv2d(x, self.weight, stride=self.factor, groups=x.shape[1])


# --------------------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class DipSettings:
    """One DIP fit. ``None`` takes the notebook's value for the scale: 2000 iterations and
    ``reg_noise_std`` 0.03 up to x4, 4000 and 0.05 from x8 (the notebook has only x4 and x8; scales
    between take x4's, above take x8's). ``max_seconds`` stops the fit early (the result is then the
    output after the last step taken)."""

    scale: int = 4
    iterations: int | None = None
    reg_noise_std: float | None = None
    learning_rate: float = 0.01
    input_channels: int = 32
    input_noise_scale: float = 0.1
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.scale, int) or self.scale < 2:
            raise SrlabError(f"DIP scale must be an integer >= 2, got {self.scale!r}")
        if self.iterations is not None and self.iterations < 1:
            raise SrlabError(f"DIP iterations must be >= 1, got {self.iterations}")

    @property
    def total_iterations(self) -> int:
        if self.iterations is not None:
            return self.iterations
        return 2000 if self.scale < 8 else 4000

    @property
    def noise_std(self) -> float:
        if self.reg_noise_std is not None:
            return self.reg_noise_std
        return 0.03 if self.scale < 8 else 0.05


@dataclass(frozen=True)
class DipStep:
    """What a step saw, for progress reports and studies (the notebook's ``PSNR_HR`` curve)."""

    step: int  # 1 for the first step
    lr_loss: float  # the LR MSE that this step's update descended
    output: torch.Tensor  # (1, 3, scale * h, scale * w): the network's output that gave lr_loss (detached)


@dataclass(frozen=True)
class DipResult:
    sr: torch.Tensor  # (3, scale * h, scale * w) float32 in [0, 1], on the device of the fit
    iterations: int  # the optimiser steps taken (fewer than asked when max_seconds ran out)
    lr_losses: tuple[float, ...]  # the LR MSE at every step, before that step's update
    seconds: float


def canvas_size(height: int, width: int) -> tuple[int, int]:
    """The network's HR canvas for an HR image of ``height`` x ``width``: each side rounded up to a
    multiple of 32, and at least 64 (see the module docstring)."""
    def side(n: int) -> int:
        return max(MIN_CANVAS, math.ceil(n / CANVAS_MULTIPLE) * CANVAS_MULTIPLE)
    return side(height), side(width)


def centre_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


def super_resolve(lr: torch.Tensor, settings: DipSettings = DipSettings(), *,
                  on_step: Callable[[DipStep], None] | None = None) -> DipResult:
    """Fit a fresh skip network to ``lr`` ((3, h, w) float in [0, 1]; its device is the fit's) and return
    its HR image. The same seed, image, settings, device and torch build give the same result; torch's
    global random state is left as it was. ``on_step`` is called after every step."""
    if lr.dim() != 3 or lr.shape[0] != 3:
        raise SrlabError(f"DIP needs an RGB image (3, h, w), got a tensor of shape {tuple(lr.shape)}")
    device = lr.device
    target = lr.unsqueeze(0).float()
    height, width = settings.scale * lr.shape[1], settings.scale * lr.shape[2]
    devices = [device] if device.type == "cuda" else []
    started = time.perf_counter()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(settings.seed)
        network = skip_network(settings.input_channels).to(device).train()  # initialised on the CPU
        downsampler = LanczosDownsampler(settings.scale).to(device)
        noise = torch.rand(1, settings.input_channels, *canvas_size(height, width), device=device)
        noise *= settings.input_noise_scale
        optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
        losses: list[float] = []
        net_input = noise
        for step in range(settings.total_iterations):
            if settings.max_seconds is not None and step and time.perf_counter() - started > settings.max_seconds:
                break
            net_input = noise + settings.noise_std * torch.randn_like(noise)
            optimizer.zero_grad(set_to_none=True)
            output = centre_crop(network(net_input), height, width)
            loss = F.mse_loss(downsampler(output), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(DipStep(step + 1, losses[-1], output.detach()))
        with torch.no_grad():  # still in training mode: BatchNorm uses this pass's statistics
            sr = centre_crop(network(net_input), height, width)[0]
    return DipResult(sr.clamp(0, 1), len(losses), tuple(losses), time.perf_counter() - started)
