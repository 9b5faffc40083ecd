"""Float32 rounding against a float64 run (srlab.inference.rounding): the judge of other float32
computations of an ill-conditioned network, for the inference paths and the ONNX export check."""

import torch
from torch import nn

from srlab.inference.rounding import ROUNDING_FACTOR, float32_rounding, float64_reference


class Cancelling(nn.Module):
    """Adds and removes 1e5: float32 keeps ~0.004 of the input's precision, float64 all of it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1e5) - 1e5


def test_another_float32_computation_as_far_from_float64_as_eager_passes_and_a_different_function_fails():
    model, x = Cancelling(), torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    eager = model(x)
    own = (eager.double() - x.double()).abs().max().item()
    assert torch.equal(float64_reference(model, x), x.double()) and 1e-3 < own < 1e-2
    ok, note = float32_rounding(model, x, eager, eager + own)  # twice eager's own error at most
    assert ok and note.endswith(f"(limit {ROUNDING_FACTOR}x)")
    assert not float32_rounding(model, x, eager, eager + 2 * ROUNDING_FACTOR * own)[0]
    assert not float32_rounding(model, x, eager, (eager + own).half())[0]  # reduced precision is judged otherwise
    calls = []
    assert float32_rounding(model, x, eager, eager, reference=lambda: calls.append(1) or x.double())[0] and calls
