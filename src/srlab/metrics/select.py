"""Metrics by name, for ``srlab eval --metrics`` and ``srlab benchmark``.

PSNR and SSIM always come from the evaluation protocol (``srlab.metrics.protocol``); the others are
scored on the same pair the protocol sees: the SR output rounded to 8-bit levels (as saved) against
its HR image, ``scale`` pixels shaved from each side, on the luma (MS-SSIM, GMSD, FSIM) or in colour
(FSIMc). Learned metrics (LPIPS, DISTS) need weight files and are used from Python
(``srlab.metrics.LPIPS``, ``srlab.metrics.DISTS``); any callable joins through ``TaskMetric``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from srlab.errors import SrlabError
from srlab.metrics.fsim import fsim, fsimc
from srlab.metrics.gmsd import gmsd
from srlab.metrics.ms_ssim import ms_ssim

# name -> f(sr, hr, scale) on (3, H, W) float images in [0, 1]
_EXTRA: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "ms_ssim": lambda sr, hr, s: ms_ssim(sr, hr, channel="y", crop_border=s),
    "gmsd": lambda sr, hr, s: gmsd(sr, hr, crop_border=s),
    "fsim": lambda sr, hr, s: fsim(hr, sr, crop_border=s),
    "fsimc": lambda sr, hr, s: fsimc(hr, sr, crop_border=s),
}
PROTOCOL_METRICS = ("psnr", "ssim")
METRIC_NAMES = PROTOCOL_METRICS + tuple(_EXTRA)


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"psnr,ssim,gmsd"`` -> the extra metrics to compute, ``("gmsd",)``; unknown names are errors."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise SrlabError(
            f"unknown metric {', '.join(map(repr, unknown))}: choose from {', '.join(METRIC_NAMES)} "
            "(LPIPS, DISTS and NIQE need weight files: use them from Python, srlab.metrics)"
        )
    return tuple(dict.fromkeys(n for n in names if n not in PROTOCOL_METRICS))


def extra_scores(names: Sequence[str], sr: Tensor, hr: Tensor, scale: int) -> dict[str, float]:
    """The named extra metrics of one SR image (rounded to 8-bit levels first, as the protocol does)."""
    if not names:
        return {}
    sr8 = torch.floor(sr.detach().to(torch.float64).clamp(0, 1) * 255 + 0.5) / 255
    hr64 = hr.detach().to(torch.float64)
    if sr8.shape[0] == 1:  # a grey picture
        sr8, hr64 = sr8.expand(3, *sr8.shape[1:]), hr64.expand(3, *hr64.shape[1:])
    return {name: float(_EXTRA[name](sr8, hr64, scale)) for name in names}
