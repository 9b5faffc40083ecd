"""Float32 rounding against a float64 run (srlab.inference.rounding): the judge of other float32
computations of an ill-conditioned network, for the inference paths and the ONNX export check."""

import torch
from torch import nn

from srlab.inference.rounding import MAX_OWN_ERROR, ROUNDING_FACTOR, float32_rounding, float64_reference


class Cancelling(nn.Module):
    """Adds and removes ``big``: float32 keeps ~big / 2**24 of the input's precision, float64 all of it."""

    def __init__(self, big: float = 1e4) -> None:
        super().__init__()
        self.big = big

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.big) - self.big


def test_another_float32_computation_as_far_from_float64_as_eager_passes_and_a_different_function_fails():
    model, x = Cancelling(), torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    eager = model(x)
    own = (eager.double() - x.double()).abs().max().item()
    assert torch.equal(float64_reference(model, x), x.double()) and 1e-4 < own < MAX_OWN_ERROR
    ok, note = float32_rounding(model, x, eager, eager + own)  # twice eager's own error at most
    assert ok and note.endswith(f"(limit {ROUNDING_FACTOR}x)")
    assert not float32_rounding(model, x, eager, eager + 2 * ROUNDING_FACTOR * own)[0]
    assert not float32_rounding(model, x, eager, (eager + own).half())[0]  # reduced precision is judged otherwise
    calls = []
    assert float32_rounding(model, x, eager, eager, reference=lambda: calls.append(1) or x.double())[0] and calls


def test_a_network_whose_float32_output_is_lost_judges_no_path():
    """Eager float32 over one 8-bit level from float64 (ill-conditioned: randomly initialised ELAN-light at
    LR 180x320 reads 0.52-0.75): the rule would accept anything, so it accepts nothing."""
    model, x = Cancelling(1e6), torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    eager = model(x)
    ok, note = float32_rounding(model, x, eager, eager)
    assert not ok and "nothing to judge by" in note
