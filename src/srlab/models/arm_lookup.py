"""ARM's lookup table: which subnet runs on an LR patch, from its edge score and the any-time knob eta.

As in the official test (chenbong/ARM-Net ``models/USSR_model.py::test_image``, ``utils/util.py``):

* Edge score of a patch: the patch as an 8-bit image (``tensor2img``: clamp to [0, 1], x 255, round),
  converted to grey the way OpenCV's ``cvtColor(BGR2GRAY)`` does on 8-bit data (fixed point:
  ``(9798 R + 19235 G + 3735 B + 2^14) >> 15``; equal to opencv-python 5.1 on all 2^24 colours),
  filtered with ``cv2.Laplacian(ksize=3)`` (the kernel [[2, 0, 2], [0, -8, 0], [2, 0, 2]], border
  reflect-101), absolute value saturated to 255 (``convertScaleAbs``), mean over the patch. (The
  scores are computed for each patch alone, so its border rows and columns see the reflection.)
* Predicted PSNR of subnet ``j``: ``hmap_y_mean_list[j][k]`` at the bin ``k`` whose centre in
  ``hmap_x_list[j]`` is nearest the score (first on ties).
* Choice, by ``eta``: ``"best"`` -> the subnet of highest predicted PSNR; an integer below 100 -> that
  subnet for every patch; a number >= 100 -> ``argmax(eta * psnr - cost_list)`` (FLOPs per 32x32 patch),
  so a larger eta buys quality with compute. Ties go to the lower index (``np.argmax``).
* Subnet 0 (cost 0) is bicubic upsampling (``F.interpolate(..., mode="bicubic", align_corners=False)``,
  unclamped); subnet ``j >= 1`` is the supernet at ``model.widths[j - 1]``.

Where a checkpoint's table is (:func:`find_arm_table`): an srlab ``.safetensors`` checkpoint carries its
table in its metadata (key :data:`TABLE_METADATA_KEY`, the same JSON document; written by ``srlab
arm-table --out FILE.safetensors``, :mod:`srlab.models.arm_table`); any checkpoint -- a released
``arm-<name>.pth`` in particular -- otherwise takes it from the ``<stem>.hmap.json`` beside it
(:func:`table_path_for`). A released one is the ``hmap`` entry of the official ``.state`` as plain JSON.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from safetensors import SafetensorError, safe_open

from srlab.errors import SrlabError

# OpenCV's 8-bit BGR2GRAY weights (R, G, B) in 15-bit fixed point.
_GRAY_FIXED_POINT = (9798, 19235, 3735)
_GRAY_SHIFT = 15
# cv2.Laplacian with ksize=3: the sum of the 3x3 Sobel second derivatives.
_LAPLACIAN_3X3 = ((2, 0, 2), (0, -8, 0), (2, 0, 2))
# An eta below this picks a fixed subnet (the official ``hmap['eta'] < 100`` test).
FIXED_SUBNET_LIMIT = 100
# The safetensors metadata key under which an srlab checkpoint carries its table (JSON, as .hmap.json).
TABLE_METADATA_KEY = "srlab.arm_table"


@dataclass(frozen=True)
class ArmTable:
    """One supernet's lookup table: per subnet (index 0 = bicubic) its FLOPs per 32x32 LR patch and the
    mean PSNR of the validation patches in each edge-score bin (bin centres ``hmap_x``)."""

    cost: np.ndarray  # [subnets]
    hmap_x: np.ndarray  # [subnets, bins]
    hmap_y_mean: np.ndarray  # [subnets, bins]
    eta: str | float  # the knob the table was saved with ("best")

    @property
    def subnets(self) -> int:
        return len(self.cost)


def table_path_for(weights: str | Path) -> Path:
    """The lookup table beside a released ARM checkpoint: same stem, ``.hmap.json``."""
    weights = Path(weights)
    return weights.with_name(weights.stem + ".hmap.json")


def load_arm_table(path: str | Path, *, subnets: int | None = None) -> ArmTable:
    """Reads and checks an ARM ``.hmap.json``; ``subnets``: the count the model needs (its widths + 1)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SrlabError(f"{path}: not a readable ARM lookup table (.hmap.json): {e}") from None
    return parse_arm_table(data, str(path), subnets=subnets)


def carried_arm_table(checkpoint: str | Path) -> dict | None:
    """The table document an srlab ``.safetensors`` checkpoint carries in its metadata, or None."""
    checkpoint = Path(checkpoint)
    if checkpoint.suffix != ".safetensors" or not checkpoint.is_file():
        return None
    try:
        with safe_open(str(checkpoint), framework="pt") as f:
            text = (f.metadata() or {}).get(TABLE_METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise SrlabError(f"cannot read checkpoint '{checkpoint}': not a valid safetensors file ({e})") from None
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise SrlabError(
            f"{checkpoint}: its {TABLE_METADATA_KEY} metadata is not JSON (edited or corrupt); "
            "rebuild it with srlab arm-table"
        ) from None


def find_arm_table(checkpoint: str | Path, *, subnets: int, model: str) -> ArmTable:
    """The table of the supernet weights ``checkpoint``: the one it carries, else ``<stem>.hmap.json``
    beside it, else a one-line error saying how to build one (``model``: its registered name)."""
    carried = carried_arm_table(checkpoint)
    if carried is not None:
        return parse_arm_table(carried, f"{checkpoint} ({TABLE_METADATA_KEY})", subnets=subnets)
    beside = table_path_for(checkpoint)
    if beside.is_file():
        return load_arm_table(beside, subnets=subnets)
    carried_out = Path(checkpoint).with_name(Path(checkpoint).stem + ".arm.safetensors")
    raise SrlabError(
        f"no ARM lookup table for '{checkpoint}': it carries none and there is no '{beside}'; build one with "
        f"srlab arm-table --model {model} --checkpoint {checkpoint} --data VAL_DIR --out {carried_out} "
        f"(or --out {beside})"
    )


def parse_arm_table(data: object, where: str, *, subnets: int | None = None) -> ArmTable:
    """Checks a table document (the JSON object of a ``.hmap.json``); ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise SrlabError(f"{where}: an ARM lookup table must be a JSON object")
    missing = [key for key in ("cost_list", "hmap_x_list", "hmap_y_mean_list", "eta") if key not in data]
    if missing:
        raise SrlabError(
            f"{where}: ARM lookup table lacks {', '.join(missing)}; use the .hmap.json released with the weights"
        )
    try:
        cost = np.asarray(data["cost_list"], dtype=np.float64)
        hmap_x = np.asarray(data["hmap_x_list"], dtype=np.float64)
        hmap_y_mean = np.asarray(data["hmap_y_mean_list"], dtype=np.float64)
    except (TypeError, ValueError):
        raise SrlabError(f"{where}: ARM lookup table lists must hold numbers only, in rectangular arrays") from None
    count = len(cost)
    if cost.ndim != 1 or hmap_x.ndim != 2 or hmap_x.shape[0] != count or hmap_y_mean.shape != hmap_x.shape:
        raise SrlabError(
            f"{where}: ARM lookup table shapes disagree (cost_list {cost.shape}, hmap_x_list {hmap_x.shape}, "
            f"hmap_y_mean_list {hmap_y_mean.shape}); expected [S], [S, bins], [S, bins]"
        )
    if subnets is not None and count != subnets:
        raise SrlabError(
            f"{where}: ARM lookup table has {count} subnets, the model needs {subnets}; "
            "is it the table of these weights?"
        )
    if not (np.isfinite(cost).all() and np.isfinite(hmap_x).all() and np.isfinite(hmap_y_mean).all()):
        raise SrlabError(f"{where}: ARM lookup table holds non-finite numbers")
    eta = data["eta"]
    if not (eta == "best" or (isinstance(eta, (int, float)) and not isinstance(eta, bool) and math.isfinite(eta))):
        raise SrlabError(f"{where}: ARM lookup table's eta must be \"best\" or a number, got {eta!r}")
    return ArmTable(cost=cost, hmap_x=hmap_x, hmap_y_mean=hmap_y_mean, eta=eta)


def edge_scores(patches: torch.Tensor) -> np.ndarray:
    """The official edge score of each LR patch ([N, 3, h, w] RGB in [0, 1]) -> float64 [N]."""
    pixels = torch.round(patches.detach().float().clamp(0, 1) * 255.0).to(torch.int64)
    r, g, b = pixels.unbind(dim=1)
    wr, wg, wb = _GRAY_FIXED_POINT
    gray = (wr * r + wg * g + wb * b + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    kernel = torch.tensor(_LAPLACIAN_3X3, dtype=torch.float64).view(1, 1, 3, 3)
    # Integers up to 8 * 255 are exact in float64; "reflect" is OpenCV's BORDER_REFLECT_101.
    padded = F.pad(gray.unsqueeze(1).double(), (1, 1, 1, 1), mode="reflect")
    response = F.conv2d(padded, kernel).abs().clamp(max=255)
    return response.flatten(1).mean(dim=1).cpu().numpy()


def predicted_psnr(table: ArmTable, scores: np.ndarray) -> np.ndarray:
    """[N, subnets]: each subnet's mean validation PSNR in the score bin nearest each patch's score."""
    scores = np.asarray(scores, dtype=np.float64)
    distance = np.abs(table.hmap_x[None, :, :] - scores[:, None, None])  # [N, S, bins]
    nearest = distance.argmin(axis=2)
    return np.take_along_axis(table.hmap_y_mean[None], nearest[..., None], axis=2)[..., 0]


def choose_subnets(table: ArmTable, scores: np.ndarray, eta: str | float) -> np.ndarray:
    """The subnet index (0 = bicubic) the official rule picks for each edge score, int64 [N]."""
    scores = np.asarray(scores, dtype=np.float64)
    if eta == "best":
        return predicted_psnr(table, scores).argmax(axis=1)
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
        raise ValueError(f"eta must be 'best' or a number, got {eta!r}")
    if eta < FIXED_SUBNET_LIMIT:
        if eta != int(eta) or not 0 <= eta < table.subnets:
            raise ValueError(f"an eta below {FIXED_SUBNET_LIMIT} is a subnet index 0..{table.subnets - 1}, got {eta}")
        return np.full(len(scores), int(eta), dtype=np.int64)
    return (eta * predicted_psnr(table, scores) - table.cost[None]).argmax(axis=1)


def run_subnet(model: nn.Module, lr: torch.Tensor, index: int) -> torch.Tensor:
    """The SR of a batch of LR patches by table subnet ``index``: 0 bicubic, j the width ``model.widths[j-1]``."""
    if index == 0:
        return F.interpolate(lr, scale_factor=model.scale, mode="bicubic", align_corners=False)
    return model(lr, width=model.widths[index - 1])


@dataclass(frozen=True)
class PatchwiseResult:
    """The official test's output: the merged SR image on the 0..255 scale (float32 [3, H, W], NOT
    rounded), the subnet picked per patch (row-major) and the LR size the patch grid covers."""

    sr: torch.Tensor
    subnets: np.ndarray
    covered: tuple[int, int]


def _patch_starts(size: int, patch: int, step: int) -> list[int]:
    return list(range(0, size - patch + 1, step))


def arm_upscale_patches(
    model: nn.Module, table: ArmTable, lr: torch.Tensor, eta: str | float, *, patch: int = 32, step: int = 28,
    batch: int = 256,
) -> PatchwiseResult:
    """The official ARM test loop on one LR image ([3, H, W] RGB in [0, 1]), batched per subnet.

    As ``USSR_model.test_image``: patches of ``patch`` at stride ``step`` from the top-left (the
    bottom/right rows and columns no patch reaches are dropped: compare against the HR image cropped to
    ``covered`` x scale); each SR patch is quantised to 8 bits; patches are summed and every overlap
    band between neighbouring columns, then rows, is halved."""
    height, width = lr.shape[-2:]
    rows, cols = _patch_starts(height, patch, step), _patch_starts(width, patch, step)
    if not rows or not cols:
        raise ValueError(f"the image ({height}x{width}) is smaller than one {patch}x{patch} patch")
    patches = torch.stack([lr[:, y : y + patch, x : x + patch] for y in rows for x in cols])
    subnets = choose_subnets(table, edge_scores(patches), eta)
    scale = model.scale
    sr_patches = torch.empty(len(patches), 3, patch * scale, patch * scale)
    with torch.no_grad():
        for index in np.unique(subnets):
            chosen = torch.from_numpy(np.flatnonzero(subnets == index))
            for part in chosen.split(batch):
                sr = run_subnet(model, patches[part], int(index)).float()
                sr_patches[part] = torch.round(sr.clamp(0, 1) * 255.0)
    big, hop, band = patch * scale, step * scale, (patch - step) * scale
    covered = (rows[-1] + patch, cols[-1] + patch)
    merged = torch.zeros(3, covered[0] * scale, covered[1] * scale)
    for k, (y, x) in enumerate((y, x) for y in rows for x in cols):
        merged[:, y * scale : y * scale + big, x * scale : x * scale + big] += sr_patches[k]
    for j in range(1, len(cols)):
        merged[:, :, j * hop : j * hop + band] /= 2
    for i in range(1, len(rows)):
        merged[:, i * hop : i * hop + band, :] /= 2
    return PatchwiseResult(sr=merged, subnets=subnets, covered=covered)
