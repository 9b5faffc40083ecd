"""Half-precision inference (``srlab upscale --half``): float16 on CUDA, bfloat16 on CPU.

Only models whose registry entry says ``half_precision_safe`` are converted: the others have sums or
coordinates that are known (or not verified) to lose too much in 16 bits. On a CPU, bfloat16 is used
because float16 convolutions have no fast CPU kernels; a CPU without bfloat16 units (no AVX-512 BF16
or AMX, as oneDNN reports) would emulate it more slowly than float32, so it is refused rather than
run slower than without the flag.
"""

from __future__ import annotations

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.models.registry import spec_of

__all__ = ["cpu_has_bf16", "half_precision"]


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
        return model.half()
    if not cpu_has_bf16():
        raise SrlabError("--half on CPU runs bfloat16, and this CPU has no bfloat16 units (AVX-512 BF16 or AMX): "
                         "it would be slower than float32, drop --half")
    return model.to(torch.bfloat16)
