"""BT.601 conversions against the MATLAB rgb2ycbcr matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srlab.metrics.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb

# MATLAB's rgb2ycbcr, written out independently: ycbcr = (T @ rgb*255... ) for doubles in [0, 1].
MATLAB_T = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
)
MATLAB_OFFSET = np.array([16.0, 128.0, 128.0])


def _pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float64).view(3, 1, 1)


@pytest.mark.parametrize(
    ("rgb", "expected_255"),
    [
        ((1.0, 1.0, 1.0), (235.0, 128.0, 128.0)),
        ((0.0, 0.0, 0.0), (16.0, 128.0, 128.0)),
        ((1.0, 0.0, 0.0), (81.481, 90.203, 240.0)),
        ((0.0, 0.0, 1.0), (40.966, 240.0, 109.786)),
    ],
)
def test_known_values(rgb: tuple[float, float, float], expected_255: tuple[float, ...]) -> None:
    out = rgb_to_ycbcr(_pixel(*rgb)).flatten() * 255.0
    np.testing.assert_allclose(out.numpy(), expected_255, rtol=0, atol=1e-12)


def test_matches_matlab_matrix_on_random_images() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 7, 5, generator=gen, dtype=torch.float64)
    expected = np.einsum("ij,bjhw->bihw", MATLAB_T, x.numpy()) / 255.0
    expected += (MATLAB_OFFSET / 255.0)[None, :, None, None]
    np.testing.assert_allclose(rgb_to_ycbcr(x).numpy(), expected, rtol=0, atol=1e-14)
    # rgb_to_y is the first channel of rgb_to_ycbcr, bit for bit, and keeps a channel axis.
    y = rgb_to_y(x)
    assert y.shape == (2, 1, 7, 5)
    assert torch.equal(y[:, 0], rgb_to_ycbcr(x)[:, 0])


def test_y_range() -> None:
    x = torch.rand(3, 16, 16, dtype=torch.float64)
    y = rgb_to_y(x)
    assert y.min() >= 16 / 255 and y.max() <= 235 / 255


def test_round_trip() -> None:
    x = torch.rand(4, 3, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, rtol=0, atol=1e-12)
    # And the other way, from valid YCbCr values.
    ycc = rgb_to_ycbcr(x)
    torch.testing.assert_close(rgb_to_ycbcr(ycbcr_to_rgb(ycc)), ycc, rtol=0, atol=1e-12)


def test_ycbcr_to_rgb_known_values() -> None:
    white = torch.tensor([235.0, 128.0, 128.0], dtype=torch.float64).view(3, 1, 1) / 255.0
    torch.testing.assert_close(ycbcr_to_rgb(white).flatten(), torch.ones(3, dtype=torch.float64))


def test_grey_single_channel_equals_replicated_rgb() -> None:
    g = torch.rand(1, 8, 8, dtype=torch.float64)
    assert torch.equal(rgb_to_y(g), rgb_to_y(g.expand(3, 8, 8)))
    # R = G = B: the weights sum to 219, the full Y excursion.
    torch.testing.assert_close(rgb_to_y(g), (16.0 + 219.0 * g) / 255.0, rtol=0, atol=1e-15)


def test_float32_is_kept() -> None:
    assert rgb_to_ycbcr(torch.rand(3, 2, 2)).dtype == torch.float32


def test_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_to_ycbcr(torch.rand(2, 4, 4))
    with pytest.raises(TypeError, match="floating tensor in \\[0, 1\\], got torch.uint8"):
        rgb_to_ycbcr(torch.zeros(3, 4, 4, dtype=torch.uint8))
