"""The run's data: the training loader (with its epoch or curriculum sampler) and this rank's validation images.

The order of training samples and their crops depends only on the seed, the epoch and the position in
the epoch, so a resumed run continues exactly where its last checkpoint left it, whether that was at
the end of an epoch or in its middle (:meth:`TrainData.start_epoch`). So do the δ of a ``degradation``
(the LR patches made on the fly from the HR ones). Validation reads the folder's LR images (or makes them
by MATLAB bicubic), or with ``data.val_degradation`` degrades each validation HR image once by the run's
degradation, δ from (seed, file name): the same LR images at every validation and in every resume."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from srlab.data.datasets import EpochSampler, ImagePair, PatchDataset, discover_pairs, load_pair, modcrop
from srlab.data.degrade import Degradation, name_seed, parse_degradation, sample_rng
from srlab.data.io import read_rgb
from srlab.data.labels import LabelledPatches, discover_labelled, label_classes
from srlab.errors import SrlabError
from srlab.data.unpaired import UnpairedPatchDataset
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.stages import CurriculumSampler


@dataclass
class TrainData:
    loader: DataLoader
    sampler: EpochSampler | CurriculumSampler
    # This rank's validation images (name, lr, hr) and their positions in the whole validation list.
    val_images: list[tuple[str, torch.Tensor, torch.Tensor]]
    val_indices: list[int]
    # Batches in a whole epoch (the loader's length shrinks while it skips into an epoch).
    iters_per_epoch: int
    # For the log's first line.
    description: str
    # With data.labels: the class index of each of this rank's validation images.
    val_labels: list[int] | None = None

    def start_epoch(self, epoch: int, *, skip_batches: int, batch_size: int) -> None:
        """Make the loader yield ``epoch``'s batches from batch ``skip_batches`` on."""
        self.sampler.set_epoch(epoch, start=skip_batches * batch_size)

    def curriculum_fraction(self) -> float | None:
        if isinstance(self.sampler, CurriculumSampler):
            return self.sampler.fraction(self.sampler.epoch)
        return None


def validation_image(
    pair: ImagePair, config: TrainConfig, degradation: Degradation | None
) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(name, LR, HR) of one validation image: the folder's pair, or with ``data.val_degradation`` the HR
    image degraded as ``srlab degrade --seed SEED`` degrades it (LR rounded to 8 bits, as its PNG)."""
    if not config.data.val_degradation:
        return (pair.name, *load_pair(pair, config.scale))
    if degradation is None:
        raise SrlabError("data.val_degradation degrades the validation images by the run's degradation: "
                         "set degradation (e.g. {preset: realesrgan}) or drop data.val_degradation")
    hr = modcrop(read_rgb(pair.hr), config.scale)
    lr, _ = degradation(hr, sample_rng(config.seed, name_seed(pair.hr.stem)))
    # As write_image quantises the PNG: clamped, rounded half up.
    return pair.name, torch.floor(lr.clamp(0, 1) * 255 + 0.5) / 255, hr


def build_data(config: TrainConfig, dist: Dist, device: torch.device) -> TrainData:
    classes = label_classes(config.data.train_dir, config.data.val_dir) if config.data.labels else ()
    if classes:
        labelled_train = discover_labelled(config.data.train_dir, config.scale, classes, "train_dir")
        labelled_val = discover_labelled(config.data.val_dir, config.scale, classes, "val_dir")
        train_folder, val_folder = labelled_train.folder, labelled_val.folder
    else:
        train_folder = discover_pairs(config.data.train_dir, config.scale)
        val_folder = discover_pairs(config.data.val_dir, config.scale)
    degradation = parse_degradation(config.degradation, config.scale)
    if config.data.unpaired_lr_dir:
        train_set = UnpairedPatchDataset(
            [p.hr for p in train_folder.pairs], config.data.unpaired_lr_dir, scale=config.scale,
            patch_size=config.data.patch_size, repeat=config.data.repeat, seed=config.seed,
        )
    else:
        train_set = PatchDataset(
            train_folder.pairs, scale=config.scale, patch_size=config.data.patch_size,
            repeat=config.data.repeat, seed=config.seed, degradation=degradation,
        )
    if classes:  # batches carry the category of their images: (lr, hr, label)
        train_set = LabelledPatches(train_set, labelled_train.labels)
    val_pairs = val_folder.pairs[: config.data.val_max_images or None]
    # Each rank validates every world_size-th image; the per-image scores are gathered in rank 0's order.
    val_images = [validation_image(p, config, degradation) for p in val_pairs[dist.rank::dist.world_size]]
    val_indices = list(range(len(val_pairs)))[dist.rank::dist.world_size]
    if config.curriculum.measure != "off":
        sampler = CurriculumSampler(
            train_set, seed=config.seed, measure=config.curriculum.measure,
            start_fraction=config.curriculum.start_fraction, epochs=config.curriculum.epochs, scale=config.scale,
            rank=dist.rank, world_size=dist.world_size,
        )
    else:
        sampler = EpochSampler(len(train_set), seed=config.seed, rank=dist.rank, world_size=dist.world_size)
    loader = DataLoader(
        train_set, batch_size=config.data.batch_size // dist.world_size, sampler=sampler,
        num_workers=config.data.num_workers, drop_last=len(train_set) >= config.data.batch_size,
        pin_memory=device.type == "cuda",
        # Its own generator: the loader draws a seed for its workers at every epoch, and drawing it from
        # the global RNG would shift that RNG between an interrupted and an uninterrupted run.
        generator=torch.Generator().manual_seed(config.seed),
    )
    made_by = f", LR by degradation {degradation.describe()}" if degradation else ""
    made_by += ", val LR degraded too" if config.data.val_degradation else ""
    unpaired = (f" + {len(train_set.lr_images)} unpaired LR images" if config.data.unpaired_lr_dir else "")
    description = (
        f"train {len(train_folder.pairs)} images ({train_folder.layout}{made_by}){unpaired} val {len(val_pairs)} images "
        f"iters/epoch {len(loader)}"
    )
    val_labels = list(labelled_val.labels[: len(val_pairs)][dist.rank::dist.world_size]) if classes else None
    return TrainData(loader, sampler, val_images, val_indices, len(loader), description, val_labels)
