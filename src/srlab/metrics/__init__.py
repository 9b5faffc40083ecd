"""Image-quality metrics: pure functions, one registry, one accumulator, and the evaluation protocol.

Every metric registers a per-image function ``fn(sr, hr, *, protocol)`` (SR first, HR second) with its
key, direction and weight files (:mod:`srlab.metrics.registry`); every srlab evaluation prepares the
pair with :class:`EvalProtocol` (``PAPER_PROTOCOL`` by default) and keeps per-image values and means in
:class:`ScoreAccumulator`. Full-reference: PSNR, SSIM (with the alpha / beta / gamma exponents),
MS-SSIM, GMSD, FSIM / FSIMc, LPIPS, DISTS (weights from local files); no-reference: NIQE (pristine model
from a local file). Importing this package registers them all (the import list below).
"""

from srlab.metrics import (  # noqa: F401  (explicit import list: registers the metrics, in this order)
    psnr as _psnr,
    ssim as _ssim,
    ms_ssim as _ms_ssim,
    gmsd as _gmsd,
    fsim as _fsim,
    lpips as _lpips,
    dists as _dists,
    niqe as _niqe,
    ciede2000 as _ciede2000,
)
from srlab.metrics.accumulator import ScoreAccumulator, mean_scores
from srlab.metrics.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srlab.metrics.common import shave
from srlab.metrics.dists import DISTS, dists
from srlab.metrics.fsim import fsim, fsim_fsimc, fsimc, phase_congruency
from srlab.metrics.gmsd import gmsd
from srlab.metrics.lpips import LPIPS, lpips
from srlab.metrics.ms_ssim import MS_SSIM_WEIGHTS, ms_ssim
from srlab.metrics.niqe import NIQE, NiqeModel, fit_niqe_model, niqe
from srlab.metrics.protocol import PAPER_PROTOCOL, EvalProtocol
from srlab.metrics.psnr import psnr
from srlab.metrics.registry import Metric, MetricSet, get_metric, metric_names, register_metric
from srlab.metrics.ssim import gaussian_window_1d, ssim, ssim_map

__all__ = [
    "DISTS",
    "LPIPS",
    "MS_SSIM_WEIGHTS",
    "NIQE",
    "NiqeModel",
    "Metric",
    "MetricSet",
    "dists",
    "fit_niqe_model",
    "fsim",
    "fsim_fsimc",
    "fsimc",
    "get_metric",
    "gmsd",
    "lpips",
    "mean_scores",
    "metric_names",
    "ms_ssim",
    "niqe",
    "phase_congruency",
    "PAPER_PROTOCOL",
    "EvalProtocol",
    "ScoreAccumulator",
    "gaussian_window_1d",
    "psnr",
    "register_metric",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "shave",
    "ssim",
    "ssim_map",
    "ycbcr_to_rgb",
]
