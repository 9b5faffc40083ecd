"""PSNR and SSIM as pure functions, checked against independent implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srlab.metrics.color import rgb_to_y
from srlab.metrics.psnr import psnr
from srlab.metrics.ssim import gaussian_window_1d, ssim

skimage_data = pytest.importorskip("skimage.data")
skimage_metrics = pytest.importorskip("skimage.metrics")


def _y255(rgb_uint8: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) uint8 photo -> its BT.601 Y channel, (1, H, W) float64 in 0..255."""
    x = torch.from_numpy(np.ascontiguousarray(rgb_uint8)).permute(2, 0, 1).to(torch.float64) / 255.0
    return rgb_to_y(x) * 255.0


@pytest.fixture(scope="module")
def astronaut_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Astronaut (Y, 0..255, a 256x256 crop for speed) and a blurred, noisy copy of it."""
    ref = _y255(skimage_data.astronaut())[:, 100:356, 150:406]
    blurred = F.avg_pool2d(ref[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return ref, (blurred + 4.0 * noise).clamp(0, 255)


# ---- PSNR ----------------------------------------------------------------------------------------


def test_psnr_matches_numpy_formula(astronaut_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ref, deg = astronaut_pair
    a, b = ref.numpy(), deg.numpy()
    expected = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
    assert float(psnr(deg, ref, data_range=255.0)) == pytest.approx(expected, abs=1e-10)
    # With a crop: the same formula on the inner region.
    c = 4
    expected_c = 10 * np.log10(255.0**2 / np.mean((a[:, c:-c, c:-c] - b[:, c:-c, c:-c]) ** 2))
    assert float(psnr(deg, ref, data_range=255.0, crop_border=c)) == pytest.approx(expected_c, abs=1e-10)


def test_psnr_per_batch_item_and_all_channels() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 10, 12, generator=gen, dtype=torch.float64)
    y = torch.rand(4, 3, 10, 12, generator=gen, dtype=torch.float64)
    out = psnr(x, y)
    assert out.shape == (4,)
    for i in range(4):
        mse = ((x[i] - y[i]) ** 2).mean()  # over channels and pixels together
        assert float(out[i]) == pytest.approx(float(-10 * torch.log10(mse)), abs=1e-12)
        assert float(psnr(x[i], y[i])) == pytest.approx(float(out[i]), abs=1e-12)
    assert psnr(x[0], y[0]).dim() == 0


def test_psnr_identical_is_inf() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert torch.isinf(psnr(x, x)).all()


def test_psnr_known_value() -> None:
    # A uniform error of 1 level in 255: 20 log10(255).
    x = torch.zeros(1, 4, 4, dtype=torch.float64)
    assert float(psnr(x, x + 1.0, data_range=255.0)) == pytest.approx(20 * math.log10(255.0), abs=1e-12)


def test_psnr_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.rand(1, 4, 4), torch.rand(1, 4, 5))


# ---- SSIM ----------------------------------------------------------------------------------------


def test_gaussian_window_is_fspecial() -> None:
    # fspecial('gaussian', 11, 1.5): exp(-(x^2 + y^2) / (2 sigma^2)), normalised to sum 1.
    r = np.arange(-5, 6, dtype=np.float64)
    w2 = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w2 /= w2.sum()
    g = gaussian_window_1d(11, 1.5, dtype=torch.float64, device=torch.device("cpu")).numpy()
    np.testing.assert_allclose(np.outer(g, g), w2, rtol=0, atol=1e-17)


def test_ssim_matches_skimage(astronaut_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ref, deg = astronaut_pair
    ours = float(ssim(deg, ref, data_range=255.0))
    # skimage filters with reflect padding and then drops (win_size - 1) // 2 = 5 pixels per side of
    # the map: exactly the 'valid' region of the unpadded image, so the two agree on the full image.
    theirs = skimage_metrics.structural_similarity(
        ref[0].numpy(), deg[0].numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255,
    )
    assert 0.3 < ours < 0.95  # a genuinely degraded image, not a trivial case
    assert ours == pytest.approx(theirs, abs=1e-10)
    # With a shaved border, skimage sees the same cropped region.
    c = 3
    theirs_c = skimage_metrics.structural_similarity(
        ref[0, c:-c, c:-c].numpy(), deg[0, c:-c, c:-c].numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255,
    )
    assert float(ssim(deg, ref, data_range=255.0, crop_border=c)) == pytest.approx(theirs_c, abs=1e-10)


def test_ssim_matches_numpy_closed_form() -> None:
    """A direct, unvectorised 'valid' SSIM at a few pixels of the map."""
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(1, 20, 23, generator=gen, dtype=torch.float64)
    y = (x + 0.1 * torch.rand(1, 20, 23, generator=gen, dtype=torch.float64)).clamp(0, 1)
    r = np.arange(-5, 6, dtype=np.float64)
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 4.5)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    a, b = x[0].numpy(), y[0].numpy()
    for i in range(20 - 10):
        for j in range(23 - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * pa * pa).sum() - ma**2, (w * pb * pb).sum() - mb**2
            cov = (w * pa * pb).sum() - ma * mb
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert float(ssim(x, y)) == pytest.approx(float(np.mean(vals)), abs=1e-12)


def test_ssim_identical_is_one() -> None:
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)


def test_ssim_symmetric_batched_and_multichannel() -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 16, 18, generator=gen, dtype=torch.float64)
    y = torch.rand(2, 3, 16, 18, generator=gen, dtype=torch.float64)
    out = ssim(x, y)
    assert out.shape == (2,)
    torch.testing.assert_close(out, ssim(y, x), rtol=0, atol=1e-14)
    per_channel = torch.stack([ssim(x[:, c : c + 1], y[:, c : c + 1]) for c in range(3)]).mean(0)
    torch.testing.assert_close(out, per_channel, rtol=0, atol=1e-14)
    assert float(ssim(x[1], y[1])) == pytest.approx(float(out[1]), abs=1e-14)


def test_ssim_exponents_reduce_to_closed_form(astronaut_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ref, deg = astronaut_pair
    closed = float(ssim(deg, ref, data_range=255.0))
    # A hair away from 1 forces the l * c * s path; with C3 = C2 / 2 it is the same quantity.
    general = float(ssim(deg, ref, data_range=255.0, gamma=1.0 + 1e-12))
    assert general == pytest.approx(closed, abs=1e-9)


def test_ssim_exponents_move_the_value(astronaut_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ref, deg = astronaut_pair
    base = float(ssim(deg, ref, data_range=255.0))
    # The structure term is below 1 on a noisy copy: a larger gamma lowers SSIM, a smaller one raises it.
    assert float(ssim(deg, ref, data_range=255.0, gamma=2.0)) < base
    assert float(ssim(deg, ref, data_range=255.0, gamma=0.5)) > base
    # Zeroing all exponents leaves 1 everywhere.
    none = float(ssim(deg, ref, data_range=255.0, alpha=0.0, beta=0.0, gamma=0.0))
    assert none == pytest.approx(1.0, abs=1e-12)
    # A brightness shift only hurts luminance: alpha = 0 ignores it.
    shifted = (ref + 40.0).clamp(0, 255)
    with_l = float(ssim(shifted, ref, data_range=255.0))
    without_l = float(ssim(shifted, ref, data_range=255.0, alpha=0.0))
    assert without_l > with_l


def test_ssim_rejects_too_small_and_mismatched() -> None:
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.rand(1, 8, 8), torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(torch.rand(1, 12, 12), torch.rand(1, 12, 13))
