"""The demo behind ``make demo``: train a small rdsr for about a minute and upscale a photo.

Until srlab bundles pretrained weights, the demo trains its own: photographs that scikit-image ships
(``skimage.data``) are written to a folder, a small ``rdsr_s`` is trained on them with the ordinary
training loop, and a held-out photo (``skimage.data.chelsea``, the cat) is downscaled with the MATLAB
bicubic degradation and super-resolved. It writes the images and a side-by-side comparison, and prints
PSNR/SSIM (Y) of bicubic and of the model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srlab.data.datasets import modcrop
from srlab.data.io import write_image
from srlab.data.resize import bicubic_downscale, bicubic_upscale
from srlab.errors import SrlabError
from srlab.inference.compare import save_comparison
from srlab.inference.upscale import upscale_tensor
from srlab.metrics.protocol import PAPER_PROTOCOL
from srlab.models.create import create_model
from srlab.train.config import TrainConfig
from srlab.train.trainer import train

TRAIN_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "brick", "gravel")
VAL_PHOTOS = ("coffee",)
TEST_PHOTO = "chelsea"


@dataclass
class DemoResult:
    bicubic: dict[str, float]
    model: dict[str, float]
    out_dir: Path


def _skimage_photo(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError:
        raise SrlabError("the demo uses scikit-image's sample photos: pip install scikit-image") from None
    return getattr(skimage.data, name)()


def _write_photos(folder: Path, names: tuple[str, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(_skimage_photo(name)).convert("RGB").save(folder / f"{name}.png")


def run_demo(
    out_dir: str | Path, *, scale: int = 2, epochs: int = 4, repeat: int = 240, seed: int = 0, progress: bool = True
) -> DemoResult:
    """Train on the sample photos (``repeat`` patches per photo and epoch) and upscale the test photo."""
    out_dir = Path(out_dir)
    data = out_dir / "data"
    _write_photos(data / "train", TRAIN_PHOTOS)
    _write_photos(data / "val", VAL_PHOTOS)
    config = TrainConfig(scale=scale, epochs=epochs, seed=seed, out=str(out_dir / "run"))
    config.model.name = "rdsr_s"
    config.data.train_dir, config.data.val_dir = str(data / "train"), str(data / "val")
    # 7 photos x 240 patches / 16 = 105 iterations per epoch, ~14 per second on 2 cores.
    config.data.patch_size, config.data.batch_size, config.data.repeat = 24 * scale, 16, repeat
    config.optim.lr = 1e-3
    if (out_dir / "run" / "state.pt").exists():
        shutil.rmtree(out_dir / "run")  # the demo's own previous run: every demo trains afresh
    train(config, progress=progress)

    model = create_model(checkpoint=out_dir / "run" / "best.safetensors")
    hr = modcrop(torch.from_numpy(_skimage_photo(TEST_PHOTO)).permute(2, 0, 1).float() / 255, scale)
    lr = bicubic_downscale(hr, scale, quantize=True)
    bicubic = bicubic_upscale(lr, scale, quantize=True)
    sr = upscale_tensor(model, lr).clamp(0, 1)
    for name, image in (("hr", hr), ("lr", lr), ("bicubic", bicubic), ("srlab", sr)):
        write_image(out_dir / f"{TEST_PHOTO}_{name}.png", image)
    bicubic_scores = PAPER_PROTOCOL.score(bicubic, hr, scale)
    model_scores = PAPER_PROTOCOL.score(sr, hr, scale)
    save_comparison(
        out_dir / "comparison.png",
        [
            (f"bicubic {bicubic_scores['psnr_y']:.2f} dB", bicubic),
            (f"srlab rdsr_s {model_scores['psnr_y']:.2f} dB", sr),
            ("ground truth", hr),
        ],
    )
    return DemoResult(bicubic_scores, model_scores, out_dir)
