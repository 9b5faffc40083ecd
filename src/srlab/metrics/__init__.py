"""Image-quality metrics: pure functions (color, psnr, ssim) and the evaluation protocol that uses them.

Every srlab evaluation scores images through :class:`EvalProtocol` (``PAPER_PROTOCOL`` by default)
and averages per-image scores with :class:`ScoreAccumulator`.
"""

from srlab.metrics.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srlab.metrics.protocol import PAPER_PROTOCOL, EvalProtocol, MeanMeter, ScoreAccumulator
from srlab.metrics.psnr import psnr, shave
from srlab.metrics.ssim import gaussian_window_1d, ssim, ssim_map

__all__ = [
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
