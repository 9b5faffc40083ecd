"""Multiply-accumulate counts of convolution and linear layers, the figure SR papers tabulate.

The papers' convention (IMDN, CARN, RFDN, ...): MACs of the weighted layers for an input whose output is
1280x720 (LR 640x360 at x2, 427x240 at x3, 320x180 at x4); element-wise operations, activations and
attention products are not counted; a transposed convolution is counted per output pixel, as those papers do. The forward pass runs on PyTorch's ``meta`` device, so counting costs
no arithmetic and no memory whatever the model's size.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from srlab.models.registry import spec_of


def _conv_macs(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    kernel = module.kernel_size[0] * module.kernel_size[1]
    return output.numel() * (module.in_channels // module.groups) * kernel


def _transposed_conv_macs(module: nn.ConvTranspose2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    # The papers' convention (CARN, SMSR, IMDN tables: FSRCNN 6.0 / 5.0 / 4.6 G, LapSRN): a transposed
    # convolution costs what a convolution with its kernel costs at every *output* pixel, s^2 times the
    # multiplications actually done (fvcore counts those: 2.87 G for FSRCNN x2).
    kernel = module.kernel_size[0] * module.kernel_size[1]
    return output.numel() * (module.in_channels // module.groups) * kernel


def _linear_macs(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    return output.numel() * module.in_features


_COUNTERS = {nn.Conv2d: _conv_macs, nn.ConvTranspose2d: _transposed_conv_macs, nn.Linear: _linear_macs}


def count_macs(model: nn.Module, lr_size: tuple[int, int]) -> int:
    """MACs of one forward pass of a single RGB image of ``lr_size`` (height, width)."""
    meta_model = copy.deepcopy(model).to("meta")
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _COUNTERS[type(module)](module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in meta_model.modules() if type(m) in _COUNTERS]
    try:
        with torch.no_grad():
            meta_model(torch.empty(1, 3, *lr_size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total


def lr_size_for_720p(scale: int) -> tuple[int, int]:
    """The LR size whose output is 1280x720, as the papers round it (x3: 427x240)."""
    return round(720 / scale), round(1280 / scale)


def macs_720p(model: nn.Module) -> int:
    return count_macs(model, lr_size_for_720p(spec_of(model).scale))
