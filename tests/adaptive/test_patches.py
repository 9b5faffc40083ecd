import pytest
import torch
import torch.nn.functional as F

from srlab.adaptive.patches import PatchGrid, blend_patches, split_patches
from srlab.errors import SrlabError


def official_tops(size: int, patch: int, step: int) -> list[int]:
    """The official crop_cpu's positions: range(0, size - patch + 1, step)."""
    return list(range(0, size - patch + 1, step))


def official_merge(sr_list, tops, lefts, patch, step, scale):
    """The official combine, transcribed as a loop: sum in raster order, then halve every overlap strip."""
    out = torch.zeros(sr_list[0].shape[0], (tops[-1] + patch) * scale, (lefts[-1] + patch) * scale,
                      dtype=sr_list[0].dtype)
    index = 0
    for top in tops:
        for left in lefts:
            out[:, top * scale:(top + patch) * scale, left * scale:(left + patch) * scale] += sr_list[index]
            index += 1
    for j in range(1, len(lefts)):
        out[:, :, j * step * scale:(j * step + patch - step) * scale] /= 2
    for i in range(1, len(tops)):
        out[:, i * step * scale:(i * step + patch - step) * scale, :] /= 2
    return out


def test_split_places_patches_on_the_official_grid():
    lr = torch.rand(2, 3, 70, 90)
    patches, grid = split_patches(lr, 32, 28)
    assert official_tops(70, 32, 28) == [0, 28] and official_tops(90, 32, 28) == [0, 28, 56]
    assert (grid.rows, grid.cols, grid.patch_hw, grid.covered_hw) == (2, 3, (32, 32), (60, 88))
    assert patches.shape == (12, 3, 32, 32) and patches.is_contiguous()
    for k, (top, left, h, w) in enumerate(grid.boxes().tolist()):
        assert torch.equal(patches[k], lr[k // 6, :, top:top + h, left:left + w])
    assert grid.boxes()[:6, :2].tolist() == [[0, 0], [0, 28], [0, 56], [28, 0], [28, 28], [28, 56]]


def test_an_image_side_shorter_than_a_patch_gets_one_patch_that_long():
    lr = torch.rand(1, 3, 20, 50)
    patches, grid = split_patches(lr, 32, 28)
    assert (grid.rows, grid.cols, grid.patch_hw, grid.covered_hw) == (1, 1, (20, 32), (20, 32))
    assert torch.equal(patches[0], lr[0, :, :, :32])
    assert blend_patches(patches, grid, 1).shape == (1, 3, 20, 32)


@pytest.mark.parametrize(("patch", "step"), [(32, 28), (32, 16), (8, 8), (8, 3), (5, 1)])
def test_blend_is_the_official_merge(patch, step):
    torch.manual_seed(0)
    scale, h, w = 3, 41, 37
    tops, lefts = official_tops(h, patch, step), official_tops(w, patch, step)
    grid = PatchGrid(images=1, patch_hw=(patch, patch), stride=step, rows=len(tops), cols=len(lefts))
    sr = torch.rand(grid.count, 3, patch * scale, patch * scale, dtype=torch.float64)
    blended = blend_patches(sr, grid, scale)[0]
    official = official_merge(list(sr), tops, lefts, patch, step, scale)
    # the same sums and halvings; where more than two patches meet they are added in another order
    torch.testing.assert_close(blended, official, rtol=0, atol=1e-15)
    one_row = PatchGrid(images=1, patch_hw=(patch, patch), stride=step, rows=1, cols=len(lefts))
    if 2 * step >= patch:  # only pairs overlap: bitwise the official loop's
        assert torch.equal(blend_patches(sr[:len(lefts)], one_row, scale)[0],
                           official_merge(list(sr[:len(lefts)]), [0], lefts, patch, step, scale))


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_split_then_blend_of_an_exact_upscaler_reconstructs_the_covered_image(scale):
    # nearest-neighbour upscaling is patch-local, so every patch agrees with the whole image on its overlaps
    lr = torch.rand(2, 3, 75, 64, dtype=torch.float64)
    patches, grid = split_patches(lr, 32, 28)
    sr = blend_patches(F.interpolate(patches, scale_factor=scale, mode="nearest"), grid, scale)
    h, w = grid.covered_hw
    assert torch.equal(sr, F.interpolate(lr[:, :, :h, :w], scale_factor=scale, mode="nearest"))


@pytest.mark.parametrize(
    ("patch", "stride", "message"),
    [(0, 1, "patch size must be a positive integer"), (32, 0, "patch stride must be an integer from 1 to"),
     (32, 33, "patch stride must be an integer from 1 to the patch size 32"), (32.0, 28, "patch size")],
)
def test_bad_patching_is_a_one_line_error(patch, stride, message):
    with pytest.raises(SrlabError, match=message):
        split_patches(torch.rand(1, 3, 40, 40), patch, stride)


def test_a_batch_is_required():
    with pytest.raises(SrlabError, match=r"takes a \(N, C, H, W\) image batch, got shape \(3, 40, 40\)"):
        split_patches(torch.rand(3, 40, 40), 32, 28)
