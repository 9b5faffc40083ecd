"""The evaluation protocol: the one definition of "PSNR/SSIM" that every srlab evaluation uses.

The paper protocol (``PAPER_PROTOCOL``) is the one of the SR literature, as RCAN's MATLAB script
``Evaluate_PSNR_SSIM.m`` computes it:

1. the SR output is rounded to 8-bit levels (what saving it as a PNG would do);
2. both images go to the Y channel of BT.601 YCbCr (MATLAB ``rgb2ycbcr`` on doubles), scaled by 255
   and kept as floats (Y is *not* rounded);
3. ``scale`` pixels are shaved from each side;
4. PSNR with peak 255, and Wang's SSIM (11x11 Gaussian, sigma 1.5, K = (0.01, 0.03), L = 255,
   'valid' filtering, no downsampling);
5. per-image values are averaged over the set (:class:`srlab.metrics.accumulator.ScoreAccumulator`).

Steps 1 and 3 (and the input checks) are :meth:`EvalProtocol.prepare`, the pair every registered
metric scores (:mod:`srlab.metrics.registry`); step 2 is :meth:`EvalProtocol.channels255`, the images
PSNR and SSIM compare; the other metrics (MS-SSIM, GMSD, FSIM on the Y channel; FSIMc, LPIPS, DISTS in
colour; NIQE on the SR image alone) score the same prepared pair.

Non-integer scales s (arbitrary-scale models, ``srlab eval --scale 2.5``): the HR image is cropped
(top-left anchored) to multiples of p, where s = p/q in lowest terms (2.5 -> 5, 2.7 -> 27;
:func:`srlab.data.datasets.modcrop`), so that the LR image, MATLAB's ``imresize(hr, 1/s, 'bicubic')``
(:func:`srlab.data.resize.bicubic_downscale`), is exactly H/s x W/s and covers the HR image exactly;
the model renders the HR size, and ``ceil(s)`` pixels are shaved from each side, as Meta-SR's test
does (``math.ceil(scale)``; LIIF shaves the scale too, on integer scales only). Everything else is
the same. Meta-SR crops 4 HR pixels where the size is not a multiple and LIIF crops to
``round(floor(H/s) * s)`` with PIL's resize, so neither's non-integer LR files are reproduced.

All arithmetic runs in float64 on the inputs' device. Two labelled variants: ``Y8_PROTOCOL``, the older
convention that rounds Y to 8 bits first (MATLAB ``rgb2ycbcr`` on uint8 images; keys ``psnr_y8``,
``ssim_y8``), and ``RGB_PROTOCOL``, all three channels (``psnr_rgb``, ``ssim_rgb``). The Y-only
bicubic pipeline that produced the bicubic rows copied across papers is in :mod:`srlab.metrics.legacy`.

LIIF's and LTE's published tables use their own test script (yinboc/liif ``utils.calc_psnr``, which LTE
keeps): the output clamped to [0, 1] and not rounded, per-image PSNR averaged; on the DIV2K validation
set all three channels with ``scale + 6`` pixels shaved (``LIIF_DIV2K_PROTOCOL``, ``psnr_rgb_liif``), on
the benchmark sets Y with ``scale`` pixels shaved (``LIIF_BENCHMARK_PROTOCOL``, ``psnr_y_liif``; its Y
weights 65.738/256, 129.057/256, 25.064/256 equal MATLAB's 65.481/255, 128.553/255, 24.966/255 to five
significant digits, so srlab's Y stands in for them). Their SSIM is srlab's (LIIF reports none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_y
from srlab.metrics.common import shave
from srlab.metrics.registry import PROTOCOL_METRICS, MetricSet


@dataclass(frozen=True)
class EvalProtocol:
    """How an SR output is scored against its ground truth.

    Attributes:
        crop_border: pixels shaved from each side; ``None`` means "the scale factor" (rounded up) plus
            ``border_offset``.
        border_offset: pixels shaved beyond the scale factor when ``crop_border`` is ``None`` (LIIF's
            DIV2K protocol shaves ``scale + 6``).
        channel: ``"y"`` (BT.601 luma, the paper protocol) or ``"rgb"`` (all three channels).
        round_output: round the SR output to 8-bit levels first, as saving it to PNG would.
        round_y: round Y to 8-bit levels too (both images), the older convention of scripts that
            call ``rgb2ycbcr`` on uint8 images; labelled ``y8`` in the score names.
        window_size, sigma, k1, k2: SSIM's Gaussian window and stabilising constants.
        tag: appended to the score names' suffix (``psnr_rgb_liif``), so that scores of protocols that
            differ in more than the channel never share a name.
    """

    crop_border: int | None = None
    border_offset: int = 0
    channel: Literal["y", "rgb"] = "y"
    round_output: bool = True
    round_y: bool = False
    window_size: int = 11
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03
    tag: str = ""

    def __post_init__(self) -> None:
        if self.channel not in ("y", "rgb"):
            raise SrlabError(f"EvalProtocol.channel must be 'y' or 'rgb', got {self.channel!r}")
        if self.crop_border is not None and self.crop_border < 0:
            raise SrlabError(f"EvalProtocol.crop_border must be >= 0 or None, got {self.crop_border}")
        if self.border_offset < 0:
            raise SrlabError(f"EvalProtocol.border_offset must be >= 0, got {self.border_offset}")
        if self.round_y and self.channel != "y":
            raise SrlabError("EvalProtocol.round_y applies to the Y channel: use channel='y'")

    @property
    def label(self) -> str:
        """``y``, ``y8`` (Y rounded to 8 bits) or ``rgb``, then ``_<tag>`` if tagged: the suffix of the score names."""
        base = "y8" if self.round_y else self.channel
        return f"{base}_{self.tag}" if self.tag else base

    @property
    def keys(self) -> tuple[str, ...]:
        """The names of the scores :meth:`score` returns, ``("psnr_y", "ssim_y")`` for the paper protocol."""
        return MetricSet(PROTOCOL_METRICS).keys(self)

    def border(self, scale: float) -> int:
        return math.ceil(scale) + self.border_offset if self.crop_border is None else self.crop_border

    def prepare(self, sr: Tensor, hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
        """The pair every metric scores: (3, H, W) float64 on the inputs' device, the SR image clamped to
        [0, 1] and rounded to 8-bit levels (``round_output``), ``border(scale)`` pixels shaved from each side.

        ``sr`` and ``hr`` are (3, H, W) or (1, H, W) float tensors in [0, 1] on any device, of the
        same size (mod-crop the HR image to a multiple of ``scale`` first). A (1, H, W) image is a
        grey picture, given as R = G = B.
        """
        sr_img, hr_img = self._prepare(sr, "sr"), self._prepare(hr, "hr")
        if sr_img.shape != hr_img.shape:
            raise SrlabError(
                f"SR and HR images differ in size: sr {tuple(sr.shape)} vs hr {tuple(hr.shape)}; "
                f"mod-crop the HR image to a multiple of the scale ({scale}) before scoring"
            )
        border = self.border(scale)
        h, w = sr_img.shape[-2:]
        if min(h, w) - 2 * border < self.window_size:
            raise SrlabError(
                f"a {h}x{w} image is too small to score: after shaving {border} pixels per side "
                f"it is smaller than the {self.window_size}x{self.window_size} SSIM window"
            )
        # The SR image in the displayable range (every test script clamps), as saved to an 8-bit PNG
        # (MATLAB im2uint8) when rounding.
        sr_img = sr_img.clamp(0.0, 1.0)
        if self.round_output:
            sr_img = _round_8bit(sr_img)
        if sr_img.shape[0] == 1:
            sr_img, hr_img = sr_img.expand(3, h, w), hr_img.expand(3, h, w)
        return shave(sr_img, border), shave(hr_img, border)

    def channels255(self, x: Tensor) -> Tensor:
        """What PSNR and SSIM compare of a prepared image, in the 0..255 domain of the MATLAB scripts:
        its Y (rounded to 8-bit levels when ``round_y``) or its three channels."""
        if self.channel == "y":
            x = rgb_to_y(x)
            if self.round_y:
                x = _round_8bit(x)
        return x * 255.0

    def score(self, sr: Tensor, hr: Tensor, scale: int) -> dict[str, float]:
        """PSNR and SSIM of one SR image against its HR image (see :meth:`prepare` for the inputs)."""
        return MetricSet(PROTOCOL_METRICS).score(*self.prepare(sr, hr, scale), self)

    @staticmethod
    def _prepare(x: Tensor, name: str) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[0] not in (1, 3):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise SrlabError(f"{name} must be a (3, H, W) or (1, H, W) tensor, got {shape}")
        if not x.is_floating_point():
            raise SrlabError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
        # float64 for reference-grade numbers; MPS has no float64, so score there on the CPU.
        if x.device.type == "mps":
            x = x.cpu()
        return x.detach().to(torch.float64)


def _round_8bit(x: Tensor) -> Tensor:
    """8-bit levels, rounding half away from zero (MATLAB's uint8 conversion); values are >= 0 here."""
    return torch.floor(x * 255.0 + 0.5) / 255.0


PAPER_PROTOCOL = EvalProtocol()
Y8_PROTOCOL = EvalProtocol(round_y=True)
RGB_PROTOCOL = EvalProtocol(channel="rgb")
LIIF_DIV2K_PROTOCOL = EvalProtocol(channel="rgb", round_output=False, border_offset=6, tag="liif")
LIIF_BENCHMARK_PROTOCOL = EvalProtocol(round_output=False, tag="liif")
PROTOCOLS = {
    "y": PAPER_PROTOCOL, "y8": Y8_PROTOCOL, "rgb": RGB_PROTOCOL,
    "liif-div2k": LIIF_DIV2K_PROTOCOL, "liif-benchmark": LIIF_BENCHMARK_PROTOCOL,
}
