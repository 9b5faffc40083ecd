"""Building an ARM supernet's lookup table, as the official code builds it, and storing it.

Official procedure (chenbong/ARM-Net ``main.py::test_image(is_calc_hmap=True)``, ``test_patch``,
``utils/util.py::calc_base_hmap``, ``data_scripts/extract_subimages_test.py``):

* Validation patches: each LR image cut into sub-images of 32 x 32 LR pixels (128 HR) at a stride of 28
  (112 HR) from the top-left, plus one flush with the bottom / right border when more than 12 LR
  pixels (48 HR) would be left over (the official run: the 100 DIV2K validation images, 22,194 patches).
* Per patch: its edge score (:func:`srlab.models.arm_lookup.edge_scores`), and for every subnet --
  0 bicubic, then each width -- the PSNR of its SR patch, both images quantised to 8 bits, ``scale``
  pixels cropped from each border, over the three RGB channels (an exact match scores 80 dB).
* Per subnet: a 30 x 30 histogram of (edge score, PSNR) (``hist2d``: ``hmap_list``, bin centres
  ``hmap_x_list`` / ``hmap_y_list``) and the mean PSNR of the patches in each edge-score bin
  (``binned_statistic(..., 'mean')`` over the same x edges: ``hmap_y_mean_list``, what the routing reads).
* ``cost_list``: 0 for bicubic, then the FLOPs of each subnet on a 32 x 32 LR patch, ``eta``: "best",
  ``bins``: 30.

Deviations, each small and stated: the cost is 2 x srlab's MACs (:func:`srlab.models.count_macs`),
which also counts the frozen mean shifts of CARN (+313,344 per patch, 0.03 % of the smallest subnet)
and the bilinear skip of SRResNet (+393,216) that the official counter leaves out (it counts modules
with trainable weights only); the bicubic subnet is measured on the same patches (the official table
reads it from logs of an earlier run, ``utils/bilinear_*.log``, on the same 22,194 patches). An edge-score
bin that no patch falls in gets the mean PSNR interpolated linearly between its nearest non-empty
neighbours (constant past the ends): the official code leaves NaN there, which ``np.argmax`` would then
pick; with the official 22,194 patches no bin is empty.

Storing: :func:`write_table_json` writes the document as a ``.hmap.json`` (the released format, read by
:func:`srlab.models.arm_lookup.load_arm_table`); :func:`write_carrying_checkpoint` writes the supernet's
weights as an srlab ``.safetensors`` checkpoint that carries the document in its metadata
(:data:`srlab.models.arm_lookup.TABLE_METADATA_KEY`), where the ``arm`` adaptive method finds it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import atomic_path, atomic_write_bytes
from srlab.models.arm import Subnet
from srlab.models.arm_lookup import TABLE_METADATA_KEY, edge_scores, run_subnet
from srlab.models.complexity import count_macs
from srlab.models.weights import weights_bytes

# The official validation sub-images, in LR pixels (HR: 128, 112, 48 at x4); the threshold of another
# patch size keeps the official ratio 12 / 32.
PATCH, STEP, THRESHOLD = 32, 28, 12


def default_threshold(patch: int) -> int:
    return patch * THRESHOLD // PATCH
BINS = 30
# calculate_psnr's score for identical 8-bit images.
EXACT_PSNR = 80.0


@dataclass(frozen=True)
class PatchScores:
    """Edge score [N] of every validation patch and the PSNR [subnets, N] each subnet reaches on it."""

    scores: np.ndarray
    psnr: np.ndarray


def sub_image_starts(size: int, patch: int = PATCH, step: int = STEP, threshold: int = THRESHOLD) -> list[int]:
    """Where the official sub-images start along one side (empty if the side is shorter than a patch)."""
    starts = list(range(0, size - patch + 1, step))
    if starts and size - (starts[-1] + patch) > threshold:
        starts.append(size - patch)
    return starts


def validation_patches(
    lr: torch.Tensor, hr: torch.Tensor, scale: int, *, patch: int = PATCH, step: int = STEP,
    threshold: int = THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The aligned LR [N, 3, p, p] and HR [N, 3, p s, p s] sub-images of one image pair."""
    rows = sub_image_starts(lr.shape[-2], patch, step, threshold)
    cols = sub_image_starts(lr.shape[-1], patch, step, threshold)
    corners = [(y, x) for y in rows for x in cols]
    big = patch * scale
    lr_patches = [lr[:, y:y + patch, x:x + patch] for y, x in corners]
    hr_patches = [hr[:, y * scale:y * scale + big, x * scale:x * scale + big] for y, x in corners]
    if not corners:
        return lr.new_empty(0, 3, patch, patch), hr.new_empty(0, 3, big, big)
    return torch.stack(lr_patches), torch.stack(hr_patches)


def patch_psnr(sr: torch.Tensor, hr: torch.Tensor, border: int) -> np.ndarray:
    """The official per-patch PSNR: 8-bit images, ``border`` pixels cropped, all channels -> [N]."""
    def eight_bit(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x.detach().double().clamp(0, 1) * 255.0)

    diff = eight_bit(sr) - eight_bit(hr)
    if border:
        diff = diff[..., border:-border, border:-border]
    mse = diff.pow(2).flatten(1).mean(dim=1).cpu().numpy()
    with np.errstate(divide="ignore"):
        psnr = 20 * np.log10(255.0 / np.sqrt(mse))
    return np.where(mse == 0, EXACT_PSNR, psnr)


def score_patches(model: nn.Module, lr: torch.Tensor, hr: torch.Tensor, *, batch: int = 256) -> PatchScores:
    """Edge scores of the LR patches and every subnet's PSNR on them (subnet 0 bicubic)."""
    device = next(model.parameters()).device
    psnr = np.empty((len(model.widths) + 1, len(lr)))
    with torch.no_grad():
        for index in range(len(psnr)):
            for start in range(0, len(lr), batch):
                part = slice(start, start + batch)
                sr = run_subnet(model, lr[part].to(device), index).float().cpu()
                psnr[index, part] = patch_psnr(sr, hr[part], border=model.scale)
    return PatchScores(scores=edge_scores(lr), psnr=psnr)


def subnet_costs(model: nn.Module, patch: int = PATCH) -> list[float]:
    """``cost_list``: 0 (bicubic), then 2 x the MACs of each width on a ``patch`` x ``patch`` LR patch."""
    return [0.0] + [float(2 * count_macs(Subnet(model, w), (patch, patch))) for w in model.widths]



def _centres(edges: np.ndarray) -> np.ndarray:
    # As the official code: left edges plus half the first bin's width.
    return edges[:-1] + (edges[1] - edges[0]) / 2


def _bin_means(scores: np.ndarray, psnr: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean PSNR per edge-score bin (last bin closed, as binned_statistic); empty bins interpolated."""
    sums, _ = np.histogram(scores, edges, weights=psnr)
    counts, _ = np.histogram(scores, edges)
    filled = counts > 0
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=filled)
    centres = _centres(edges)
    means[~filled] = np.interp(centres[~filled], centres[filled], means[filled])
    return means


def table_document(patches: PatchScores, costs: list[float], *, bins: int = BINS, source: str = "") -> dict:
    """The ``.hmap.json`` document of measured patches (keys and layout of the released tables)."""
    if patches.scores.size == 0:
        raise SrlabError("no validation patch to build an ARM table from: the images are smaller than a patch")
    document: dict = {"eta": "best", "cost_list": list(costs), "hmap_list": [], "hmap_x_list": [],
                      "hmap_y_list": [], "hmap_y_mean_list": [], "bins": bins}
    for psnr in patches.psnr:
        hist, x_edges, y_edges = np.histogram2d(patches.scores, psnr, bins=bins)
        document["hmap_list"].append(hist.tolist())
        document["hmap_x_list"].append(_centres(x_edges).tolist())
        document["hmap_y_list"].append(_centres(y_edges).tolist())
        document["hmap_y_mean_list"].append(_bin_means(patches.scores, psnr, x_edges).tolist())
    if source:
        document["_source"] = source
    return document


@dataclass(frozen=True)
class TableBuild:
    document: dict
    images: int
    patches: int
    # (image name, why it was skipped) for each image that could not be read.
    failures: tuple[tuple[str, str], ...]


def build_arm_table(
    model: nn.Module, pairs: Iterable[tuple[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]]], *,
    bins: int = BINS, patch: int = PATCH, step: int = STEP, threshold: int | None = None, batch: int = 256,
    source: str = "",
) -> TableBuild:
    """The table of ``model`` (a slimmable supernet) measured on ``pairs``: (name, a function returning
    (LR, HR) in [0, 1]); an image whose function raises :class:`SrlabError` is skipped and reported."""
    if not (hasattr(model, "widths") and hasattr(model, "at_width")):
        name = getattr(getattr(model, "srlab_spec", None), "name", type(model).__name__)
        raise SrlabError(f"an ARM table needs a slimmable supernet (arm_fsrcnn, arm_carn, arm_srresnet), not {name!r}")
    threshold = default_threshold(patch) if threshold is None else threshold
    scores, psnrs, failures, images = [], [], [], 0
    for name, load in pairs:
        try:
            lr, hr = load()
        except SrlabError as e:
            failures.append((name, str(e)))
            continue
        lr_patches, hr_patches = validation_patches(lr, hr, model.scale, patch=patch, step=step, threshold=threshold)
        measured = score_patches(model, lr_patches, hr_patches, batch=batch)
        scores.append(measured.scores)
        psnrs.append(measured.psnr)
        images += 1
    if not scores:
        raise SrlabError("no readable validation image to build an ARM table from")
    patches = PatchScores(scores=np.concatenate(scores), psnr=np.concatenate(psnrs, axis=1))
    if patches.scores.size == 0:
        raise SrlabError(f"no validation patch to build an ARM table from: the images are smaller than {patch}x{patch} LR pixels")
    source = source or f"srlab arm-table: {patches.scores.size} patches ({patch} LR px, stride {step}) of {images} images"
    document = table_document(patches, subnet_costs(model, patch), bins=bins, source=source)
    return TableBuild(document, images, int(patches.scores.size), tuple(failures))


def write_table_json(path: str | Path, document: dict) -> None:
    """The table as a ``.hmap.json`` (one JSON object, as released), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(document)) + "\n", encoding="utf-8")


def write_carrying_checkpoint(path: str | Path, model: nn.Module, document: dict, *, like: str | Path | None = None) -> None:
    """``model``'s weights as an srlab ``.safetensors`` checkpoint carrying ``document`` in its metadata;
    ``like``: an srlab checkpoint whose other metadata (epoch, validation score, ...) is kept."""
    metadata: dict[str, str] = {}
    if like is not None and Path(like).suffix == ".safetensors":
        with safe_open(str(like), framework="pt") as f:
            metadata = dict(f.metadata() or {})
    metadata[TABLE_METADATA_KEY] = json.dumps(_finite(document))
    atomic_write_bytes(path, weights_bytes(model, metadata=metadata))


def _finite(document: dict) -> dict:
    # JSON has no NaN; every number of a built table is finite (empty bins are filled).
    for key in ("cost_list", "hmap_x_list", "hmap_y_list", "hmap_y_mean_list", "hmap_list"):
        if not np.isfinite(np.asarray(document.get(key, []), dtype=np.float64)).all():
            raise SrlabError(f"the ARM table's {key} holds non-finite numbers: the model's outputs are not finite")
    return document
