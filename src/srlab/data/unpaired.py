"""Unpaired training patches: HR patches from one set of images, LR patches from another.

For weakly supervised SR (``step: unpaired``) the LR images come from the target domain (an unknown
degradation) and no HR image matches them. An item is an (LR patch, HR patch) pair drawn independently: the
HR patch from HR image ``index mod N``, the LR patch from an LR image drawn at random; both crops and their
flips/rotations come from the index alone (as :class:`srlab.data.datasets.PatchDataset`), so a resumed run
sees what the uninterrupted one would.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from srlab.data.datasets import _to_uint8, modcrop
from srlab.data.io import list_images, read_rgb
from srlab.errors import SrlabError


def _load(paths: list[Path], side: int, flag: str, scale: int | None = None) -> list[torch.Tensor]:
    images = []
    for path in paths:
        image = read_rgb(path)
        if scale is not None:
            image = modcrop(image, scale)
        if min(image.shape[-2:]) < side:
            raise SrlabError(
                f"{flag} image '{path}' ({image.shape[-1]}x{image.shape[-2]}) is smaller than its {side}-pixel "
                "patches: lower --patch_size or remove the image"
            )
        images.append(_to_uint8(image))
    return images


def _crop(image: torch.Tensor, side: int, rng: torch.Generator, augment: bool) -> torch.Tensor:
    top = int(torch.randint(0, image.shape[-2] - side + 1, (1,), generator=rng))
    left = int(torch.randint(0, image.shape[-1] - side + 1, (1,), generator=rng))
    patch = image[:, top:top + side, left:left + side]
    if augment:
        hflip, vflip, transpose = torch.rand(3, generator=rng) < 0.5
        if hflip:
            patch = patch.flip(-1)
        if vflip:
            patch = patch.flip(-2)
        if transpose:
            patch = patch.transpose(-1, -2)
    return patch.float().div_(255)


class UnpairedPatchDataset(Dataset):
    """(LR patch, HR patch) drawn independently from ``lr_dir`` and ``hr_paths`` (module docstring)."""

    def __init__(
        self, hr_paths: list[Path], lr_dir: str | Path, *, scale: int, patch_size: int, repeat: int = 1,
        seed: int = 0, augment: bool = True,
    ) -> None:
        if patch_size % scale:
            raise SrlabError(f"--patch_size {patch_size} is not divisible by the scale {scale}")
        lr_dir = Path(lr_dir)
        if not lr_dir.is_dir():
            raise SrlabError(f"--unpaired_lr_dir '{lr_dir}' is not a folder: pass a folder of LR images")
        lr_paths = list_images(lr_dir)
        if not lr_paths:
            raise SrlabError(f"--unpaired_lr_dir '{lr_dir}' holds no images")
        if not hr_paths:
            raise SrlabError("the training folder has no images")
        self.scale, self.patch_size, self.repeat, self.seed, self.augment = scale, patch_size, repeat, seed, augment
        self.hr_images = _load(hr_paths, patch_size, "training HR", scale)
        self.lr_images = _load(lr_paths, patch_size // scale, "--unpaired_lr_dir")

    def __len__(self) -> int:
        return len(self.hr_images) * self.repeat

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        hr = _crop(self.hr_images[index % len(self.hr_images)], self.patch_size, rng, self.augment)
        lr_image = self.lr_images[int(torch.randint(0, len(self.lr_images), (1,), generator=rng))]
        return _crop(lr_image, self.patch_size // self.scale, rng, self.augment), hr
