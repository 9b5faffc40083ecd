"""Image-quality metrics: pure functions, thin accumulators, and the evaluation protocol.

Every srlab evaluation scores images through :class:`EvalProtocol` (``PAPER_PROTOCOL`` by default)
and averages per-image scores with :class:`ScoreAccumulator`. Full-reference: PSNR, SSIM (with the
alpha / beta / gamma exponents), MS-SSIM, GMSD, FSIM / FSIMc, LPIPS, DISTS (weights from local files);
no-reference: NIQE (pristine model from a local file); any task metric through :class:`TaskMetric`.
"""

from srlab.metrics.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srlab.metrics.dists import DISTS, dists
from srlab.metrics.fsim import FSIMAccumulator, fsim, fsim_fsimc, fsimc, phase_congruency
from srlab.metrics.gmsd import GMSDAccumulator, gmsd
from srlab.metrics.lpips import LPIPS, lpips
from srlab.metrics.ms_ssim import MS_SSIM_WEIGHTS, MSSSIMAccumulator, ms_ssim
from srlab.metrics.niqe import NIQE, NiqeModel, fit_niqe_model, niqe
from srlab.metrics.protocol import PAPER_PROTOCOL, EvalProtocol, MeanMeter, ScoreAccumulator
from srlab.metrics.psnr import psnr, shave
from srlab.metrics.ssim import gaussian_window_1d, ssim, ssim_map
from srlab.metrics.task import TaskMetric

__all__ = [
    "DISTS",
    "FSIMAccumulator",
    "GMSDAccumulator",
    "LPIPS",
    "MSSSIMAccumulator",
    "MS_SSIM_WEIGHTS",
    "NIQE",
    "NiqeModel",
    "TaskMetric",
    "dists",
    "fit_niqe_model",
    "fsim",
    "fsim_fsimc",
    "fsimc",
    "gmsd",
    "lpips",
    "ms_ssim",
    "niqe",
    "phase_congruency",
    "PAPER_PROTOCOL",
    "EvalProtocol",
    "MeanMeter",
    "ScoreAccumulator",
    "gaussian_window_1d",
    "psnr",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "shave",
    "ssim",
    "ssim_map",
    "ycbcr_to_rgb",
]
