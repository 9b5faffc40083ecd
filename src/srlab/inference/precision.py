"""Half-precision inference (``srlab upscale --half``): float16 on CUDA, bfloat16 on CPU.

Only models whose registry entry says ``half_precision_safe`` are converted: the others have sums or
coordinates that are known (or not verified) to lose too much in 16 bits. On a CPU, bfloat16 is used
because float16 convolutions have no fast CPU kernels; a CPU without bfloat16 units (no AVX-512 BF16
or AMX, as oneDNN reports) would emulate it more slowly than float32, so it is refused rather than
run slower than without the flag.

A model computes in 16 bits everywhere except in the modules its ``ModelInfo.float32_modules`` names
(:func:`to_reduced_precision`): SPAN keeps its output convolution in float32.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import partial

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.models.registry import spec_of

__all__ = ["cpu_has_bf16", "float32_module_names", "half_precision", "to_reduced_precision"]


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic units that oneDNN uses (AVX-512 BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def half_precision(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in float16 (CUDA) or bfloat16 (CPU); SrlabError if it is not half-precision safe or
    the CPU has no bfloat16 units. Inputs are cast to the model's dtype by ``upscale_tensor``."""
    spec = spec_of(model)
    if not spec.info.half_precision_safe:
        raise SrlabError(f"--half: model '{spec.name}' is not verified to be accurate in half precision: drop --half")
    if device.type == "cuda":
        return to_reduced_precision(model, torch.float16)
    if not cpu_has_bf16():
        raise SrlabError("--half on CPU runs bfloat16, and this CPU has no bfloat16 units (AVX-512 BF16 or AMX): "
                         "it would be slower than float32, drop --half")
    return to_reduced_precision(model, torch.bfloat16)


def float32_module_names(model: nn.Module) -> list[str]:
    """The modules of ``model`` that its ``ModelInfo.float32_modules`` patterns name."""
    patterns = spec_of(model).info.float32_modules
    return [name for name, _ in model.named_modules() if name and any(fnmatchcase(name, p) for p in patterns)]


def to_reduced_precision(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``model``, converted in place, computing in ``dtype`` (bfloat16 or float16) except in the modules
    that :func:`float32_module_names` lists: those keep float32 parameters and cast their inputs to
    float32; their float32 outputs flow on (PyTorch's type promotion keeps sums with them in float32)
    until a module with ``dtype`` parameters casts its inputs to ``dtype``."""
    model.to(dtype)
    kept = float32_module_names(model)
    if not kept:
        return model
    for name in kept:
        model.get_submodule(name).float().register_forward_pre_hook(partial(_cast_inputs, dtype=torch.float32))
    for name, module in model.named_modules():
        inside_kept = any(name == k or name.startswith(k + ".") for k in kept)
        if not inside_kept and next(module.parameters(recurse=False), None) is not None:
            module.register_forward_pre_hook(partial(_cast_inputs, dtype=dtype))
    return model


def _cast_inputs(module: nn.Module, args: tuple, *, dtype: torch.dtype) -> tuple:
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
