import math

import pytest
import torch

from srlab.layers.emha import EMHA


def naive_emha(layer: EMHA, x: torch.Tensor) -> torch.Tensor:
    """Token-by-token reference: reduce, then for every head and every segment of N // splits
    consecutive tokens (the last one holding the remainder) plain softmax attention, then expand."""
    reduced = x @ layer.reduce.weight.T
    b, n, c = reduced.shape
    heads = layer.num_heads
    d = c // heads
    qkv = reduced @ layer.qkv.weight.T  # (B, N, 3c): q | k | v, each split into heads
    q, k, v = qkv[..., :c], qkv[..., c : 2 * c], qkv[..., 2 * c :]
    seg = max(n // layer.num_splits, 1)
    out = torch.zeros_like(reduced)
    temperature = 1 / math.sqrt(2 * c // heads)  # (dim // heads) ** -0.5 with dim = 2c, as official
    for bi in range(b):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            for start in range(0, n, seg):
                rows = slice(start, min(start + seg, n))
                scores = q[bi, rows, cols] @ k[bi, rows, cols].T * temperature
                weights = torch.exp(scores - scores.max(dim=1, keepdim=True).values)
                weights = weights / weights.sum(dim=1, keepdim=True)
                out[bi, rows, cols] = weights @ v[bi, rows, cols]
    return out @ layer.proj.weight.T + layer.proj.bias


@pytest.mark.parametrize("n", [16, 23, 4, 3])
def test_emha_equals_naive_per_segment_attention(n):
    torch.manual_seed(n)
    layer = EMHA(32, num_heads=4).double()
    x = torch.randn(2, n, 32, dtype=torch.float64)
    torch.testing.assert_close(layer(x), naive_emha(layer, x), atol=1e-10, rtol=1e-10)


def test_emha_attends_only_within_segments():
    torch.manual_seed(0)
    layer = EMHA(32, num_heads=4)
    x = torch.randn(1, 16, 32)
    y = layer(x)
    x2 = x.clone()
    x2[:, 12:] += torch.randn(1, 4, 32)  # change the last segment only
    y2 = layer(x2)
    torch.testing.assert_close(y2[:, :12], y[:, :12])
    assert not torch.allclose(y2[:, 12:], y[:, 12:])


def test_emha_parameter_names_and_shapes_follow_the_official_effattention():
    layer = EMHA(288, num_heads=8)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {
        "reduce.weight": (144, 288),
        "qkv.weight": (432, 144),
        "proj.weight": (288, 144),
        "proj.bias": (288,),
    }
    assert layer.scale == pytest.approx(36**-0.5)


def test_emha_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible by num_heads, got dim=30, num_heads=4"):
        EMHA(30, num_heads=4)
