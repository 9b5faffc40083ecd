"""The demo behind ``make demo``: upscale a bundled photo with srlab's bundled weights, offline.

The photo (``assets/chelsea.png``, CC0, see ``assets/LICENSES.md``) is cropped to a multiple of the
scale, downscaled with the MATLAB bicubic degradation, and super-resolved by bicubic interpolation and
by the default model with its bundled weights. The demo writes the LR input, both results, the ground
truth and a side-by-side comparison with a zoomed crop, and returns PSNR/SSIM (Y, paper protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srlab.data.datasets import modcrop
from srlab.data.io import SAMPLE_PHOTO, sample_photo, write_image
from srlab.data.resize import bicubic_downscale, bicubic_upscale
from srlab.inference.compare import save_comparison
from srlab.inference.upscale import upscale_tensor
from srlab.metrics.protocol import PAPER_PROTOCOL
from srlab.models.create import DEFAULT_MODEL, create_model


@dataclass
class DemoResult:
    model: str
    scale: int
    bicubic: dict[str, float]
    sr: dict[str, float]
    out_dir: Path
    files: list[Path]


def run_demo(out_dir: str | Path, *, scale: int = 4, model_name: str = DEFAULT_MODEL) -> DemoResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = create_model(model_name, scale=scale, pretrained=True)
    hr = modcrop(sample_photo(), scale)
    lr = bicubic_downscale(hr, scale, quantize=True)
    bicubic = bicubic_upscale(lr, scale, quantize=True)
    sr = upscale_tensor(model, lr).clamp(0, 1)
    files = []
    for label, image in (("lr", lr), ("bicubic", bicubic), (model_name, sr), ("hr", hr)):
        files.append(out_dir / f"{SAMPLE_PHOTO}_x{scale}_{label}.png")
        write_image(files[-1], image)
    bicubic_scores = PAPER_PROTOCOL.score(bicubic, hr, scale)
    sr_scores = PAPER_PROTOCOL.score(sr, hr, scale)
    files.append(out_dir / f"{SAMPLE_PHOTO}_x{scale}_comparison.png")
    save_comparison(
        files[-1],
        [
            (f"bicubic x{scale}: {bicubic_scores['psnr_y']:.2f} dB", bicubic),
            (f"srlab {model_name} x{scale}: {sr_scores['psnr_y']:.2f} dB", sr),
            ("ground truth", hr),
        ],
    )
    return DemoResult(model_name, scale, bicubic_scores, sr_scores, out_dir, files)
