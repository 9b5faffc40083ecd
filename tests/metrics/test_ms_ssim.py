"""MS-SSIM against a naive numpy transcription of Wang's msssim.m / ssim_index_new.m, on real photographs."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from conftest import DISTORTION_LEVELS, distort, photo, photo_tensor
from srlab.errors import SrlabError
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.ms_ssim import MS_SSIM_WEIGHTS, ms_ssim
from srlab.metrics.protocol import EvalProtocol

signal = pytest.importorskip("scipy.signal")


def _fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    h = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    return h / h.sum()


def _ssim_index_new(img1: np.ndarray, img2: np.ndarray, k=(0.01, 0.03), win=None, L=255.0):
    """ssim_index_new.m: (mean SSIM, mean contrast-structure) with filter2(..., 'valid')."""
    c1, c2 = (k[0] * L) ** 2, (k[1] * L) ** 2
    win = win / win.sum()

    def filter2(a):
        return signal.correlate2d(a, win, mode="valid")

    mu1, mu2 = filter2(img1), filter2(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = filter2(img1 * img1) - mu1_sq
    sigma2_sq = filter2(img2 * img2) - mu2_sq
    sigma12 = filter2(img1 * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    return ssim_map.mean(), cs_map.mean()


def msssim_matlab(img1: np.ndarray, img2: np.ndarray) -> float:
    """msssim.m with its defaults: K = [0.01 0.03], 11x11 Gaussian (1.5), 5 levels, Wang's weights, L = 255."""
    weight = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    level = 5
    win = _fspecial_gaussian(11, 1.5)
    assert min(img1.shape) / 2 ** (level - 1) >= 11, "msssim.m returns -Inf here"
    mssim, mcs = [], []
    for lv in range(level):
        s, cs = _ssim_index_new(img1, img2, win=win)
        mssim.append(s)
        mcs.append(cs)
        # imfilter(img, ones(2)/4, 'symmetric', 'same'): correlation, kernel centre at (1,1), mirror padding.
        f = np.ones((2, 2)) / 4
        img1 = signal.correlate2d(np.pad(img1, ((0, 1), (0, 1)), mode="symmetric"), f, mode="valid")[::2, ::2]
        img2 = signal.correlate2d(np.pad(img2, ((0, 1), (0, 1)), mode="symmetric"), f, mode="valid")[::2, ::2]
    mcs, mssim = np.array(mcs), np.array(mssim)
    return float(np.prod(mcs[: level - 1] ** weight[: level - 1]) * mssim[level - 1] ** weight[level - 1])


def _y_ycbcr(img: np.ndarray) -> np.ndarray:
    """BT.601 Y (MATLAB rgb2ycbcr on doubles) in 0..255, written out independently of srlab."""
    rgb = img.astype(np.float64) / 255.0
    return 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2] + 16.0


@pytest.mark.parametrize(
    ("name", "crop", "kind", "level"),
    [
        ("astronaut", None, "blur", 1.5),
        ("coffee", None, "jpeg", 15),
        ("chelsea", None, "noise", 12),  # 300 x 451: odd widths at several scales
        ("astronaut", (slice(0, 201), slice(5, 382)), "bicubic", 3),  # 201 x 377
    ],
)
def test_ms_ssim_y_matches_msssim_m(name, crop, kind, level) -> None:
    ref = photo(name)
    if crop is not None:
        ref = np.ascontiguousarray(ref[crop])
    dis = distort(ref, kind, level)
    expected = msssim_matlab(_y_ycbcr(ref), _y_ycbcr(dis))
    got = float(ms_ssim(photo_tensor(dis), photo_tensor(ref)))
    assert got == pytest.approx(expected, rel=1e-10)
    assert 0.5 < got < 1.0


def test_ms_ssim_rgb_is_mean_of_channels() -> None:
    ref = photo("coffee")[50:300, 100:400]
    dis = distort(ref, "blur", 2)
    expected = np.mean([msssim_matlab(ref[..., c].astype(float), dis[..., c].astype(float)) for c in range(3)])
    assert float(ms_ssim(photo_tensor(dis), photo_tensor(ref), channel="rgb")) == pytest.approx(expected, rel=1e-10)


def test_ms_ssim_identical_is_one_and_monotone_in_distortion() -> None:
    ref = photo("astronaut")[100:356, 150:406]
    assert float(ms_ssim(photo_tensor(ref), photo_tensor(ref))) == pytest.approx(1.0, abs=1e-12)
    for kind, levels in DISTORTION_LEVELS.items():
        scores = [float(ms_ssim(photo_tensor(distort(ref, kind, lv)), photo_tensor(ref))) for lv in levels]
        assert 1 > scores[0] > scores[1] > scores[2], (kind, scores)


def test_ms_ssim_batch_crop_and_accumulator() -> None:
    refs = [photo("astronaut", (200, 190)), photo("rocket", (200, 190))]
    diss = [distort(r, "jpeg", 30) for r in refs]
    x, y = torch.stack([photo_tensor(d) for d in diss]), torch.stack([photo_tensor(r) for r in refs])
    batch = ms_ssim(x, y, crop_border=3)
    assert batch.shape == (2,)
    singles = [float(ms_ssim(x[i, :, 3:-3, 3:-3], y[i, :, 3:-3, 3:-3])) for i in range(2)]
    assert batch.tolist() == pytest.approx(singles, rel=1e-12)
    acc = ScoreAccumulator(EvalProtocol(crop_border=3), ("ms_ssim",))
    assert [acc.update(x[i], y[i], scale=3)["ms_ssim"] for i in (0, 1)] == pytest.approx(singles, rel=1e-12)
    assert acc.count == 2
    assert acc.compute() == {"ms_ssim": pytest.approx(sum(singles) / 2, rel=1e-12)}
    acc.reset()
    assert acc.count == 0


def test_ms_ssim_too_small_is_a_clear_error_and_fewer_scales_on_request() -> None:
    ref = photo("chelsea", (200, 170))  # 170 < 176 = 11 * 2^4
    dis = distort(ref, "blur", 1)
    with pytest.raises(SrlabError, match=r"170x200 image is too small for 5 scales.*at least 176"):
        ms_ssim(photo_tensor(dis), photo_tensor(ref))
    # Three scales on request: 11 * 2^2 = 44 <= 170.
    three = float(ms_ssim(photo_tensor(dis), photo_tensor(ref), weights=MS_SSIM_WEIGHTS[:3]))
    assert 0.5 < three < 1.0
    with pytest.raises(SrlabError, match="differ in size"):
        ms_ssim(photo_tensor(dis), photo_tensor(ref)[:, 1:])


def _sewar_phase_downsample(x: torch.Tensor) -> torch.Tensor:
    """sewar's step: scipy uniform_filter(size 2) averages pixels (i-1, i), mirroring x[-1] = x[0]; then [::2]."""
    return torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 0, 1, 0), mode="replicate"), 2)


@pytest.mark.parametrize(("name", "kind", "level"), [("astronaut", "blur", 1.5), ("camera", "jpeg", 10)])
def test_ms_ssim_against_sewar(name, kind, level, monkeypatch) -> None:
    """sewar 0.4.10 (``sewar.full_ref.msssim``), an independent implementation, on the Y channel.

    sewar differs from msssim.m in one place: between scales it averages pixels (i-1, i) instead of
    (i, i+1), which shifts the sampling grid by one pixel (measured: srlab - sewar = -2.2e-4 on blurred
    astronaut, -4.6e-3 on camera JPEG q10, whose 8x8 blocks the shift misaligns). With srlab's
    downsampling swapped for sewar's, the two must agree to rounding.
    """
    sewar_full_ref = pytest.importorskip("sewar.full_ref", reason="sewar is not installed (pip install sewar==0.4.10)")
    ms_ssim_module = importlib.import_module("srlab.metrics.ms_ssim")

    ref = photo(name)
    dis = distort(ref, kind, level)
    expected = float(sewar_full_ref.msssim(_y_ycbcr(ref)[..., None], _y_ycbcr(dis)[..., None], MAX=255.0))
    ours = float(ms_ssim(photo_tensor(dis), photo_tensor(ref)))
    assert ours == pytest.approx(expected, abs=5e-3)
    monkeypatch.setattr(ms_ssim_module, "_downsample2", _sewar_phase_downsample)
    assert float(ms_ssim(photo_tensor(dis), photo_tensor(ref))) == pytest.approx(expected, rel=1e-10)
