"""Image categories read from sub-folder names (``data.labels: folders``, multi-task training).

With labels, the training and the validation folder each hold one sub-folder per category (``photo/``,
``text/``, ...), each a folder of images in any layout :func:`srlab.data.datasets.discover_pairs` reads.
The class list is the sorted union of both folders' category names, so that the index of a category is
the same in every run on the same data; every training category must have validation images (else its
accuracy could never be measured). A flat folder (images and no sub-folders) or an empty category is a
one-line :class:`~srlab.errors.SrlabError` naming the folder and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from srlab.data.datasets import ImagePair, PairedFolder, discover_pairs
from srlab.data.io import is_image_file
from srlab.errors import SrlabError


@dataclass(frozen=True)
class LabelledFolder:
    """A folder's image pairs, category by category, and the class index of each pair."""

    folder: PairedFolder
    labels: tuple[int, ...]


def category_folders(root: str | Path, key: str) -> list[Path]:
    """The category sub-folders of ``root`` (``key``: the config key that named it, for the message)."""
    root = Path(root)
    if not root.is_dir():
        raise SrlabError(f"{key} '{root}' is not a folder: pass a folder with one sub-folder per category")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise SrlabError(
            f"{key} '{root}' has no category sub-folders, which data.labels: folders reads the labels from: "
            "put each category's images in a sub-folder named after it (e.g. photo/, text/), or set data.labels to ''"
        )
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and is_image_file(p.name))
    if loose:
        raise SrlabError(
            f"{key} '{root}': image '{loose[0]}' is in no category sub-folder: move it into the sub-folder of its "
            "category (data.labels: folders reads the labels from the sub-folders' names)"
        )
    return folders


def label_classes(train_dir: str | Path, val_dir: str | Path) -> tuple[str, ...]:
    """The sorted union of the categories of both folders; every training category must be validated."""
    train = {p.name for p in category_folders(train_dir, "train_dir")}
    val = {p.name for p in category_folders(val_dir, "val_dir")}
    missing = sorted(train - val)
    if missing:
        raise SrlabError(
            f"category {missing[0]!r} of train_dir has no sub-folder in val_dir '{val_dir}': add "
            f"'{Path(val_dir) / missing[0]}' with a few images of it (its accuracy is measured there)"
        )
    return tuple(sorted(train | val))


def discover_labelled(root: str | Path, scale: int, classes: tuple[str, ...], key: str) -> LabelledFolder:
    """Every category's pairs (named ``category/image``) with their class index in ``classes``."""
    pairs: list[ImagePair] = []
    labels: list[int] = []
    folders = category_folders(root, key)
    for folder in folders:
        if not any(is_image_file(p.name) for p in folder.rglob("*") if p.is_file()):
            raise SrlabError(f"category folder '{folder}' holds no images: add its images or remove the folder")
        found = discover_pairs(folder, scale)
        pairs += [ImagePair(f"{folder.name}/{p.name}", p.hr, p.lr) for p in found.pairs]
        labels += [classes.index(folder.name)] * len(found.pairs)
    layout = f"categories {', '.join(p.name for p in folders)}"
    return LabelledFolder(PairedFolder(Path(root).name, layout, tuple(pairs)), tuple(labels))


class LabelledPatches(Dataset):
    """The items ``(lr, hr)`` of a patch dataset with the label of their image: ``(lr, hr, label)``.

    The patch dataset's item ``i`` comes from image ``i % len(labels)`` (``PatchDataset`` repeats its
    images in order), so the labels follow the pairs' order."""

    def __init__(self, patches: Dataset, labels: tuple[int, ...]) -> None:
        self.patches, self.labels = patches, labels

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        lr, hr = self.patches[index]
        return lr, hr, self.labels[index % len(self.labels)]
