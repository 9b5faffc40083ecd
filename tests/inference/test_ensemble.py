"""The x8 geometric self-ensemble: the transforms, their inverses, and what averaging does to real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srlab
from srlab.data.resize import bicubic_downscale
from srlab.errors import SrlabError
from srlab.inference import upscale_tensor
from srlab.inference.ensemble import TRANSFORMS, apply_transform, invert_transform, self_ensemble
from srlab.inference.evaluate import evaluate_images
from srlab.metrics import PAPER_PROTOCOL, ScoreAccumulator
from conftest import photo


def _tensor(name: str, size: tuple[int, int] | None) -> torch.Tensor:
    """A skimage photo as a (3, H, W) float tensor in [0, 1]; size is (width, height)."""
    return torch.from_numpy(np.array(photo(name, size))).permute(2, 0, 1).float() / 255


# ----------------------------------------------------------------------------- the transforms


def test_eight_distinct_transforms_each_inverted_exactly():
    x = torch.rand(2, 3, 5, 7)  # not square: odd quarter turns swap height and width
    images = []
    for transform in TRANSFORMS:
        y = apply_transform(x, transform)
        k, _ = transform
        assert y.shape[-2:] == ((7, 5) if k % 2 else (5, 7))
        assert torch.equal(invert_transform(y, transform), x), transform
        images.append(y)
    assert len(TRANSFORMS) == 8 and len(set(TRANSFORMS)) == 8
    # the eight are different images (the symmetries of the square, none repeated)
    square = torch.rand(3, 6, 6)
    flat = [apply_transform(square, t).flatten() for t in TRANSFORMS]
    assert all(not torch.equal(flat[i], flat[j]) for i in range(8) for j in range(i))


def test_transforms_are_numpy_rotations_and_flips():
    # an independent statement of the convention: np.fliplr, then np.rot90 k times (counter-clockwise)
    x = np.random.default_rng(0).random((4, 6))
    for k, flip in TRANSFORMS:
        expected = np.rot90(np.fliplr(x) if flip else x, k)
        got = apply_transform(torch.from_numpy(x.copy()), (k, flip)).numpy()
        assert np.array_equal(got, expected), (k, flip)


def test_inverse_maps_an_upscaled_transform_back():
    """The inverse applies to the (larger) output: for nearest-neighbour upscaling, which commutes with
    every symmetry of the grid, inverse(f(transform(x))) is f(x) bit for bit."""
    x = torch.rand(1, 3, 5, 8)

    def nearest(t):
        return F.interpolate(t, scale_factor=3, mode="nearest")

    for transform in TRANSFORMS:
        assert torch.equal(invert_transform(nearest(apply_transform(x, transform)), transform), nearest(x))
    assert torch.equal(self_ensemble(nearest, x), nearest(x))


# ----------------------------------------------------------------------------- models


class _PointwiseNearest(nn.Module):
    """A 1x1 convolution, then nearest x2: exactly equivariant under rotations and flips."""

    scale = 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="nearest")


def test_equivariant_model_ensemble_equals_plain():
    model = _PointwiseNearest().eval()
    lr = torch.rand(3, 9, 14)
    plain = upscale_tensor(model, lr)
    ensemble = upscale_tensor(model, lr, self_ensemble=True)
    assert ensemble.shape == plain.shape == (3, 18, 28)
    assert torch.equal(ensemble, plain)  # the float64 mean of eight equal terms is exact


def test_bicubic_float_is_equivariant_and_uint8_only_up_to_its_pass_order():
    """MATLAB bicubic is separable with a symmetric kernel and mirrored borders, so without rounding it
    commutes with all eight symmetries (to float rounding). The 8-bit model rounds after each 1-D pass,
    rows before columns; a transposing transform (odd quarter turns) swaps the passes, so those
    results differ by at most one 8-bit step, flips and the half turn not at all; the ensemble
    then differs from the plain result by at most half a step."""
    hr = _tensor("chelsea", (120, 90))
    lr = bicubic_downscale(hr, 2, quantize=True)

    exact = srlab.create_model("bicubic", scale=2, args={"matlab_uint8": False})
    plain = upscale_tensor(exact, lr)
    for transform in TRANSFORMS:
        y = invert_transform(upscale_tensor(exact, apply_transform(lr, transform)), transform)
        assert (y - plain).abs().max().item() < 1e-6, transform
    assert (upscale_tensor(exact, lr, self_ensemble=True) - plain).abs().max().item() < 1e-6

    uint8 = srlab.create_model("bicubic", scale=2)
    plain = upscale_tensor(uint8, lr)
    transposed_differ = False
    for transform in TRANSFORMS:
        diff = (invert_transform(upscale_tensor(uint8, apply_transform(lr, transform)), transform) - plain).abs()
        if transform[0] % 2 == 0:
            assert diff.max().item() < 1e-6, transform
        else:
            assert diff.max().item() <= 1 / 255 + 1e-6, transform
            transposed_differ |= diff.max().item() > 0.5 / 255
    assert transposed_differ  # the rounding order really matters: the test would notice a change
    ensemble = upscale_tensor(uint8, lr, self_ensemble=True)
    assert (ensemble - plain).abs().max().item() <= 0.5 / 255 + 1e-6


@pytest.fixture(scope="module")
def rdsr_s_x2():
    return srlab.create_model("rdsr_s", scale=2, pretrained=True)


def _psnr(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    return ScoreAccumulator(PAPER_PROTOCOL).update(sr, hr, scale)["psnr_y"]


# Measured (96 x 128 crops of the top-left corner, x2, PSNR on Y): plain / ensemble
# chelsea 38.96 / 39.02, coffee 38.74 / 38.82 dB.
@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_real_model_ensemble_scores_at_least_plain(rdsr_s_x2, name):
    hr = _tensor(name, None)[:, :96, :128]
    lr = bicubic_downscale(hr, 2, quantize=True)
    plain = upscale_tensor(rdsr_s_x2, lr)
    ensemble = upscale_tensor(rdsr_s_x2, lr, self_ensemble=True)
    assert ensemble.shape == plain.shape == hr.shape
    assert not torch.allclose(ensemble, plain, atol=1e-4)  # a real network is not equivariant
    gain = _psnr(ensemble, hr, 2) - _psnr(plain, hr, 2)
    assert 0 < gain < 1.0, gain


def test_ensemble_goes_through_the_generic_path(rdsr_s_x2):
    """Padding and tiling work per transform: odd sizes (padded to rdsr_s's multiple), a batch, and
    tiles give the untiled ensemble."""
    lr = torch.rand(2, 3, 17, 23)
    whole = upscale_tensor(rdsr_s_x2, lr, self_ensemble=True)
    assert whole.shape == (2, 3, 34, 46)
    tiled = upscale_tensor(rdsr_s_x2, lr, self_ensemble=True, tile=6)
    assert (whole - tiled).abs().max().item() < 1e-5
    single = upscale_tensor(rdsr_s_x2, lr[1], self_ensemble=True)
    assert (single - whole[1]).abs().max().item() < 1e-5
    # the same as averaging the eight passes by hand
    by_hand = sum(
        invert_transform(upscale_tensor(rdsr_s_x2, apply_transform(lr, t)), t) for t in TRANSFORMS
    ) / 8
    assert (whole - by_hand).abs().max().item() < 1e-6


def test_evaluate_images_records_the_ensemble(rdsr_s_x2):
    hr = _tensor("chelsea", None)[:, :96, :128]
    lr = bicubic_downscale(hr, 2, quantize=True)
    plain, _ = evaluate_images(rdsr_s_x2, [("chelsea", lr, hr)])
    ensemble, scores = evaluate_images(rdsr_s_x2, [("chelsea", lr, hr)], self_ensemble=True)
    assert ensemble["psnr_y"] == pytest.approx(scores[0].scores["psnr_y"])
    assert ensemble["psnr_y"] > plain["psnr_y"]


def test_bad_rank_is_a_user_error(rdsr_s_x2):
    with pytest.raises(SrlabError, match="expected an image tensor"):
        upscale_tensor(rdsr_s_x2, torch.rand(8, 8), self_ensemble=True)
