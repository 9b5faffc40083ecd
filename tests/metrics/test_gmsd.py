"""GMSD against a naive numpy transcription of the authors' GMSD.m (Xue et al., 2014), on real photographs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image, ImageFilter

from srlab.errors import SrlabError
from srlab.metrics.gmsd import GMSDAccumulator, gmsd

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


def _t(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (H, W) uint8 -> (C, H, W) float64 in [0, 1]."""
    a = img if img.ndim == 3 else img[..., None]
    return torch.from_numpy(np.array(a)).permute(2, 0, 1).to(torch.float64) / 255.0


# Three increasing strengths of each distortion.
LEVELS = {"blur": (0.8, 1.6, 3.2), "noise": (4, 12, 30), "jpeg": (60, 25, 8), "bicubic": (2, 3, 4)}


def distort(img: np.ndarray, kind: str, level: float) -> np.ndarray:
    """A distorted copy of a uint8 photo: Gaussian blur, Gaussian noise, JPEG, or bicubic down-up."""
    pil = Image.fromarray(img)
    if kind == "blur":
        return np.asarray(pil.filter(ImageFilter.GaussianBlur(level)))
    if kind == "noise":
        rng = np.random.default_rng(0)
        return np.clip(img + rng.normal(0, level, img.shape), 0, 255).round().astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(level))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(pil.mode))
    if kind == "bicubic":
        w, h = pil.size
        small = pil.resize((round(w / level), round(h / level)), Image.BICUBIC)
        return np.asarray(small.resize((w, h), Image.BICUBIC))
    raise ValueError(kind)


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
    got = float(gmsd(_t(dis), _t(ref)))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert 0.0 < got < 0.35


def test_gmsd_gray_luma_and_grey_input() -> None:
    ref = photo("camera")[:, :, 0]  # a grey photograph stored as RGB
    dis = distort(ref, "blur", 2)
    expected = gmsd_matlab(ref.astype(np.float64), dis.astype(np.float64))
    assert float(gmsd(_t(dis), _t(ref))) == pytest.approx(expected, rel=1e-10)  # one channel: used as is
    rgb_ref, rgb_dis = np.repeat(ref[..., None], 3, 2), np.repeat(dis[..., None], 3, 2)
    # 0.299 + 0.587 + 0.114 = 1: the 'gray' luma of a grey RGB picture is the picture itself.
    assert float(gmsd(_t(rgb_dis), _t(rgb_ref), luma="gray")) == pytest.approx(expected, rel=1e-9)


def test_gmsd_identical_is_zero_and_monotone_in_distortion() -> None:
    ref = photo("astronaut")[100:356, 150:406]
    assert float(gmsd(_t(ref), _t(ref))) == 0.0
    for kind, levels in LEVELS.items():
        scores = [float(gmsd(_t(distort(ref, kind, lv)), _t(ref))) for lv in levels]
        assert 0 < scores[0] < scores[1] < scores[2], (kind, scores)


def test_gmsd_batch_crop_and_accumulator() -> None:
    refs = [photo("astronaut", (96, 80)), photo("coffee", (96, 80))]
    diss = [distort(r, "noise", 8) for r in refs]
    x = torch.stack([_t(d) for d in diss])
    y = torch.stack([_t(r) for r in refs])
    batch = gmsd(x, y, crop_border=4)
    assert batch.shape == (2,)
    singles = [float(gmsd(x[i, :, 4:-4, 4:-4], y[i, :, 4:-4, 4:-4])) for i in range(2)]
    assert batch.tolist() == pytest.approx(singles, rel=1e-12)
    acc = GMSDAccumulator(crop_border=4)
    assert acc.update(x, y) == pytest.approx(singles, rel=1e-12)
    acc.update(x[0], y[0])
    assert acc.count == 3
    assert acc.compute()["gmsd"] == pytest.approx((2 * singles[0] + singles[1]) / 3, rel=1e-12)
    acc.reset()
    assert acc.count == 0


def test_gmsd_float32_input_and_user_errors() -> None:
    ref = photo("chelsea", (64, 48))
    dis = distort(ref, "blur", 1)
    v64 = float(gmsd(_t(dis), _t(ref)))
    assert float(gmsd(_t(dis).float(), _t(ref).float())) == pytest.approx(v64, rel=1e-6)
    with pytest.raises(SrlabError, match="differ in size"):
        gmsd(_t(dis), _t(ref)[:, :-1])
    with pytest.raises(SrlabError, match="float tensor"):
        gmsd(torch.from_numpy(np.array(dis)).permute(2, 0, 1), torch.from_numpy(np.array(ref)).permute(2, 0, 1))
