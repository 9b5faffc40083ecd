"""NIQE, the natural image quality evaluator (Mittal, Soundararajan and Bovik, IEEE SPL 2013): no-reference.

As the authors' MATLAB release (``niqe_release``: ``computequality.m``, ``computefeature.m``,
``estimateaggdparam.m``, ``estimatemodelparam.m``) computes it:

1. the image is the 8-bit picture MATLAB reads (``round(255 x)``), turned grey with ``rgb2gray``
   (rounded to 8 bits, as MATLAB does for uint8 images), as double, cropped to a multiple of the
   96x96 block;
2. at two scales (the second one is MATLAB ``imresize(im, 0.5)``, bicubic with antialiasing, on
   doubles): MSCN coefficients ``(im - mu) / (sigma + 1)`` with a 7x7 Gaussian window (sigma 7/6),
   'replicate' borders, summed in a fixed order (:func:`local_weighted_sum`);
3. per block (96x96 at scale 1, 48x48 at scale 2), 18 features: the AGGD fit of the MSCN
   coefficients (alpha, mean of the two betas) and, for the four neighbour products (circular shifts
   (0,1), (1,0), (1,1), (1,-1) within the block), alpha, the AGGD mean, beta_left, beta_right;
   36 features per block in all;
4. ``NIQE = sqrt((mu_p - mu_d)^T pinv((cov_p + cov_d) / 2) (mu_p - mu_d))`` with ``mu_d``,
   ``cov_d`` the (NaN-ignoring) mean and covariance of the image's block features.

Patch selection: like ``computequality.m`` (and pyiqa / scikit-video), :func:`niqe` uses **all** blocks of
the image. The sharpness selection (blocks whose mean local sigma exceeds 0.75 x the image's maximum)
belongs to the model fitting of ``estimatemodelparam.m`` and is what :func:`fit_niqe_model` does.

The pristine model (``mu_prisparam``, ``cov_prisparam``) is a file the user provides: the MATLAB
release's ``modelparameters.mat`` (read with scipy), or an ``.npz`` with the same keys (basicsr's
``niqe_pris_params.npz`` keys ``mu_pris_param``, ``cov_pris_param`` are accepted too).
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.data.resize import imresize
from srlab.errors import SrlabError
from srlab.fileio import atomic_write_bytes
from srlab.metrics.common import as_batch
from srlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol

BLOCK = 96
SHARPNESS_THRESHOLD = 0.75
NUM_FEATURES = 36
#: MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
_MISSING = (
    "NIQE needs the pristine model: pass model=... (the NIQE MATLAB release's modelparameters.mat with "
    "mu_prisparam and cov_prisparam, or an .npz with those keys; srlab.metrics.niqe.fit_niqe_model fits one "
    "from clean photos)"
)


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)``, normalised to sum 1 (float64)."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def local_weighted_sum(im: Tensor, window: Tensor) -> Tensor:
    """MATLAB ``imfilter(im, window, 'replicate')`` on an (H, W) float64 image, summing the taps one at a time
    in row-major order.

    Not ``conv2d``: its BLAS kernel sums in an order that depends on the CPU's vector width. Where a
    neighbourhood is symmetric or flat, ``im - mu`` is zero in exact arithmetic and its computed value is
    rounding noise whose sign decides on which side of the AGGD fit the coefficient counts: one flipped
    sign moves a block's betas by up to ~1e-4. A fixed order of correctly rounded multiplies and adds
    makes the features the same on every CPU (and bit-identical to ``scipy.ndimage.correlate``).
    """
    k = window.shape[0]
    h, w = im.shape
    padded = F.pad(im[None, None], (k // 2,) * 4, mode="replicate")[0, 0]
    total = torch.zeros_like(im)
    term = torch.empty_like(im)
    for i in range(k):
        for j in range(k):
            torch.mul(padded[i : i + h, j : j + w], window[i, j], out=term)  # no fused multiply-add
            total += term
    return total


def to_gray_levels(x: Tensor) -> Tensor:
    """[0, 1] images (N, C, H, W), C in (1, 3) -> (N, H, W) float64 grey levels 0..255 as MATLAB reads them."""
    levels = torch.floor(x.detach().to("cpu", torch.float64).clamp(0, 1) * 255 + 0.5)
    if levels.shape[1] == 1:
        return levels[:, 0]
    if levels.shape[1] != 3:
        raise SrlabError(f"NIQE: images must have 1 or 3 channels, got {levels.shape[1]}")
    r, g, b = levels.unbind(1)
    return torch.floor(RGB2GRAY[0] * r + RGB2GRAY[1] * g + RGB2GRAY[2] * b + 0.5)


_GAM = torch.arange(9801, dtype=torch.float64) * 0.001 + 0.2  # MATLAB 0.2:0.001:10
_R_GAM = torch.exp(2 * torch.lgamma(2 / _GAM) - torch.lgamma(1 / _GAM) - torch.lgamma(3 / _GAM))


def _gamma(x: Tensor) -> Tensor:
    return torch.exp(torch.lgamma(x))


def aggd_fit(vec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``estimateaggdparam.m`` on each row of ``vec`` (P, M): (alpha, beta_left, beta_right), each (P,)."""
    neg, pos = vec < 0, vec > 0
    sq = vec * vec
    left = torch.sqrt((sq * neg).sum(1) / neg.sum(1))  # 0/0 -> NaN, as MATLAB's mean([])
    right = torch.sqrt((sq * pos).sum(1) / pos.sum(1))
    gammahat = left / right
    rhat = vec.abs().mean(1) ** 2 / sq.mean(1)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    diff = (_R_GAM[None, :] - rhatnorm[:, None]) ** 2
    diff = torch.nan_to_num(diff, nan=math.inf)  # MATLAB min over all-NaN gives the first position
    alpha = _GAM[diff.argmin(1)]
    ratio = torch.sqrt(_gamma(1 / alpha) / _gamma(3 / alpha))
    return alpha, left * ratio, right * ratio


def block_features(structdis: Tensor) -> Tensor:
    """``computefeature.m`` on blocks (P, b, b) of MSCN coefficients: (P, 18)."""
    p = structdis.shape[0]
    flat = structdis.reshape(p, -1)
    alpha, bl, br = aggd_fit(flat)
    feats = [alpha, (bl + br) / 2]
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        shifted = torch.roll(structdis, shifts=(dr, dc), dims=(1, 2))
        alpha, bl, br = aggd_fit(flat * shifted.reshape(p, -1))
        mean = (br - bl) * (_gamma(2 / alpha) / _gamma(1 / alpha))
        feats += [alpha, mean, bl, br]
    return torch.stack(feats, dim=1)


def _blocks(im: Tensor, b: int) -> Tensor:
    h, w = im.shape
    return im.reshape(h // b, b, w // b, b).permute(0, 2, 1, 3).reshape(-1, b, b)


def niqe_features(gray: Tensor, block_size: int = BLOCK) -> tuple[Tensor, Tensor]:
    """Block features (P, 36) and sharpness (P,) of one (H, W) grey image in 0..255 (float64)."""
    if block_size % 2:
        raise SrlabError(f"NIQE: block_size must be even, got {block_size}")
    h, w = gray.shape
    rows, cols = h // block_size, w // block_size
    if rows == 0 or cols == 0:
        raise SrlabError(
            f"NIQE: a {h}x{w} image is smaller than one {block_size}x{block_size} block; score larger images"
        )
    im = gray[: rows * block_size, : cols * block_size].to(torch.float64)
    window = gaussian_window()
    feats, sharpness = [], None
    for scale in (1, 2):
        mu = local_weighted_sum(im, window)
        sigma = torch.sqrt((local_weighted_sum(im * im, window) - mu * mu).abs())
        structdis = (im - mu) / (sigma + 1)
        b = block_size // scale
        feats.append(block_features(_blocks(structdis, b)))
        if scale == 1:
            sharpness = _blocks(sigma, b).mean(dim=(1, 2))
            im = imresize(im, scale=0.5)
    assert sharpness is not None
    return torch.cat(feats, dim=1), sharpness


def _nan_mean_cov(feat: Tensor) -> tuple[Tensor, Tensor]:
    """MATLAB ``nanmean`` (per column) and ``nancov`` (complete rows, N - 1)."""
    mu = torch.nanmean(feat, dim=0)
    rows = feat[~torch.isnan(feat).any(dim=1)]
    if rows.shape[0] >= 2:
        cov = torch.cov(rows.T)
    elif rows.shape[0] == 1:
        cov = torch.zeros(feat.shape[1], feat.shape[1], dtype=feat.dtype)
    else:
        cov = torch.full((feat.shape[1], feat.shape[1]), math.nan, dtype=feat.dtype)
    return mu, cov


@dataclass(frozen=True)
class NiqeModel:
    """The pristine multivariate Gaussian: ``mu`` (36,), ``cov`` (36, 36), float64."""

    mu: Tensor
    cov: Tensor

    def __post_init__(self) -> None:
        if tuple(self.mu.shape) != (NUM_FEATURES,) or tuple(self.cov.shape) != (NUM_FEATURES, NUM_FEATURES):
            raise SrlabError(
                f"a NIQE model has mu (36,) and cov (36, 36), got {tuple(self.mu.shape)} and {tuple(self.cov.shape)}"
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NiqeModel:
        """Read ``mu_prisparam`` / ``cov_prisparam`` from a MATLAB ``.mat`` or an ``.npz``."""
        path = Path(path)
        if not path.is_file():
            raise SrlabError(f"NIQE pristine model not found at {path}: " + _MISSING.split(": ", 1)[1])
        unreadable = SrlabError(f"cannot read the NIQE pristine model {path}: not a MATLAB .mat or numpy .npz "
                                "file, or corrupt; pass NIQE's modelparameters.mat")
        if path.suffix.lower() == ".mat":
            try:
                import scipy.io
            except ImportError as exc:
                raise SrlabError(f"reading {path} needs scipy (pip install scipy), or convert it to .npz") from exc
            try:
                data = scipy.io.loadmat(str(path))
            except Exception:  # noqa: BLE001 - scipy raises many types for a file that is not a good .mat
                raise unreadable from None
        elif path.suffix.lower() == ".npz":
            try:  # allow_pickle stays False: an object array is refused, never unpickled
                with np.load(path) as z:
                    data = {k: z[k] for k in z.files}
            except (ValueError, OSError, EOFError, TypeError, AttributeError, zipfile.BadZipFile, zlib.error):
                raise unreadable from None  # TypeError / AttributeError: an .npy array, not an .npz archive
        else:
            raise SrlabError(f"NIQE pristine model {path}: expected a .mat or .npz file")
        for mu_key, cov_key in (("mu_prisparam", "cov_prisparam"), ("mu_pris_param", "cov_pris_param")):
            if mu_key in data and cov_key in data:
                try:
                    mu = torch.as_tensor(np.asarray(data[mu_key], dtype=np.float64).reshape(-1))
                    cov = torch.as_tensor(np.asarray(data[cov_key], dtype=np.float64))
                except (ValueError, TypeError):
                    raise SrlabError(f"{path}: {mu_key} / {cov_key} are not arrays of numbers") from None
                return cls(mu, cov)
        keys = sorted(k for k in data if not k.startswith("__"))
        raise SrlabError(f"{path} has no mu_prisparam / cov_prisparam (keys: {keys}); pass NIQE's modelparameters.mat")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``mu_prisparam`` / ``cov_prisparam`` to an ``.npz`` (atomically)."""
        buf = io.BytesIO()
        np.savez(buf, mu_prisparam=self.mu.numpy(), cov_prisparam=self.cov.numpy())
        atomic_write_bytes(path, buf.getvalue())

    def distance(self, feat: Tensor) -> Tensor:
        """The NIQE score of one image's block features (P, 36)."""
        mu_d, cov_d = _nan_mean_cov(feat)
        d = (self.mu - mu_d)[None]
        inv = torch.linalg.pinv((self.cov + cov_d) / 2)
        return torch.sqrt((d @ inv @ d.T)[0, 0])


def _model(model: NiqeModel | str | os.PathLike[str] | None) -> NiqeModel:
    if model is None:
        raise SrlabError(_MISSING)
    return model if isinstance(model, NiqeModel) else NiqeModel.load(model)


def fit_niqe_model(
    images: Iterable[Tensor],
    *,
    block_size: int = BLOCK,
    sharpness_threshold: float = SHARPNESS_THRESHOLD,
) -> NiqeModel:
    """``estimatemodelparam.m``: a pristine model from clean [0, 1] images (C, H, W), keeping the blocks
    whose sharpness exceeds ``sharpness_threshold`` x the image's sharpest block."""
    selected = []
    for x in images:
        for gray in to_gray_levels(as_batch(x, "image")):
            feat, sharp = niqe_features(gray, block_size)
            selected.append(feat[sharp > sharpness_threshold * sharp.max()])
    if not selected:
        raise SrlabError("fit_niqe_model: no images given")
    mu, cov = _nan_mean_cov(torch.cat(selected))
    return NiqeModel(mu, cov)


def niqe(
    x: Tensor,
    model: NiqeModel | str | os.PathLike[str] | None = None,
    *,
    block_size: int = BLOCK,
) -> Tensor:
    """NIQE of [0, 1] images (lower is better): a float64 scalar for (C, H, W), (N,) for (N, C, H, W)."""
    pristine = _model(model)
    single = isinstance(x, Tensor) and x.dim() == 3
    grays = to_gray_levels(as_batch(x, "x"))
    scores = torch.stack([pristine.distance(niqe_features(g, block_size)[0]) for g in grays])
    return scores[0] if single else scores


class NIQE:
    """NIQE with its pristine model loaded once; ``NIQE(path)(x)`` as :func:`niqe`."""

    def __init__(self, model: NiqeModel | str | os.PathLike[str] | None = None, *, block_size: int = BLOCK) -> None:
        self.model = _model(model)
        self.block_size = block_size

    def __call__(self, x: Tensor) -> Tensor:
        return niqe(x, self.model, block_size=self.block_size)


@register_metric(
    "niqe", higher_is_better=False, reference=False, load=lambda files: NIQE(files["niqe"]),
    weights={"niqe": "NIQE's modelparameters.mat (or an .npz with mu_prisparam, cov_prisparam)"},
)
def score_niqe(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol, model: NIQE) -> float:
    """NIQE of the SR image of a prepared pair (no reference: ``hr`` is not looked at)."""
    return float(model(sr))
