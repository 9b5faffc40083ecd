"""The sub-image protocol of ClassSR's training data: crop HR images into overlapping sub-images, and
divide the sub-images into difficulty classes by the PSNR a reference SR network reaches on them.

Official: XPixelGroup/ClassSR ``codes/data_scripts/extract_subimages_train.py`` (HR sub-images of
128x128, step 64; when more than 48 pixels remain past the last whole crop, one more crop flush with
the border; file names ``<stem>_s001.png``, ... row by row) and ``divide_sub_images_train.py`` (PSNR
thresholds 27.16882 and 35.149761 dB: below the first "hard" = class 3, from the second on "simple" =
class 1, between them class 2). The PSNRs there come from the authors' test log of a reference network
(the released ``divide_train.log``); here they are computed: the LR sub-image is made with srlab's
degradation D (MATLAB bicubic, 8-bit), the reference network's output is clamped and rounded to 8
bits, and the PSNR is taken on RGB with a border of ``scale`` pixels, as the official ``test.py`` logs
it. (Officially the LR sub-images are cropped from the LR image of the whole picture, which differs
from D of the HR sub-image in the few LR pixels next to the sub-image's border.)

``srlab data subimages`` and ``srlab data classsr-split`` run these on folders.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from srlab.data.datasets import modcrop
from srlab.data.io import list_images, read_rgb, write_image
from srlab.data.resize import bicubic_downscale
from srlab.errors import SrlabError
from srlab.fileio import atomic_path, atomic_write_bytes

#: The official class thresholds (dB): PSNR < 27.16882 -> class 3 (hard), >= 35.149761 -> class 1 (simple).
CLASSSR_THRESHOLDS = (27.16882, 35.149761)


def crop_origins(length: int, crop: int, step: int, min_rest: int) -> list[int]:
    """Where the crops along a side of ``length`` start (official ``h_space``); [] when no crop fits."""
    if length < crop:
        return []
    origins = list(range(0, length - crop + 1, step))
    if length - (origins[-1] + crop) > min_rest:
        origins.append(length - crop)
    return origins


@dataclass(frozen=True)
class ExtractReport:
    written: int
    # Images smaller than one crop (the official script fails on them).
    skipped: tuple[str, ...]
    # Images that could not be read: (name, the one-line reason); the others are processed.
    failed: tuple[tuple[str, str], ...] = ()


def extract_subimages(hr_dir: str | Path, out_dir: str | Path, *, crop: int = 128, step: int = 64,
                      min_rest: int = 48) -> ExtractReport:
    """Crop every image of ``hr_dir`` into ``crop`` x ``crop`` sub-images written to ``out_dir`` as PNG."""
    if not 1 <= step <= crop or min_rest < 0:
        raise SrlabError(f"sub-images: need 1 <= step <= crop and min_rest >= 0, got crop {crop}, step {step}, "
                         f"min_rest {min_rest}")
    sources = _images(hr_dir)
    out = _output_folder(out_dir, hr_dir)
    written, skipped, failed = 0, [], []
    for path in sources:
        try:
            image = read_rgb(path)
        except SrlabError as e:
            failed.append((path.name, str(e)))
            continue
        tops = crop_origins(image.shape[-2], crop, step, min_rest)
        lefts = crop_origins(image.shape[-1], crop, step, min_rest)
        if not tops or not lefts:
            skipped.append(path.name)
            continue
        index = 0
        for top in tops:
            for left in lefts:
                index += 1
                write_image(out / f"{path.stem}_s{index:03d}.png", image[:, top:top + crop, left:left + crop])
                written += 1
    return ExtractReport(written, tuple(skipped), tuple(failed))


@torch.no_grad()
def reference_psnr(model: nn.Module, hr: torch.Tensor, scale: int) -> float:
    """PSNR (dB, RGB, border ``scale``) of ``model``'s 8-bit output on D(``hr``) against ``hr`` (modcropped)."""
    hr = modcrop(hr, scale)
    lr = bicubic_downscale(hr, scale, quantize=True)
    sr = torch.round(model(lr[None])[0].clamp(0, 1) * 255) / 255
    # (srlab.metrics.psnr is a floor above the data layer; this is its formula on the cropped pair)
    inner = (..., slice(scale, -scale), slice(scale, -scale))
    mse = float((sr[inner].double() - hr[inner].double()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def difficulty_class(value: float, thresholds: tuple[float, float] = CLASSSR_THRESHOLDS) -> int:
    """1 (simple), 2 or 3 (hard), as the official ``divide_sub_images_train.py``."""
    low, high = thresholds
    return 3 if value < low else 2 if value < high else 1


@dataclass(frozen=True)
class SplitReport:
    counts: tuple[int, int, int]  # sub-images in class 1, 2, 3
    psnr: dict[str, float]
    # Images that could not be read: (name, the one-line reason); the others are processed.
    failed: tuple[tuple[str, str], ...] = ()


def split_by_difficulty(hr_dir: str | Path, out_dir: str | Path, *, model: nn.Module, scale: int,
                        thresholds: tuple[float, float] = CLASSSR_THRESHOLDS) -> SplitReport:
    """Copy every image of ``hr_dir`` into ``out_dir/class1``, ``class2`` or ``class3`` by the PSNR that
    ``model`` (an x ``scale`` SR network, in eval mode) reaches on it; ``out_dir/psnr.csv`` lists them."""
    if not thresholds[0] <= thresholds[1]:
        raise SrlabError(f"class thresholds must be increasing (hard/medium, medium/simple), got {thresholds}")
    sources = _images(hr_dir)
    out = _output_folder(out_dir, hr_dir)
    folders = [out / f"class{k}" for k in (1, 2, 3)]
    for folder in folders:
        folder.mkdir(exist_ok=True)
    counts, values, table = [0, 0, 0], {}, io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["name", "psnr", "class"])
    failed = []
    for path in sources:
        try:
            image = read_rgb(path)
        except SrlabError as e:
            failed.append((path.name, str(e)))
            continue
        value = reference_psnr(model, image, scale)
        label = difficulty_class(value, thresholds)
        with atomic_path(folders[label - 1] / path.name) as tmp:
            shutil.copyfile(path, tmp)
        counts[label - 1] += 1
        values[path.name] = value
        writer.writerow([path.name, f"{value:.6f}", label])
    atomic_write_bytes(out / "psnr.csv", table.getvalue().encode())
    return SplitReport(tuple(counts), values, tuple(failed))


def _images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SrlabError(f"'{folder}' is not a folder of images: give the folder of HR (sub-)images")
    images = list_images(folder)
    if not images:
        raise SrlabError(f"no images in '{folder}': give the folder of HR (sub-)images")
    return images


def _output_folder(out_dir: str | Path, source: str | Path) -> Path:
    out = Path(out_dir)
    if out.resolve() == Path(source).resolve():
        raise SrlabError(f"the output folder '{out}' is the input folder: give another --out (inputs are never overwritten)")
    if out.exists() and not out.is_dir():
        raise SrlabError(f"the output '{out}' is a file: give a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out
