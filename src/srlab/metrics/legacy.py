"""Older protocols behind published tables: the Y-only bicubic pipeline behind the bicubic rows that SR
papers copy from one another, and the ETDS authors' "GTmod12" pairs (:func:`gtmod12_pairs`).

Set5 x2 33.66 / 0.9299, Set14 x4 26.00 / 0.7027 and the rest of that table (IMDN, SMSR, SAFMN, ...)
come from the MATLAB test code of the SRCNN / VDSR era, which works on luma alone:

1. the HR image is mod-cropped; a colour image goes to Y with ``rgb2ycbcr`` on the uint8 image, which
   rounds Y to 8 bits; a greyscale file (a 2-D array in MATLAB) is used as it is, since that code calls
   ``rgb2ycbcr`` only when the image has three channels;
2. Y, as doubles, is resized down and up with ``imresize`` (bicubic, in double precision, no rounding
   between the passes);
3. the upscaled Y is rounded to 8 bits, ``scale`` pixels are shaved, PSNR and SSIM as in the paper
   protocol.

Scoring bicubic outputs made from the RGB LR files instead (``srlab eval --model bicubic``) gives
slightly higher numbers (Set5 x4 28.430 / 0.8111): the difference is the degradation (RGB, rounded
after each pass), not the metric. This module reproduces the published rows to 0.01 dB, which proves
the resize and the metric against the literature's own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from srlab.data.datasets import discover_pairs, modcrop
from srlab.data.io import read_image
from srlab.data.resize import bicubic_downscale, imresize
from srlab.metrics.accumulator import mean_scores
from srlab.metrics.color import rgb_to_y
from srlab.metrics.psnr import psnr
from srlab.metrics.ssim import ssim


def _uint8(x: Tensor) -> Tensor:
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def legacy_luma(hr: Tensor, *, greyscale_file: bool) -> Tensor:
    """The (1, H, W) 8-bit luma the old scripts work on: Y of the uint8 image, or a grey file's values."""
    if greyscale_file:
        return _uint8(hr[:1].to(torch.float64))
    return _uint8(rgb_to_y(hr.to(torch.float64)))


def y_only_bicubic_scores(hr: Tensor, scale: int, *, greyscale_file: bool = False) -> dict[str, float]:
    """PSNR / SSIM of bicubic down-and-up on the luma of one mod-cropped HR image (RGB [0, 1], (3, H, W))."""
    y = legacy_luma(hr, greyscale_file=greyscale_file)
    low = imresize(y[None], scale=1 / scale)
    restored = _uint8(imresize(low, scale=scale)[0])
    a, b = restored * 255.0, y * 255.0
    return {
        "psnr_y8": float(psnr(a, b, data_range=255.0, crop_border=scale)),
        "ssim_y8": float(ssim(a, b, data_range=255.0, crop_border=scale)),
    }


@dataclass(frozen=True)
class LegacyBaseline:
    dataset: str
    scale: int
    psnr_y8: float
    ssim_y8: float
    images: int


def y_only_bicubic_baseline(folder: str | Path, scale: int) -> LegacyBaseline:
    """The published bicubic row of a benchmark folder (any layout ``discover_pairs`` reads; only HR is used)."""
    pairs = discover_pairs(folder, scale)
    per_image = []
    for pair in pairs.pairs:
        image = read_image(pair.hr)
        per_image.append(y_only_bicubic_scores(modcrop(image.rgb, scale), scale, greyscale_file=image.grayscale))
    means = mean_scores(per_image)
    return LegacyBaseline(pairs.name, scale, means["psnr_y8"], means["ssim_y8"], len(per_image))


def gtmod12_pairs(folder: str | Path, scale: int) -> list[tuple[str, Tensor, Tensor]]:
    """(name, LR, HR) of a benchmark folder under the ETDS authors' protocol (their table, paper-results
    §1b): BasicSR's "GTmod12" HR, cropped to a multiple of 12 rather than of the scale, with its LR made
    from that crop by the MATLAB bicubic downscaler. Feed them to ``srlab.inference.evaluate_images``;
    the scores are the usual Y PSNR / SSIM with ``scale`` pixels shaved."""
    pairs = []
    for pair in discover_pairs(folder, scale).pairs:
        hr = read_image(pair.hr).rgb
        h, w = hr.shape[-2:]
        hr = hr[..., : h - h % 12, : w - w % 12]
        pairs.append((pair.name, bicubic_downscale(hr, scale, quantize=True), hr))
    return pairs
