"""Whether two float32 computations of one network differ only by float32 rounding.

A path (compiled, channels_last, onnxruntime) sums in other orders than the eager forward. In a
well-conditioned network that moves the output by under 1e-4; in an ill-conditioned one (randomly
initialised ELAN, whose unscaled attention saturates on 255-scaled features, or IPT) by far more, and the
eager float32 output is itself that far from the exact result. The judge of both is then a float64 run
of the same network: another float32 computation of the same function is about as far from it as eager
float32 is; a different function (a mistranslated graph, a layout bug) is orders of magnitude further
(SAFMN's dynamo graph with a traced pooling window: 0.56).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

# How much further from float64 than eager float32 another float32 computation may be: the ratio reached 4
# for randomly initialised IPT and ELAN on an Intel Xeon, 6.3 for ELAN-light's ONNX graph on an AMD Zen 4
# (onnxruntime's kernels sum in other orders there).
ROUNDING_FACTOR = 8
# Beyond one 8-bit level from float64, eager float32 has lost the output itself (randomly initialised ELAN-light
# at LR 180x320: 0.52-0.75) and no path can be judged by it: then only the 1e-4 rule holds.
MAX_OWN_ERROR = 1 / 255


def float64_reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model``'s output on ``x`` computed in float64 (on a copy), on the CPU."""
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        return exact(x.double()).cpu()


def float32_rounding(
    model: nn.Module, x: torch.Tensor, eager: torch.Tensor, other: torch.Tensor,
    reference: Callable[[], torch.Tensor] | None = None,
) -> tuple[bool, str]:
    """Whether ``other`` (another float32 computation of ``model`` on ``x``) is no further from the float64
    result than :data:`ROUNDING_FACTOR` times ``eager`` (the float32 eager output), while that is itself within
    :data:`MAX_OWN_ERROR` of it, and the figures.
    ``reference``: the float64 output, if the caller has it (it costs a float64 forward)."""
    if other.dtype != torch.float32 or any(p.dtype != torch.float32 for p in model.parameters()):
        return False, "not float32"
    exact = reference() if reference is not None else float64_reference(model, x)
    own = (eager.double().cpu() - exact).abs().max().item()
    off = (other.double().cpu() - exact).abs().max().item()
    if own > MAX_OWN_ERROR:
        return False, f"eager float32 is {own:.1e} from float64 itself (over {MAX_OWN_ERROR:.1e}): nothing to judge by"
    return off <= ROUNDING_FACTOR * own, f"{off:.1e} from float64 against eager's {own:.1e} (limit {ROUNDING_FACTOR}x)"
