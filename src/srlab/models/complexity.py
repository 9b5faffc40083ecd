"""What the papers tabulate about a model's cost: its parameters and its multiply-accumulates (MACs).

Parameters (:func:`paper_parameter_count`): the trainable parameters of the inference (deploy) form, less
any the model's paper leaves out (``ModelInfo.uncounted_parameters``).

MACs (:func:`count_macs`, :func:`macs_720p`), the figure SR papers tabulate as "FLOPs" or "Multi-Adds".
The papers' convention (IMDN, CARN, SAFMN, ShuffleMixer, ...), which fvcore reproduces: MACs of an
input whose output is 1280x720 (LR 640x360 at x2, 427x240 at x3, 320x180 at x4), counting
- convolutions: output elements x input channels per group x kernel area;
- matrix products (linear layers, attention): one per multiply-add;
- bilinear / nearest resizing: 4 / 1 per output element, adaptive average pooling 1 per input element
  (fvcore's weights for them);
and not element-wise arithmetic, activations or normalisation; a layer that writes products element-wise
for speed (local attention's multiply-then-sum) declares them with a ``declared_macs(input, output)``
method. One deliberate difference from fvcore: a transposed convolution costs what a convolution with its
kernel costs at every *output* pixel, as CARN's, SMSR's and IMDN's tables count it (FSRCNN 6.0 / 5.0 /
4.6 G; fvcore's per-input count gives 2.87 G at x2).

Operations are counted as they reach ATen (a dispatch mode), so functional calls count like modules do,
and the forward pass runs on PyTorch's ``meta`` device: no arithmetic, no memory, whatever the model's size.

This module sits on the models floor so that every layer above (profiling, inference-time routing,
architecture search budgets) may count with it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from srlab.models.registry import spec_of
from srlab.models.reparam import deploy

aten = torch.ops.aten
T = TypeVar("T")


def _convolution(args, out) -> int:
    weight, transposed, groups = args[1], args[6], args[8]
    kernel = math.prod(weight.shape[2:])
    # a transposed weight is (in, out / groups, k, k); a plain one (out, in / groups, k, k)
    in_per_group = weight.shape[0] // groups if transposed else weight.shape[1]
    return out.numel() * in_per_group * kernel


def _conv(args, out) -> int:
    """``aten.conv{1,2,3}d`` (input, weight, bias, stride, padding, dilation, groups)."""
    weight = args[1]
    return out.numel() * weight.shape[1] * math.prod(weight.shape[2:])


def _conv_transpose(args, out) -> int:
    """``aten.conv_transpose{1,2,3}d`` (input, weight, bias, stride, padding, output_padding, groups, ...)."""
    weight, groups = args[1], args[6] if len(args) > 6 else 1
    return out.numel() * (weight.shape[0] // groups) * math.prod(weight.shape[2:])


def _linear(args, out) -> int:
    return out.numel() * args[1].shape[1]


def _matmul(args, out) -> int:
    return out.numel() * args[0].shape[-1]


def _einsum(args, out) -> int:
    """One multiply-add per combination of all the equation's indices (einsum contracts what is not output)."""
    inputs = args[0].replace(" ", "").split("->")[0].split(",")
    sizes = {}
    for letters, operand in zip(inputs, args[1]):
        sizes.update(zip(letters, operand.shape))
    return math.prod(sizes.values())


def _mm(args, out) -> int:
    a, b = args[-2], args[-1]
    return a.shape[0] * a.shape[1] * b.shape[1]


def _bmm(args, out) -> int:
    a, b = args[-2], args[-1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


# Under torch.inference_mode composite operations (conv2d, linear, matmul) reach the counter whole
# instead of as the convolution / mm they decompose into; both spellings are counted.
_OPS: dict[object, Callable[[tuple, torch.Tensor], int]] = {
    aten.convolution: _convolution,
    aten.conv1d: _conv,
    aten.conv2d: _conv,
    aten.conv3d: _conv,
    aten.conv_transpose1d: _conv_transpose,
    aten.conv_transpose2d: _conv_transpose,
    aten.conv_transpose3d: _conv_transpose,
    aten.linear: _linear,
    aten.matmul: _matmul,
    aten.einsum: _einsum,
    # 1x1 pools are counted by the module hook below (as plain means they reach ATen uncounted)
    aten.adaptive_avg_pool2d: lambda args, out: 0 if tuple(out.shape[-2:]) == (1, 1) else args[0].numel(),
    aten.mm: _mm,
    aten.addmm: _mm,
    aten.bmm: _bmm,
    aten.baddbmm: _bmm,
    aten.upsample_bilinear2d: lambda args, out: 4 * out.numel(),
    aten.upsample_nearest2d: lambda args, out: out.numel(),
    aten._adaptive_avg_pool2d: lambda args, out: args[0].numel(),
}


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        count = _OPS.get(func.overloadpacket)
        if count is not None:
            self.total += count(args, out)
        return out


def count_macs(model: nn.Module, lr_size: tuple[int, int], *, channels: int = 3) -> int:
    """MACs of one inference (eval-mode) forward pass of a single RGB image of ``lr_size`` (height, width);
    ``channels``: of the input, for a part of a network that takes feature maps."""
    # counted on float32 whatever the model's dtype (the input made here is float32)
    meta_model = copy.deepcopy(model).to("meta").float().eval()
    # Outside inference mode every operation reaches the counter in its decomposed ATen form, whether or
    # not the caller runs under torch.inference_mode (the meta tensors are made here).
    with torch.inference_mode(False), torch.no_grad():
        return measure_macs(meta_model, lambda: meta_model(torch.empty(1, channels, *lr_size, device="meta")))[1]


def measure_macs(model: nn.Module, call: Callable[[], T]) -> tuple[T, int]:
    """Run ``call()`` (which runs ``model``) and count the MACs of what actually ran, by the convention
    above: on real tensors a routed or sparse forward counts only the paths it computed."""
    counter = _Counter()
    # A 1x1 adaptive average pool reaches ATen as a plain mean, which is not counted (fvcore counts the
    # pooling layer, not means written out): count those layers where they run.
    pooled = []
    handles = [
        m.register_forward_hook(lambda m, inputs, out: pooled.append(inputs[0].numel()))
        for m in model.modules()
        if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))
    ]
    # A layer whose products are written element-wise (multiply, then sum: far faster than batches of tiny
    # matrix products, and invisible to the counter) declares them: ``declared_macs(input, output)``.
    handles += [
        m.register_forward_hook(lambda m, inputs, out: pooled.append(m.declared_macs(inputs[0], out)))
        for m in model.modules()
        if callable(getattr(m, "declared_macs", None))
    ]
    try:
        with counter:  # under inference mode too: the composite ops it dispatches whole are counted
            result = call()
    finally:
        for handle in handles:
            handle.remove()
    return result, counter.total + sum(pooled)


def lr_size_for_720p(scale: int) -> tuple[int, int]:
    """The LR size whose output is 1280x720, as the papers round it (x3: 427x240)."""
    return round(720 / scale), round(1280 / scale)


def macs_720p(model: nn.Module) -> int:
    return count_macs(model, lr_size_for_720p(spec_of(model).scale))


def paper_parameter_count(model: nn.Module) -> int:
    """Parameters as the papers count them: the trainable parameters of the inference (deploy) form,
    less any the model's paper leaves out (``ModelInfo.uncounted_parameters``)."""
    fused = deploy(model)
    uncounted = spec_of(model).info.uncounted_parameters if getattr(model, "srlab_spec", None) else ()
    return sum(
        p.numel()
        for name, p in fused.named_parameters()
        if p.requires_grad and not any(part in name for part in uncounted)
    )
