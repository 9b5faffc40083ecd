"""CAR's adaptive grid sampler against a per-pixel loop written from the official CUDA kernel
(sunwj/CAR adaptive_gridsampler/adaptive_gridsampler_kernel.cu, commit 05b2277)."""

import math

import numpy as np
import pytest
import torch

from srlab.layers.adaptive_gridsampler import adaptive_resample


def cuda_kernel_loop(image, kernels, offsets_h, offsets_v, offset_unit, scale):
    """kernel_adaptive_gridsampler_update_output, one output value at a time (float64), after the
    reflection padding that gridsampler.py applies."""
    k = math.isqrt(kernels.shape[1])
    pad = k // 2
    img = np.pad(image.double().numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    ker, oh, ov = (t.double().numpy() for t in (kernels, offsets_h, offsets_v))
    b_n, c_n, h, w = image.shape
    out_h, out_w = h // scale, w // scale
    out = np.zeros((b_n, c_n, out_h, out_w))
    for b in range(b_n):
        for c in range(c_n):
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0
                    for ky in range(k):
                        for kx in range(k):
                            t = k * ky + kx
                            px = (j + 0.5) / out_w * w + kx + oh[b, t, i, j] * offset_unit - 0.5
                            py = (i + 0.5) / out_h * h + ky + ov[b, t, i, j] * offset_unit - 0.5
                            alpha, beta = px - math.floor(px), py - math.floor(py)
                            xl = max(min(math.floor(px), w + 2 * pad - 1), 0)
                            xr = max(min(xl + 1, w + 2 * pad - 1), 0)
                            yt = max(min(math.floor(py), h + 2 * pad - 1), 0)
                            yb = max(min(yt + 1, h + 2 * pad - 1), 0)
                            val = ((1 - alpha) * (1 - beta) * img[b, c, yt, xl] + alpha * (1 - beta) * img[b, c, yt, xr]
                                   + (1 - alpha) * beta * img[b, c, yb, xl] + alpha * beta * img[b, c, yb, xr])
                            total += val * ker[b, t, i, j]
                    out[b, c, i, j] = total
    return torch.from_numpy(out)


def random_inputs(scale, h, w, *, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = 3 * scale + 1
    image = torch.rand(batch, 3, h, w, generator=g)
    kernels = torch.rand(batch, k * k, h // scale, w // scale, generator=g)
    kernels = kernels / kernels.sum(1, keepdim=True)
    offsets = [torch.rand(batch, k * k, h // scale, w // scale, generator=g) * 2 - 1 for _ in range(2)]
    return image, kernels, *offsets


@pytest.mark.parametrize("scale,h,w", [(2, 8, 12), (4, 16, 8)])
def test_equals_the_cuda_kernel_loop(scale, h, w):
    image, kernels, offsets_h, offsets_v = random_inputs(scale, h, w, batch=2)
    got = adaptive_resample(image, kernels, offsets_h, offsets_v, offset_unit=scale, scale=scale)
    want = cuda_kernel_loop(image, kernels, offsets_h, offsets_v, scale, scale)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=0)


def test_border_samples_follow_the_kernels_index_clamping():
    """Offsets pushing taps past the padded border: the kernel mixes columns 0 and 1 at x in (-1, 0),
    where a border-clamped bilinear would return column 0."""
    image, kernels, offsets_h, offsets_v = random_inputs(4, 8, 8)
    offsets_h, offsets_v = -torch.ones_like(offsets_h), -torch.ones_like(offsets_v) * 0.93
    got = adaptive_resample(image, kernels, offsets_h, offsets_v, offset_unit=4, scale=4)
    want = cuda_kernel_loop(image, kernels, offsets_h, offsets_v, 4, 4)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=0)


def test_centre_delta_kernel_with_zero_offsets_averages_the_block_centre():
    """A delta at the centre tap, no offsets: the sample lands on the centre of each s x s block, the
    mean of its four middle pixels (s even)."""
    scale, k = 2, 7
    image = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).expand(1, 3, 8, 8).contiguous()
    kernels = torch.zeros(1, k * k, 4, 4)
    kernels[:, (k // 2) * k + k // 2] = 1
    zeros = torch.zeros(1, k * k, 4, 4)
    got = adaptive_resample(image, kernels, zeros, zeros, offset_unit=scale, scale=scale)
    want = torch.nn.functional.avg_pool2d(image, 2)
    torch.testing.assert_close(got, want)


def test_integer_offset_moves_the_centre_tap_by_whole_pixels():
    """Offsets of +1 with unit 2 move the centre sample 2 px right and down: the block mean 2 px away."""
    scale, k = 2, 7
    image = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    kernels = torch.zeros(1, k * k, 6, 6)
    kernels[:, (k // 2) * k + k // 2] = 1
    ones = torch.ones(1, k * k, 6, 6)
    got = adaptive_resample(image, kernels, ones, ones, offset_unit=scale, scale=scale)
    shifted = torch.nn.functional.avg_pool2d(image[..., 2:, 2:], 2)  # blocks 1 px right/down on the LR grid
    torch.testing.assert_close(got[..., :5, :5], shifted)


def test_gradients_reach_kernels_and_offsets():
    image, kernels, offsets_h, offsets_v = random_inputs(2, 8, 8)
    for t in (kernels, offsets_h, offsets_v):
        t.requires_grad_(True)
    adaptive_resample(image, kernels, offsets_h, offsets_v, offset_unit=2, scale=2).square().sum().backward()
    for t in (kernels, offsets_h, offsets_v):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_offset_gradient_matches_finite_differences():
    image, kernels, offsets_h, offsets_v = (t.double() for t in random_inputs(2, 8, 8))
    offsets_h.requires_grad_(True)
    offsets_v.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda oh, ov: adaptive_resample(image, kernels, oh, ov, offset_unit=2, scale=2),
        (offsets_h * 0.9, offsets_v * 0.9), eps=1e-7, atol=1e-5,
    )


def test_mismatched_kernel_shape_is_refused():
    image, kernels, offsets_h, offsets_v = random_inputs(2, 8, 8)
    with pytest.raises(ValueError, match=r"do not fit an image of 8x8 downscaled by 4"):
        adaptive_resample(image, kernels, offsets_h, offsets_v, offset_unit=4, scale=4)
