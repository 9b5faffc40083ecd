"""The patch protocol of ClassSR and ARM: split an LR image into overlapping patches, merge their outputs.

What the official test code does (XPixelGroup/ClassSR ``codes/models/ClassSR_model.py`` and
chenbong/ARM-Net ``models/USSR_model.py``, ``crop_cpu`` and ``combine``; both the same):

* Split: patch tops are ``0, step, 2*step, ...`` while a whole patch fits (``range(0, H - patch + 1,
  step)``), the same for lefts. Nothing is padded and no last patch is moved flush to the border: when
  ``H - patch`` is not a multiple of ``step`` the bottom rows past the last patch are not processed, and
  the output covers only ``(last_top + patch) * scale`` rows (the official test crops the HR image to
  that region before PSNR). Here an image side shorter than ``patch`` gets one patch as long as that
  side (the official code fails there).
* Merge: the patch outputs are summed into the covered canvas, then every overlap strip, the
  ``(patch - step) * scale`` rows starting at ``i * step * scale`` for ``i >= 1`` (and the same columns),
  is divided by 2. With ``step >= patch / 2`` (two patches overlap at most along each axis) that is the
  mean of the overlapping outputs, and a corner where four overlap is divided by 4. :func:`blend_patches`
  applies exactly this rule for any ``step``: a pixel is divided by 2 once per strip that contains it.
  Where two patches overlap the sum is bitwise the official loop's; where four meet (corners) or with
  ``step < patch / 2`` the same values are added in another order (last-bit differences).
  (The official code rounds each patch output to 8 bits before merging; here the merge is on the float
  outputs, and rounding belongs to saving the image.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srlab.errors import SrlabError


@dataclass(frozen=True)
class PatchGrid:
    """Where the patches of a batch of ``images`` LR images lie (all images share the grid)."""

    images: int
    patch_hw: tuple[int, int]
    stride: int
    rows: int
    cols: int

    @property
    def count(self) -> int:
        """Patches in the whole batch, ordered image, row, column."""
        return self.images * self.rows * self.cols

    @property
    def covered_hw(self) -> tuple[int, int]:
        """The LR region the patches cover (from the top-left corner); the output is this times the scale."""
        return (self.rows - 1) * self.stride + self.patch_hw[0], (self.cols - 1) * self.stride + self.patch_hw[1]

    def boxes(self) -> torch.Tensor:
        """(count, 4) LR boxes ``top, left, height, width`` in patch order."""
        tops = torch.arange(self.rows) * self.stride
        lefts = torch.arange(self.cols) * self.stride
        grid = torch.cartesian_prod(tops, lefts)
        sizes = torch.tensor(self.patch_hw).expand(len(grid), 2)
        return torch.cat([grid, sizes], dim=1).repeat(self.images, 1)


def check_patching(patch: int, stride: int) -> None:
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise SrlabError(f"patch size must be a positive integer (LR pixels), got {patch!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= patch:
        raise SrlabError(
            f"patch stride must be an integer from 1 to the patch size {patch} (no gaps between patches), got {stride!r}"
        )


def check_batch(lr: torch.Tensor) -> None:
    if lr.dim() != 4:
        raise SrlabError(f"adaptive inference takes a (N, C, H, W) image batch, got shape {tuple(lr.shape)}")
    if lr.shape[2] < 1 or lr.shape[3] < 1:
        raise SrlabError(
            f"adaptive inference needs an image of at least 1x1 pixels, got {lr.shape[2]}x{lr.shape[3]}"
        )


def split_patches(lr: torch.Tensor, patch: int, stride: int) -> tuple[torch.Tensor, PatchGrid]:
    """(N, C, H, W) -> patches (N * rows * cols, C, ph, pw) and their grid, as the official ``crop_cpu``."""
    check_patching(patch, stride)
    check_batch(lr)
    n, c, h, w = lr.shape
    ph, pw = min(patch, h), min(patch, w)
    grid = PatchGrid(images=n, patch_hw=(ph, pw), stride=stride, rows=(h - ph) // stride + 1,
                     cols=(w - pw) // stride + 1)
    # A strided view of every patch (N, C, rows, cols, ph, pw), copied once into patch-major order.
    windows = lr.unfold(2, ph, stride).unfold(3, pw, stride)
    patches = windows.permute(0, 2, 3, 1, 4, 5).reshape(grid.count, c, ph, pw)
    return patches, grid


def blend_patches(sr_patches: torch.Tensor, grid: PatchGrid, scale: int) -> torch.Tensor:
    """Merge the SR outputs of :func:`split_patches`' patches as the official ``combine`` does:
    (count, C, ph*scale, pw*scale) -> (N, C, covered_h*scale, covered_w*scale)."""
    ph, pw = grid.patch_hw[0] * scale, grid.patch_hw[1] * scale
    if sr_patches.shape[0] != grid.count or tuple(sr_patches.shape[2:]) != (ph, pw):
        raise ValueError(
            f"expected {grid.count} patch outputs of {ph}x{pw}, got shape {tuple(sr_patches.shape)}"
        )
    n, channels = grid.images, sr_patches.shape[1]
    out_h, out_w = (size * scale for size in grid.covered_hw)
    step = grid.stride * scale
    canvas = sr_patches.new_zeros(n, channels, out_h, out_w)
    tiles = sr_patches.reshape(n, grid.rows, grid.cols, channels, ph, pw)
    # Patches k rows (columns) apart with k * step >= patch length never overlap, so each residue class
    # of rows and columns is added in one strided operation: k_h * k_w operations (4 for 32/28), not one
    # per patch. (F.fold does the same sum but is several times slower on CPU.)
    every_h, every_w = -(-ph // step), -(-pw // step)
    for first_row in range(min(every_h, grid.rows)):
        for first_col in range(min(every_w, grid.cols)):
            group = tiles[:, first_row::every_h, first_col::every_w]
            strides = (channels * out_h * out_w, every_h * step * out_w, every_w * step, out_h * out_w, out_w, 1)
            offset = first_row * step * out_w + first_col * step
            canvas.as_strided(group.shape, strides, offset).add_(group)
    # The official halving of every overlap strip (exact: a division by 2).
    for i in range(1, grid.cols):
        canvas[..., i * step:i * step + pw - step].mul_(0.5)
    for i in range(1, grid.rows):
        canvas[..., i * step:i * step + ph - step, :].mul_(0.5)
    return canvas
