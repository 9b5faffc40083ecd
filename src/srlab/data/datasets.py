"""Folder datasets in the three layouts SR users have, and the training patch sampler.

Layouts (``discover_pairs`` tells them apart):

- benchmark (EDSR convention): ``Set5/HR/*.png`` + ``Set5/LR_bicubic/X2/<name>x2.png`` (or ``<name>.png``);
- DIV2K: ``DIV2K_train_HR/0001.png`` + ``DIV2K_train_LR_bicubic/X2/0001x2.png`` (point at the ``_HR``
  folder or at the folder holding it);
- HR only: a folder of images; the LR images are made with the degradation ``D`` (MATLAB bicubic).

HR images are cropped to a multiple of the scale (top-left anchored, MATLAB's ``modcrop``), as papers do.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from srlab.data.degrade import Degradation, sample_rng
from srlab.data.degrade.usm import usm_sharpen
from srlab.data.io import IMAGE_EXTENSIONS, list_images, read_rgb
from srlab.data.resize import bicubic_downscale, imresize
from srlab.errors import SrlabError


@dataclass(frozen=True)
class ImagePair:
    name: str
    hr: Path
    # None: the LR image is made from the HR image with the degradation D.
    lr: Path | None


@dataclass(frozen=True)
class PairedFolder:
    name: str
    layout: str  # "benchmark", "div2k" or "hr_only"
    pairs: tuple[ImagePair, ...]


def discover_pairs(root: str | Path, scale: int, *, lr_dir: str | Path | None = None) -> PairedFolder:
    """The (HR, LR) pairs of a folder in one of the three layouts. ``lr_dir``: the LR images are read from
    there (``<name>x{scale}.png`` or ``<name>.png``, e.g. what ``srlab degrade`` writes) instead of the
    layout's ``LR_bicubic/X{scale}`` or bicubic downscaling; the set is then named ``<set>/<lr_dir's name>``."""
    root = Path(root)
    if not root.exists():
        raise SrlabError(f"data folder '{root}' does not exist: check the path")
    if not root.is_dir():
        raise SrlabError(f"'{root}' is not a folder: pass a folder of images")
    if lr_dir is not None:
        return _with_given_lr_folder(discover_pairs(root, scale), Path(lr_dir), scale)
    if (root / "HR").is_dir():
        return _with_lr_folder(root.name, "benchmark", root / "HR", root / "LR_bicubic" / f"X{scale}", scale)
    if root.name.endswith("_HR"):
        lr_root = root.parent / f"{root.name[:-3]}_LR_bicubic" / f"X{scale}"
        return _with_lr_folder(root.name[:-3], "div2k", root, lr_root, scale)
    hr_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.endswith("_HR"))
    if len(hr_dirs) == 1:
        return discover_pairs(hr_dirs[0], scale)
    if len(hr_dirs) > 1:
        raise SrlabError(
            f"'{root}' holds several HR folders ({', '.join(p.name for p in hr_dirs)}): pass one of them"
        )
    hr_images = list_images(root)
    return PairedFolder(root.name, "hr_only", tuple(ImagePair(p.stem, p, None) for p in hr_images))


def _with_given_lr_folder(folder: PairedFolder, lr_dir: Path, scale: int) -> PairedFolder:
    if not lr_dir.is_dir():
        raise SrlabError(f"LR folder '{lr_dir}' does not exist or is not a folder: check --lr_dir")
    hr_images = [pair.hr for pair in folder.pairs]
    paired = _lr_pairs(hr_images, lr_dir, scale, fix="add it, or give the LR folder that matches the HR images")
    return PairedFolder(f"{folder.name}/{lr_dir.name}", folder.layout, paired)


def _lr_pairs(hr_images: list[Path], lr_dir: Path, scale: int, *, fix: str) -> tuple[ImagePair, ...]:
    lr_by_stem = {p.stem: p for p in lr_dir.iterdir() if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS}
    pairs = []
    for hr in hr_images:
        lr = lr_by_stem.get(f"{hr.stem}x{scale}") or lr_by_stem.get(hr.stem)
        if lr is None:
            raise SrlabError(
                f"no LR image for '{hr}' in '{lr_dir}' (expected {hr.stem}x{scale}.png or {hr.stem}.png): {fix}"
            )
        pairs.append(ImagePair(hr.stem, hr, lr))
    return tuple(pairs)


def _with_lr_folder(name: str, layout: str, hr_dir: Path, lr_dir: Path, scale: int) -> PairedFolder:
    hr_images = list_images(hr_dir)
    if not lr_dir.is_dir():
        return PairedFolder(name, "hr_only", tuple(ImagePair(p.stem, p, None) for p in hr_images))
    fix = "add it, or remove the LR folder to make LR images with bicubic downscaling"
    return PairedFolder(name, layout, _lr_pairs(hr_images, lr_dir, scale, fix=fix))


def crop_multiple(scale: float) -> int:
    """The HR sizes that pair with an LR image at ``scale`` are the multiples of this number: ``scale``
    itself for an integer scale, the numerator ``p`` of ``scale = p/q`` (lowest terms, q <= 100:
    2.5 -> 5, 2.7 -> 27) otherwise, so that ``H / scale`` is a whole number of LR pixels."""
    if float(scale).is_integer():
        return int(scale)
    ratio = Fraction(scale).limit_denominator(100)
    if float(ratio) != scale:
        raise SrlabError(f"scale {scale} is not a ratio p/q with q <= 100: use a scale with at most two decimals")
    return ratio.numerator


def modcrop(image: torch.Tensor, scale: float) -> torch.Tensor:
    """Crop to multiples of :func:`crop_multiple` (top-left anchored): MATLAB's ``modcrop`` for
    integer scales, its generalisation to real ones (the evaluation protocol, srlab.metrics.protocol)."""
    multiple = crop_multiple(scale)
    height, width = image.shape[-2:]
    return image[..., : height - height % multiple, : width - width % multiple]


def load_pair(pair: ImagePair, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) as float (3,H,W) in [0, 1]; HR modcropped, LR read or made with D (MATLAB, 8-bit)."""
    hr = modcrop(read_rgb(pair.hr), scale)
    if pair.lr is None:
        return bicubic_downscale(hr, scale, quantize=True), hr
    lr = read_rgb(pair.lr)
    expected = (round(hr.shape[-2] / scale), round(hr.shape[-1] / scale))
    if tuple(lr.shape[-2:]) != expected:
        raise SrlabError(
            f"LR image '{pair.lr}' is {lr.shape[-1]}x{lr.shape[-2]} but its HR image '{pair.hr}' "
            f"needs {expected[1]}x{expected[0]} at x{scale}: check the scale or the files"
        )
    return lr, hr


def downscaled_pair(hr: torch.Tensor, factor: float, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) of the HR image ``hr`` first downscaled by ``factor`` in (0, 1) (MATLAB bicubic, 8-bit) and
    modcropped: the same photo at a smaller content scale, denser in detail per pixel. Calibration data for
    the routers (more kinds of patches from the same photos); the LR is made with D as :func:`load_pair`'s."""
    if not 0 < factor < 1:
        raise SrlabError(f"downscale factor {factor} must be between 0 and 1 (exclusive)")
    small = modcrop(imresize(hr, scale=factor, quantize=True), scale)
    return bicubic_downscale(small, scale, quantize=True), small


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.mul(255).round_().clamp_(0, 255).to(torch.uint8)


class PatchDataset(Dataset):
    """Random aligned LR/HR patches with flips and 90-degree rotations.

    Images are decoded (and LR images made) once, at construction, and held as uint8. An item's
    randomness comes from its index alone (see :class:`EpochSampler`), so a run is reproducible
    whatever the number of loader workers and however often it is interrupted and resumed.

    With a ``degradation`` (srlab.data.degrade) only the HR images are read, and each item's LR patch
    is made from its HR patch (after the flips) by δ drawn from ``(seed, index)``: the index counts
    the epochs too, so every epoch degrades differently and a resumed run draws the same δ
    (:meth:`delta`). Real-ESRGAN degrades a 400x400 crop and then crops the LR image; here the patch
    itself is degraded, so its blur and resizes see the patch's mirrored borders (and so does the USM
    sharpening of ``gt_usm``, which then sharpens the target too).
    """

    def __init__(
        self, pairs: tuple[ImagePair, ...], *, scale: int, patch_size: int, repeat: int = 1, seed: int = 0,
        augment: bool = True, degradation: Degradation | None = None,
    ) -> None:
        if patch_size % scale != 0:
            raise SrlabError(
                f"--patch_size {patch_size} is not divisible by the scale {scale}: "
                f"use a multiple of {scale}, e.g. {max(scale, patch_size // scale * scale)}"
            )
        if not pairs:
            raise SrlabError("the training folder has no images")
        self.scale, self.patch_size, self.repeat, self.seed, self.augment = scale, patch_size, repeat, seed, augment
        self.degradation = degradation
        # (LR, HR) as uint8; no LR image with a degradation.
        self.images: list[tuple[torch.Tensor | None, torch.Tensor]] = []
        for pair in pairs:
            lr, hr = (None, modcrop(read_rgb(pair.hr), scale)) if degradation else load_pair(pair, scale)
            if min(hr.shape[-2:]) < patch_size:
                raise SrlabError(
                    f"training image '{pair.hr}' ({hr.shape[-1]}x{hr.shape[-2]}) is smaller than "
                    f"--patch_size {patch_size}: lower the patch size or remove the image"
                )
            self.images.append((None if lr is None else _to_uint8(lr), _to_uint8(hr)))

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def delta(self, index: int) -> list[dict]:
        """The δ operations that degrade item ``index`` (with a degradation)."""
        return self.degradation.sample(sample_rng(self.seed, index), (self.patch_size, self.patch_size))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr = self.images[index % len(self.images)]
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        s = self.scale
        lr_patch = self.patch_size // s
        top = int(torch.randint(0, hr.shape[-2] // s - lr_patch + 1, (1,), generator=rng))
        left = int(torch.randint(0, hr.shape[-1] // s - lr_patch + 1, (1,), generator=rng))
        patches = [hr[:, top * s:(top + lr_patch) * s, left * s:(left + lr_patch) * s]]
        if lr is not None:
            patches.append(lr[:, top:top + lr_patch, left:left + lr_patch])
        if self.augment:
            hflip, vflip, transpose = torch.rand(3, generator=rng) < 0.5
            if hflip:
                patches = [p.flip(-1) for p in patches]
            if vflip:
                patches = [p.flip(-2) for p in patches]
            if transpose:  # with the flips, this gives all eight 90-degree rotations and reflections
                patches = [p.transpose(-1, -2) for p in patches]
        hr = patches[0].float().div_(255)
        if self.degradation is None:
            return patches[1].float().div_(255), hr
        if self.degradation.gt_usm:
            hr = usm_sharpen(hr)
        return self.degradation(hr, sample_rng(self.seed, index))[0], hr


class EpochSampler(Sampler[int]):
    """A fresh permutation per epoch, seeded by (seed, epoch); indices are offset by the epoch so that
    every item of every epoch draws different crops, reproducibly.

    With ``world_size`` > 1 (data-parallel training) every rank draws the same permutation and takes
    every ``world_size``-th sample of it from position ``rank``: the ranks' slices are disjoint, and the
    ``world_size`` per-rank batches of one step hold exactly the samples of one global batch of a single
    process. Each rank gets the same number of samples (the last ``< world_size`` are dropped), so every
    rank runs the same number of steps. ``start`` counts global samples, so a position saved by a run
    on N processes resumes on any other number."""

    def __init__(self, length: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise SrlabError(f"EpochSampler: rank {rank} is not in [0, world_size {world_size})")
        if length < world_size:
            raise SrlabError(
                f"{length} training samples cannot be shared by {world_size} processes: "
                "raise data.repeat or use fewer processes"
            )
        self.length, self.seed, self.epoch, self.start = length, seed, 0, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        """Select the epoch; ``start`` skips its first samples, counted over all ranks (resuming in the
        middle of an epoch)."""
        if start % self.world_size:
            raise SrlabError(f"EpochSampler: start {start} is not a multiple of world_size {self.world_size}")
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return (self.length - self.start) // self.world_size

    def __iter__(self):
        rng = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.length, generator=rng)[self.start:]
        order = order[self.rank::self.world_size][: len(self)]
        offset = self.epoch * self.length
        return iter((offset + order).tolist())
