"""GMSD against a naive numpy transcription of the authors' GMSD.m (Xue et al., 2014), on real photographs."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from conftest import DISTORTION_LEVELS, distort, photo, photo_tensor
from srlab.errors import SrlabError
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.gmsd import gmsd
from srlab.metrics.protocol import EvalProtocol

signal = pytest.importorskip("scipy.signal")


def _conv2_same(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB conv2(a, k, 'same'): the full convolution's central part, starting at floor(size(k)/2) + 1."""
    full = signal.convolve2d(a, k, mode="full")
    r0, c0 = k.shape[0] // 2, k.shape[1] // 2
    return full[r0 : r0 + a.shape[0], c0 : c0 + a.shape[1]]


def gmsd_matlab(y1: np.ndarray, y2: np.ndarray) -> float:
    """GMSD.m line by line: Y1, Y2 are grey images (double, 0..255)."""
    t = 170.0
    down_step = 2
    dx = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64) / 3
    dy = dx.T
    ave_kernel = np.ones((2, 2)) / 4  # fspecial('average', 2)
    ave1, ave2 = _conv2_same(y1, ave_kernel), _conv2_same(y2, ave_kernel)
    y1, y2 = ave1[::down_step, ::down_step], ave2[::down_step, ::down_step]
    gm1 = np.sqrt(_conv2_same(y1, dx) ** 2 + _conv2_same(y1, dy) ** 2)
    gm2 = np.sqrt(_conv2_same(y2, dx) ** 2 + _conv2_same(y2, dy) ** 2)
    quality_map = (2 * gm1 * gm2 + t) / (gm1**2 + gm2**2 + t)
    return float(np.std(quality_map, ddof=1))  # std2


def _y_ycbcr(img: np.ndarray) -> np.ndarray:
    """BT.601 Y (MATLAB rgb2ycbcr on doubles) in 0..255, written out independently of srlab."""
    rgb = img.astype(np.float64) / 255.0
    return (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2] + 16.0)


@pytest.mark.parametrize(
    ("name", "crop", "kind", "level"),
    [
        ("astronaut", None, "blur", 1.5),
        ("astronaut", (slice(11, 312), slice(40, 297)), "jpeg", 20),  # odd 301 x 257: zero-padded last row
        ("coffee", None, "noise", 10),
        ("chelsea", None, "bicubic", 3),
    ],
)
def test_gmsd_matches_matlab_transcription(name, crop, kind, level) -> None:
    ref = photo(name)
    if crop is not None:
        ref = np.ascontiguousarray(ref[crop])
    dis = distort(ref, kind, level)
    expected = gmsd_matlab(_y_ycbcr(ref), _y_ycbcr(dis))
    got = float(gmsd(photo_tensor(dis), photo_tensor(ref)))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert 0.0 < got < 0.35


def test_gmsd_gray_luma_and_grey_input() -> None:
    ref = photo("camera")[:, :, 0]  # a grey photograph stored as RGB
    dis = distort(ref, "blur", 2)
    expected = gmsd_matlab(ref.astype(np.float64), dis.astype(np.float64))
    assert float(gmsd(photo_tensor(dis), photo_tensor(ref))) == pytest.approx(expected, rel=1e-10)  # one channel: used as is
    rgb_ref, rgb_dis = np.repeat(ref[..., None], 3, 2), np.repeat(dis[..., None], 3, 2)
    # 0.299 + 0.587 + 0.114 = 1: the 'gray' luma of a grey RGB picture is the picture itself.
    assert float(gmsd(photo_tensor(rgb_dis), photo_tensor(rgb_ref), luma="gray")) == pytest.approx(expected, rel=1e-9)


def test_gmsd_identical_is_zero_and_monotone_in_distortion() -> None:
    ref = photo("astronaut")[100:356, 150:406]
    assert float(gmsd(photo_tensor(ref), photo_tensor(ref))) == 0.0
    for kind, levels in DISTORTION_LEVELS.items():
        scores = [float(gmsd(photo_tensor(distort(ref, kind, lv)), photo_tensor(ref))) for lv in levels]
        assert 0 < scores[0] < scores[1] < scores[2], (kind, scores)


def test_gmsd_batch_crop_and_accumulator() -> None:
    refs = [photo("astronaut", (96, 80)), photo("coffee", (96, 80))]
    diss = [distort(r, "noise", 8) for r in refs]
    x = torch.stack([photo_tensor(d) for d in diss])
    y = torch.stack([photo_tensor(r) for r in refs])
    batch = gmsd(x, y, crop_border=4)
    assert batch.shape == (2,)
    singles = [float(gmsd(x[i, :, 4:-4, 4:-4], y[i, :, 4:-4, 4:-4])) for i in range(2)]
    assert batch.tolist() == pytest.approx(singles, rel=1e-12)
    acc = ScoreAccumulator(EvalProtocol(crop_border=4), ("gmsd",))
    assert [acc.update(x[i], y[i], scale=4)["gmsd"] for i in (0, 1)] == pytest.approx(singles, rel=1e-12)
    acc.update(x[0], y[0], scale=4)
    assert acc.count == 3
    assert acc.compute()["gmsd"] == pytest.approx((2 * singles[0] + singles[1]) / 3, rel=1e-12)
    acc.reset()
    assert acc.count == 0


def test_gmsd_float32_input_and_user_errors() -> None:
    ref = photo("chelsea", (64, 48))
    dis = distort(ref, "blur", 1)
    v64 = float(gmsd(photo_tensor(dis), photo_tensor(ref)))
    assert float(gmsd(photo_tensor(dis).float(), photo_tensor(ref).float())) == pytest.approx(v64, rel=1e-6)
    with pytest.raises(SrlabError, match="differ in size"):
        gmsd(photo_tensor(dis), photo_tensor(ref)[:, :-1])
    with pytest.raises(SrlabError, match="float tensor"):
        gmsd(torch.from_numpy(np.array(dis)).permute(2, 0, 1), torch.from_numpy(np.array(ref)).permute(2, 0, 1))
