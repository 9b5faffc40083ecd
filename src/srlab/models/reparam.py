"""Re-parameterisation: one way to turn any model into its inference ("deploy") form.

Models with training-only branches (ECBSR's edge-oriented blocks, ETDS's dual stream, SPAN's
three-branch convolutions) define a method ``deploy(self) -> nn.Module`` that returns a *new*
module, the plain inference form, computing the same function (to float rounding) and leaving
``self`` untouched. :func:`deploy` applies it to any model: models without training-only branches
come back as they are. The deploy form is what ``srlab upscale``, ``srlab eval`` and export use, and
official checkpoints released in the deploy form load into the same registry name.

The kernel algebra the fusions share lives here too.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from srlab.models.registry import spec_of


def has_deploy_form(model: nn.Module) -> bool:
    return callable(getattr(model, "deploy", None))


def is_deployed(model: nn.Module) -> bool:
    spec = getattr(model, "srlab_spec", None)
    return spec is not None and spec.form == "deploy"


def deploy(model: nn.Module) -> nn.Module:
    """The model's inference form: fused if it has training-only branches, else the model itself."""
    if not has_deploy_form(model):
        return model
    fused = model.deploy()
    fused.train(model.training)
    if getattr(model, "srlab_spec", None) is not None:
        fused.srlab_spec = dataclasses.replace(spec_of(model), form="deploy")
    return fused


def pad_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a (out, in, k, k) kernel to size x size around its centre (a 1x1 becomes a 3x3)."""
    pad = (size - weight.shape[-1]) // 2
    return F.pad(weight, (pad, pad, pad, pad))


def identity_kernel(channels: int, size: int, *, like: torch.Tensor) -> torch.Tensor:
    """The kernel of a size x size convolution that returns its input (a residual connection)."""
    kernel = torch.zeros(channels, channels, size, size, dtype=like.dtype, device=like.device)
    kernel[torch.arange(channels), torch.arange(channels), size // 2, size // 2] = 1.0
    return kernel


def fuse_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the convolution followed by the batch norm in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    factor = bn.weight / std
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    return weight * factor.reshape(-1, 1, 1, 1), bn.bias + (bias - bn.running_mean) * factor


def merge_1x1_then_kxk(
    w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 convolution (w1, b1) followed by a k x k one (w2, b2) as one k x k convolution.

    Exact where the k x k convolution pads the 1x1 output with b1 (not zeros) at the border, as ECBSR's
    sequential blocks do; with zero padding it is exact away from the border only.
    """
    weight = torch.einsum("omhw,mi->oihw", w2, w1[:, :, 0, 0])
    bias = b2 + torch.einsum("omhw,m->o", w2, b1)
    return weight, bias


def conv_from(weight: torch.Tensor, bias: torch.Tensor | None, *, padding: int | None = None) -> nn.Conv2d:
    """An nn.Conv2d holding the given (out, in, k, k) kernel (same padding by default)."""
    out_ch, in_ch, kh, kw = weight.shape
    conv = nn.Conv2d(in_ch, out_ch, (kh, kw), padding=kh // 2 if padding is None else padding, bias=bias is not None)
    conv = conv.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv
