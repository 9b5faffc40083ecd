"""USM sharpening of the ground truth (Real-ESRNet's gt_usm), checked against SciPy's Gaussian filter."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from srlab.data.degrade.usm import opencv_gaussian_kernel, usm_sharpen
from srlab.errors import SrlabError


def _scipy_blur(image: np.ndarray) -> np.ndarray:
    # OpenCV's sigma for a 51-tap kernel is 0.3 * (25 - 1) + 0.8 = 8.0; a 25-pixel radius is truncate 25/8;
    # mode "mirror" is OpenCV's BORDER_REFLECT_101 (torch's "reflect"). Blurred over the two image axes only.
    return ndimage.gaussian_filter(image, sigma=(0, 8.0, 8.0), mode="mirror", truncate=25 / 8)


def test_kernel_is_opencvs_for_size_51():
    kernel = opencv_gaussian_kernel(51)
    x = np.arange(51) - 25
    expected = np.exp(-(x**2) / (2 * 8.0**2))
    np.testing.assert_allclose(kernel.numpy(), expected / expected.sum(), rtol=1e-14)


def test_sharpening_equals_the_formula_with_scipys_blur():
    image = np.asarray(data.astronaut()[100:180, 150:250], dtype=np.float64).transpose(2, 0, 1) / 255
    blur = _scipy_blur(image)
    residual = image - blur
    soft = _scipy_blur((np.abs(residual) * 255 > 10).astype(np.float64))
    expected = soft * np.clip(image + 0.5 * residual, 0, 1) + (1 - soft) * image
    out = usm_sharpen(torch.from_numpy(image))
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    assert not np.allclose(out.numpy(), image)  # the photo's edges are sharpened
    batch = usm_sharpen(torch.from_numpy(image)[None].repeat(2, 1, 1, 1))
    assert torch.equal(batch[1], out)


def test_flat_image_is_unchanged():
    flat = torch.full((3, 40, 40), 0.3, dtype=torch.float64)
    assert torch.allclose(usm_sharpen(flat), flat, atol=1e-15)


def test_patch_too_small_for_the_kernel_is_a_one_line_error():
    with pytest.raises(SrlabError, match=r"must be larger than that on both sides: raise --patch_size"):
        usm_sharpen(torch.rand(3, 24, 24))
