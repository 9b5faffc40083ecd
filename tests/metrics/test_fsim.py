"""FSIM / FSIMc against a naive numpy transcription of the authors' FeatureSIM.m (with Kovesi's phasecong2
and lowpassfilter as that file embeds them), on real photographs.

Not used as the reference: ``image-similarity-measures`` (its FSIM calls ``phasepack.phasecong``, Kovesi's
later phasecong3-style code with other parameters and noise handling, has no downsampling step and no
FSIMc), so it does not compute the authors' definition.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import DISTORTION_LEVELS, distort, photo, photo_tensor
from srlab.errors import SrlabError
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.fsim import fsim, fsim_fsimc, fsimc, phase_congruency
from srlab.metrics.protocol import EvalProtocol

signal = pytest.importorskip("scipy.signal")


def _conv2_same(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB conv2(a, k, 'same'): the full convolution's central part, starting at floor(size(k)/2) + 1."""
    full = signal.convolve2d(a, k, mode="full")
    r0, c0 = k.shape[0] // 2, k.shape[1] // 2
    return full[r0 : r0 + a.shape[0], c0 : c0 + a.shape[1]]


def _ranges(rows: int, cols: int):
    if cols % 2:
        xrange = np.arange(-(cols - 1) / 2, (cols - 1) / 2 + 1) / (cols - 1)
    else:
        xrange = np.arange(-cols / 2, cols / 2) / cols
    if rows % 2:
        yrange = np.arange(-(rows - 1) / 2, (rows - 1) / 2 + 1) / (rows - 1)
    else:
        yrange = np.arange(-rows / 2, rows / 2) / rows
    return np.meshgrid(xrange, yrange)


def lowpassfilter(rows: int, cols: int, cutoff: float, n: int) -> np.ndarray:
    x, y = _ranges(rows, cols)
    radius = np.sqrt(x**2 + y**2)
    return np.fft.ifftshift(1.0 / (1.0 + (radius / cutoff) ** (2 * n)))


def phasecong2(im: np.ndarray) -> np.ndarray:
    """FeatureSIM.m's phasecong2, loop by loop."""
    nscale, norient, min_wave_length, mult = 4, 4, 6, 2
    sigma_onf, d_theta_on_sigma, k, epsilon = 0.55, 1.2, 2.0, 0.0001
    theta_sigma = np.pi / norient / d_theta_on_sigma
    rows, cols = im.shape
    imagefft = np.fft.fft2(im)
    x, y = _ranges(rows, cols)
    radius = np.fft.ifftshift(np.sqrt(x**2 + y**2))
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1
    sintheta, costheta = np.sin(theta), np.cos(theta)
    lp = lowpassfilter(rows, cols, 0.45, 15)
    log_gabor = []
    for s in range(1, nscale + 1):
        wavelength = min_wave_length * mult ** (s - 1)
        fo = 1.0 / wavelength
        lg = np.exp((-(np.log(radius / fo)) ** 2) / (2 * np.log(sigma_onf) ** 2)) * lp
        lg[0, 0] = 0
        log_gabor.append(lg)
    spread = []
    for o in range(1, norient + 1):
        angl = (o - 1) * np.pi / norient
        ds = sintheta * np.cos(angl) - costheta * np.sin(angl)
        dc = costheta * np.cos(angl) + sintheta * np.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        spread.append(np.exp((-(dtheta**2)) / (2 * theta_sigma**2)))
    energy_all = np.zeros((rows, cols))
    an_all = np.zeros((rows, cols))
    for o in range(norient):
        sum_e = np.zeros((rows, cols))
        sum_o = np.zeros((rows, cols))
        sum_an = np.zeros((rows, cols))
        energy = np.zeros((rows, cols))
        eo, ifft_filter_array = [], []
        for s in range(nscale):
            filt = log_gabor[s] * spread[o]
            ifft_filter_array.append(np.real(np.fft.ifft2(filt)) * np.sqrt(rows * cols))
            eo.append(np.fft.ifft2(imagefft * filt))
            an = np.abs(eo[s])
            sum_an += an
            sum_e += np.real(eo[s])
            sum_o += np.imag(eo[s])
            if s == 0:
                em_n = np.sum(filt**2)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + epsilon
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        for s in range(nscale):
            e, od = np.real(eo[s]), np.imag(eo[s])
            energy += e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)
        median_e2n = np.median(np.abs(eo[0]).reshape(-1) ** 2)
        mean_e2n = -median_e2n / np.log(0.5)
        noise_power = mean_e2n / em_n
        est_sum_an2 = np.zeros((rows, cols))
        for s in range(nscale):
            est_sum_an2 += ifft_filter_array[s] ** 2
        est_sum_aiaj = np.zeros((rows, cols))
        for si in range(nscale - 1):
            for sj in range(si + 1, nscale):
                est_sum_aiaj += ifft_filter_array[si] * ifft_filter_array[sj]
        est_noise_energy2 = 2 * noise_power * est_sum_an2.sum() + 4 * noise_power * est_sum_aiaj.sum()
        tau = np.sqrt(est_noise_energy2 / 2)
        est_noise_energy = tau * np.sqrt(np.pi / 2)
        est_noise_energy_sigma = np.sqrt((2 - np.pi / 2) * tau**2)
        t = (est_noise_energy + k * est_noise_energy_sigma) / 1.7
        energy = np.maximum(energy - t, 0)
        energy_all += energy
        an_all += sum_an
    return energy_all / an_all


def feature_sim(image_ref: np.ndarray, image_dis: np.ndarray) -> tuple[float, float]:
    """FeatureSIM.m: (FSIM, FSIMc) of two images with 0..255 channels ((H, W, 3) colour or (H, W) grey)."""
    rows, cols = image_ref.shape[:2]
    i1 = i2 = q1 = q2 = np.ones((rows, cols))
    if image_ref.ndim == 3:
        r1, g1, b1 = (image_ref[..., c].astype(np.float64) for c in range(3))
        r2, g2, b2 = (image_dis[..., c].astype(np.float64) for c in range(3))
        y1 = 0.299 * r1 + 0.587 * g1 + 0.114 * b1
        y2 = 0.299 * r2 + 0.587 * g2 + 0.114 * b2
        i1 = 0.596 * r1 - 0.274 * g1 - 0.322 * b1
        i2 = 0.596 * r2 - 0.274 * g2 - 0.322 * b2
        q1 = 0.211 * r1 - 0.523 * g1 + 0.312 * b1
        q2 = 0.211 * r2 - 0.523 * g2 + 0.312 * b2
    else:
        y1, y2 = image_ref.astype(np.float64), image_dis.astype(np.float64)
    min_dimension = min(rows, cols)
    f = max(1, int(math.floor(min_dimension / 256 + 0.5)))  # MATLAB round
    ave_kernel = np.ones((f, f)) / f**2
    i1, i2 = _conv2_same(i1, ave_kernel)[::f, ::f], _conv2_same(i2, ave_kernel)[::f, ::f]
    q1, q2 = _conv2_same(q1, ave_kernel)[::f, ::f], _conv2_same(q2, ave_kernel)[::f, ::f]
    y1, y2 = _conv2_same(y1, ave_kernel)[::f, ::f], _conv2_same(y2, ave_kernel)[::f, ::f]
    pc1, pc2 = phasecong2(y1), phasecong2(y2)
    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]]) / 16
    dy = np.array([[3, 10, 3], [0, 0, 0], [-3, -10, -3]]) / 16
    gm1 = np.sqrt(_conv2_same(y1, dx) ** 2 + _conv2_same(y1, dy) ** 2)
    gm2 = np.sqrt(_conv2_same(y2, dx) ** 2 + _conv2_same(y2, dy) ** 2)
    t1, t2, t3, t4, lam = 0.85, 160, 200, 200, 0.03
    pc_sim = (2 * pc1 * pc2 + t1) / (pc1**2 + pc2**2 + t1)
    g_sim = (2 * gm1 * gm2 + t2) / (gm1**2 + gm2**2 + t2)
    pcm = np.maximum(pc1, pc2)
    fsim_v = np.sum(g_sim * pc_sim * pcm) / np.sum(pcm)
    i_sim = (2 * i1 * i2 + t3) / (i1**2 + i2**2 + t3)
    q_sim = (2 * q1 * q2 + t4) / (q1**2 + q2**2 + t4)
    chroma = np.real((i_sim * q_sim).astype(np.complex128) ** lam)
    fsimc_v = np.sum(g_sim * pc_sim * chroma * pcm) / np.sum(pcm)
    return float(fsim_v), float(fsimc_v)


@pytest.mark.parametrize(
    ("name", "crop", "kind", "level"),
    [
        ("astronaut", (slice(100, 356), slice(150, 406)), "blur", 1.5),  # 256 x 256: F = 1
        ("coffee", None, "jpeg", 12),  # 400 x 600: F = round(1.5625) = 2
        ("chelsea", (slice(0, 255), slice(0, 333)), "noise", 12),  # odd 255 x 333, F = 1
        ("hubble_deep_field", (slice(0, 640), slice(0, 700)), "bicubic", 3),  # F = MATLAB round(2.5) = 3
    ],
)
def test_fsim_fsimc_match_featuresim_m(name, crop, kind, level) -> None:
    ref = photo(name)
    if crop is not None:
        ref = np.ascontiguousarray(ref[crop])
    dis = distort(ref, kind, level)
    exp_fsim, exp_fsimc = feature_sim(ref, dis)
    got_fsim, got_fsimc = fsim_fsimc(photo_tensor(ref), photo_tensor(dis))
    assert float(got_fsim) == pytest.approx(exp_fsim, rel=1e-10)
    assert float(got_fsimc) == pytest.approx(exp_fsimc, rel=1e-10)
    assert 0.5 < float(got_fsimc) <= float(got_fsim) < 1.0


def test_fsimc_negative_chroma_similarity() -> None:
    """Red and blue swapped: S_I S_Q < 0 on most pixels, where MATLAB takes Re[z^lambda] = |z|^lambda cos(lambda pi)."""
    ref = photo("coffee")[:256, :300]
    dis = np.ascontiguousarray(ref[..., ::-1])
    exp_fsim, exp_fsimc = feature_sim(ref, dis)
    got_fsim, got_fsimc = fsim_fsimc(photo_tensor(ref), photo_tensor(dis))
    assert float(got_fsim) == pytest.approx(exp_fsim, rel=1e-10)
    assert float(got_fsimc) == pytest.approx(exp_fsimc, rel=1e-10)
    assert float(got_fsimc) < float(got_fsim) - 0.02


def test_fsim_grey_image_fsimc_equals_fsim() -> None:
    ref = photo("camera")[:, :, 0][64:320, 0:300]
    dis = distort(ref, "jpeg", 15)
    exp_fsim, exp_fsimc = feature_sim(ref, dis)
    assert exp_fsim == exp_fsimc
    assert float(fsim(photo_tensor(ref), photo_tensor(dis))) == pytest.approx(exp_fsim, rel=1e-10)
    assert float(fsimc(photo_tensor(ref), photo_tensor(dis))) == pytest.approx(exp_fsim, rel=1e-10)


def test_phase_congruency_matches_phasecong2_and_is_batched() -> None:
    a = photo("camera")[:, :, 0][:130, :97].astype(np.float64)  # odd and even sides
    b = photo("coffee")[:130, :97, 1].astype(np.float64)
    pc = phase_congruency(torch.from_numpy(np.stack([a, b])))
    for i, img in enumerate((a, b)):
        np.testing.assert_allclose(pc[i].numpy(), phasecong2(img), rtol=1e-9, atol=1e-12)
    assert 0.0 <= float(pc.min()) and float(pc.max()) <= 1.0


def test_fsim_identical_is_one_and_monotone_in_distortion() -> None:
    ref = photo("astronaut")[100:356, 150:406]
    assert [float(v) for v in fsim_fsimc(photo_tensor(ref), photo_tensor(ref))] == pytest.approx([1.0, 1.0], abs=1e-12)
    for kind, levels in DISTORTION_LEVELS.items():
        pairs = [fsim_fsimc(photo_tensor(ref), photo_tensor(distort(ref, kind, lv))) for lv in levels]
        for j in range(2):
            scores = [float(p[j]) for p in pairs]
            assert 1 > scores[0] > scores[1] > scores[2], (kind, j, scores)


def test_fsim_batch_crop_and_accumulator() -> None:
    refs = [photo("astronaut", (120, 96)), photo("coffee", (120, 96))]
    diss = [distort(r, "blur", 1.2) for r in refs]
    x, y = torch.stack([photo_tensor(r) for r in refs]), torch.stack([photo_tensor(d) for d in diss])
    a, c = fsim_fsimc(x, y, crop_border=2)
    assert a.shape == c.shape == (2,)
    singles = [fsim_fsimc(x[i, :, 2:-2, 2:-2], y[i, :, 2:-2, 2:-2]) for i in range(2)]
    assert a.tolist() == pytest.approx([float(s[0]) for s in singles], rel=1e-12)
    assert c.tolist() == pytest.approx([float(s[1]) for s in singles], rel=1e-12)
    # the registered metrics (SR first, HR second) average the same per-image values
    acc = ScoreAccumulator(EvalProtocol(crop_border=2), ("fsim", "fsimc"))
    got = [acc.update(y[i], x[i], scale=2) for i in (0, 1)]
    assert [g["fsim"] for g in got] == pytest.approx(a.tolist(), rel=1e-12)
    acc.update(y[1], x[1], scale=2)
    assert acc.count == 3
    means = acc.compute()
    assert means["fsim"] == pytest.approx((float(a[0]) + 2 * float(a[1])) / 3, rel=1e-12)
    assert means["fsimc"] == pytest.approx((float(c[0]) + 2 * float(c[1])) / 3, rel=1e-12)
    with pytest.raises(SrlabError, match="differ in size"):
        fsim(x, y[..., 1:])
