import pytest
import torch
from torch import nn

import srlab
from srlab.models import count_parameters
from srlab.models.rdsr import ResidualDistillationBlock

# Parameter counts of the registered variants (also stated in the README).
EXPECTED_PARAMS = {
    ("rdsr_s", 2): 136_012, ("rdsr_s", 3): 140_347, ("rdsr_s", 4): 146_416,
    ("rdsr", 2): 481_830, ("rdsr", 3): 488_595, ("rdsr", 4): 498_066,
}


@pytest.mark.parametrize(("name", "scale"), sorted(EXPECTED_PARAMS))
def test_parameter_counts(name, scale):
    model = srlab.create_model(name, scale=scale)
    assert count_parameters(model) == EXPECTED_PARAMS[(name, scale)]


def test_parameter_count_matches_the_drawn_architecture():
    """Count the drawing by hand: head, N blocks (3 convs, 1x1 fuse, CA), fusion, ESA, tail."""
    c, n, r, s = 32, 4, 8, 2
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    ca = conv(c, c // r, 1) + conv(c // r, c, 1)
    block = 3 * conv(c, c, 3) + conv(3 * c, c, 1) + ca
    f = c // 4
    esa = conv(c, f, 1) + conv(f, f, 1) + 4 * conv(f, f, 3) + conv(f, c, 1)
    total = conv(3, c, 3) + n * block + conv(n * c, c, 1) + esa + conv(c, 3 * s * s, 3)
    assert count_parameters(srlab.create_model("rdsr_s", scale=s)) == total


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (24, 30), (37, 41)])
def test_output_shape_for_odd_sizes(scale, size):
    model = srlab.create_model("rdsr_s", scale=scale).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(y).all()


def test_backward_reaches_every_parameter():
    model = srlab.create_model("rdsr_s", scale=2)
    model(torch.rand(2, 3, 24, 24)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_forward_does_not_modify_its_input():
    model = srlab.create_model("rdsr_s", scale=2).eval()
    x = torch.rand(1, 3, 12, 12)
    before = x.clone()
    with torch.no_grad():
        model(x)
    assert torch.equal(x, before)


def test_block_is_residual():
    block = ResidualDistillationBlock(8, ca_reduction=4)
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.rand(1, 8, 6, 6)
    # With zero weights the fused branch is zero, and the attention gate cannot revive it.
    assert torch.equal(block(x), x)
