"""MATLAB-bicubic resizing: bit-exact against MATLAB-made files, and against a slow reference."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srlab.data import resize
from srlab.data.resize import bicubic_downscale, bicubic_upscale, downscaled_size, imresize
from srlab.errors import SrlabError
from conftest import BENCHMARKS


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def levels(x) -> np.ndarray:
    """8-bit levels of a quantised result, for exact comparisons."""
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    return np.round(x * 255).astype(np.int64)


def assert_levels_match(out: torch.Tensor, ref: np.ndarray) -> None:
    # The reference computes its weights with other float roundings (pow, Python's sum). Where the
    # exact sum is a tie k + 0.5, which happens for rational weights, those last-bit differences
    # decide the rounding, so a rare one-level difference is not an error. (The golden test above
    # is the bit-exact check against MATLAB itself; at x2 and x4 the weights are dyadic, sums are
    # exact and no difference at all is allowed.)
    diff = levels(out) - levels(ref)
    assert np.abs(diff).max() <= 1
    assert (diff != 0).mean() < 0.005


def random_levels(shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    """A random 8-bit image as floats in [0, 1]: the kind of input quantize=True expects."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, shape, generator=g).double() / 255).to(dtype)


# A slow, independent reference: MATLAB's algorithm written out per output pixel in float64.


def keys(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def reference_axis(a: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0]
    width = 4 / scale if scale < 1 else 4.0
    out = np.zeros((out_len, *a.shape[1:]))
    for i in range(out_len):
        u = (i + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based coordinates, as MATLAB
        left = math.floor(u - width / 2)
        taps = range(left, left + math.ceil(width) + 2)
        w = [scale * keys(scale * (u - j)) if scale < 1 else keys(u - j) for j in taps]
        for wj, j in zip(w, taps):
            out[i] += wj / sum(w) * a[min(max(j, 1), n) - 1]  # replicate the edge pixels
    return np.moveaxis(out, 0, axis)


def reference_imresize(x: np.ndarray, size, scales, quantize: bool) -> np.ndarray:
    v = np.round(x * 255) if quantize else x.copy()
    for axis in sorted((-2, -1), key=lambda a: scales[a]):  # smaller scale first, height on ties
        v = reference_axis(v, axis, size[axis], scales[axis])
        if quantize:
            v = np.floor(np.clip(v, 0, 255) + 0.5)  # uint8 cast: round half away from zero
    return v / 255 if quantize else v


# Golden: every pixel of the MATLAB-made LR images of Set5 and Set14.


def benchmark_pairs(scale: int):
    for hr_path in sorted(BENCHMARKS.glob("*/HR/*.png")):
        lr_path = hr_path.parents[1] / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
        yield hr_path, lr_path


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_is_bit_exact_with_matlab_files(scale):
    pairs = list(benchmark_pairs(scale))
    if not pairs:
        pytest.skip(f"no benchmark images under {BENCHMARKS}")
    mismatches = []
    for hr_path, lr_path in pairs:
        hr = read_png(hr_path)
        h, w = hr.shape[:2]
        hr = hr[: h - h % scale, : w - w % scale]  # MATLAB's modcrop, top-left anchored
        lr = read_png(lr_path)
        out = to_uint8(bicubic_downscale(to_tensor(hr), scale, quantize=True))
        assert out.shape == lr.shape, hr_path
        wrong = int((out != lr).sum())
        if wrong:
            mismatches.append(f"{hr_path.parts[-3]}/{hr_path.name}: {wrong} values differ")
    assert len(pairs) == 19
    assert mismatches == []


# Against the reference, for the scales the golden files do not cover.


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("quantize", [False, True])
def test_upscale_matches_reference(scale, quantize):
    x = random_levels((2, 7, 6), seed=scale)
    out = bicubic_upscale(x, scale, quantize=quantize)
    ref = reference_imresize(x.numpy(), (7 * scale, 6 * scale), (scale, scale), quantize)
    assert out.shape == (2, 7 * scale, 6 * scale)
    if quantize and scale == 3:
        assert_levels_match(out, ref)
    elif quantize:
        assert np.array_equal(levels(out), levels(ref))
    else:
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale": 1.5},
        {"scale": 2.5},
        {"scale": 0.6},
        {"scale": 0.3},
        {"scale": 0.25},  # 1/4 through imresize: the fast path, taps far outside the image
        {"size": (23, 5)},  # height up, width down: width goes first
        {"size": (9, 20)},
    ],
)
@pytest.mark.parametrize("quantize", [False, True])
def test_imresize_matches_reference(kwargs, quantize):
    x = random_levels((3, 13, 11), seed=7)
    out = imresize(x, quantize=quantize, **kwargs)
    if "scale" in kwargs:
        scales = (kwargs["scale"],) * 2
        size = (math.ceil(scales[0] * 13), math.ceil(scales[1] * 11))
    else:
        size = kwargs["size"]
        scales = (size[0] / 13, size[1] / 11)
    ref = reference_imresize(x.numpy(), size, scales, quantize)
    assert out.shape == (3, *size)
    if quantize:
        assert_levels_match(out, ref)
    else:
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_matches_reference_on_small_images(scale):
    # Images a few kernels wide: most outputs are border outputs, with taps replicated from the edge.
    x = random_levels((9, 14), seed=scale)
    ref = reference_imresize(x.numpy(), (-(-9 // scale), -(-14 // scale)), (1 / scale,) * 2, True)
    out = bicubic_downscale(x, scale, quantize=True)
    if scale == 3:
        assert_levels_match(out, ref)
    else:
        assert np.array_equal(levels(out), levels(ref))


# The fast paths change speed, never values.


@pytest.mark.parametrize(
    ("in_len", "out_len", "scale"), [(50, 25, 1 / 2), (51, 17, 1 / 3), (52, 13, 1 / 4), (9, 27, 3.0)]
)
def test_strided_runs_equal_the_general_gather(in_len, out_len, scale):
    plan = resize._plan(in_len, out_len, scale)
    assert plan.runs, "integer scales should take the strided path"
    general = dataclasses.replace(plan, runs=())
    x = random_levels((2, in_len, 5), seed=1) * 255
    assert torch.equal(resize._resize_axis(x, -2, plan), resize._resize_axis(x, -2, general))
    xt = x.transpose(-1, -2).contiguous()
    assert torch.equal(resize._resize_axis(xt, -1, plan), resize._resize_axis(xt, -1, general))


@pytest.mark.parametrize("scale", [2, 3, 4, 7, 8])
def test_the_exporters_phase_kernel_is_the_plans_middle(scale):
    # bicubic_upscale under torch.export / ONNX tracing runs the taps of _phase_kernel (numpy) as a convolution
    plan = resize._plan(16, 16 * scale, float(scale))
    rows = range(8 * scale, 9 * scale)  # q = 8, far from both borders
    offsets = plan.indices[list(rows)] - 8
    pad = int(offsets.abs().max())
    expected = torch.zeros(scale, 2 * pad + 1, dtype=torch.float64)
    expected.scatter_add_(1, offsets + pad, plan.weights[list(rows)])
    kernel = torch.from_numpy(resize._phase_kernel(scale))
    assert kernel.shape == expected.shape
    torch.testing.assert_close(kernel, expected, rtol=0, atol=3e-16)  # the weights' sums in another order


def test_bicubic_upscale_exports_with_torch_export():
    class Upscale(torch.nn.Module):
        def forward(self, x):
            return bicubic_upscale(x, 3)

    x = random_levels((1, 3, 10, 12), seed=2)
    exported = torch.export.export(Upscale(), (x,))  # failed on _plan's data-dependent sizes before
    torch.testing.assert_close(exported.module()(x), bicubic_upscale(x, 3), rtol=0, atol=1e-6)


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("call", [lambda x, q: bicubic_downscale(x, 3, quantize=q),
                                  lambda x, q: bicubic_upscale(x, 2, quantize=q),
                                  lambda x, q: imresize(x, scale=0.7, quantize=q)])
def test_bands_do_not_change_the_result(monkeypatch, call, quantize):
    x = random_levels((2, 3, 40, 31), seed=3, dtype=torch.float32)
    whole = call(x, quantize)
    monkeypatch.setattr(resize, "_BAND_ELEMENTS", 1)  # one output row per band
    assert torch.equal(call(x, quantize), whole)


def test_channels_last_input_gives_the_same_result():
    x = random_levels((1, 3, 20, 24), seed=4, dtype=torch.float32)
    permuted = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(bicubic_downscale(permuted, 2), bicubic_downscale(x, 2))


# Float mode.


def test_float_mode_is_within_rounding_of_the_quantised_mode():
    # Values kept inside (0, 1) so that MATLAB's clamp of the intermediate image never acts; where
    # it does (saturated edges) the two modes differ by many levels, by design. Otherwise the only
    # difference is rounding: half a level after pass 1, spread by sum|w| <= 1.19 of the kernel,
    # plus half a level at the end.
    g = torch.Generator().manual_seed(5)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 70, generator=g), 3, 1, 1)
    x = (0.25 + 0.5 * x).mul(255).round() / 255
    for scale in (2, 3, 4):
        for fn in (bicubic_downscale, bicubic_upscale):
            diff = (fn(x, scale) - fn(x, scale, quantize=True)).abs() * 255
            assert diff.max() <= 0.5 * 1.19 + 0.5, (fn.__name__, scale)
            assert diff.mean() < 0.35


def test_float_mode_keeps_dtype_and_does_not_round_or_clamp():
    x = torch.zeros(1, 12, 12)
    x[:, :, 6:] = 1.0  # a hard edge: bicubic overshoots on both sides
    out = bicubic_upscale(x, 2)
    assert out.dtype == torch.float32
    assert out.min() < 0 and out.max() > 1
    quantised = bicubic_upscale(x, 2, quantize=True)
    assert quantised.dtype == torch.float32
    assert quantised.min() == 0 and quantised.max() == 1
    assert torch.equal(quantised * 255, (quantised * 255).round())


def test_float32_and_float64_agree():
    x = random_levels((3, 30, 21), seed=6)
    out64 = bicubic_downscale(x, 3)
    out32 = bicubic_downscale(x.float(), 3)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-6)


def test_gradients_flow_in_float_mode():
    x = random_levels((3, 12, 10), seed=8, dtype=torch.float32).requires_grad_()
    out = bicubic_downscale(x, 2)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # Each output's weights sum to 1, so the gradient of the sum spreads a total of out.numel().
    torch.testing.assert_close(x.grad.sum(), torch.tensor(float(out.numel())))
    torch.testing.assert_close(out.detach(), bicubic_downscale(x.detach(), 2), rtol=0, atol=1e-6)


def test_quantize_rounds_the_input_to_8_bit_levels():
    x = random_levels((3, 16, 16), seed=9, dtype=torch.float32)
    noisy = x + 1e-4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(bicubic_downscale(noisy, 2, quantize=True), bicubic_downscale(x, 2, quantize=True))


# Shapes.


@pytest.mark.parametrize(("h", "w", "scale", "expected"), [
    (7, 9, 2, (4, 5)), (7, 9, 3, (3, 3)), (1, 5, 4, (1, 2)), (12, 12, 4, (3, 3)), (5, 3, 1, (5, 3)),
])
def test_downscale_output_size_is_ceil(h, w, scale, expected):
    assert bicubic_downscale(torch.rand(3, h, w), scale).shape == (3, *expected)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_upscale_output_size(scale):
    assert bicubic_upscale(torch.rand(2, 1, 5, 7), scale).shape == (2, 1, 5 * scale, 7 * scale)


def test_imresize_sizes_follow_matlab():
    x = torch.rand(7, 9)
    assert imresize(x, scale=0.5).shape == (4, 5)  # ceil(3.5), ceil(4.5)
    assert imresize(x, scale=1.7).shape == (12, 16)
    assert imresize(x, size=(3, 20)).shape == (3, 20)


def test_scale_one_is_the_identity():
    x = random_levels((3, 10, 11), seed=10)
    torch.testing.assert_close(bicubic_downscale(x, 1), x, rtol=0, atol=1e-12)
    assert torch.equal(bicubic_upscale(x, 1, quantize=True), x)


@pytest.mark.parametrize("quantize", [False, True])
def test_leading_dims_are_independent_images(quantize):
    x = random_levels((2, 3, 17, 15), seed=11, dtype=torch.float32)
    batched = bicubic_downscale(x, 2, quantize=quantize)
    for i in range(2):
        assert torch.equal(batched[i], bicubic_downscale(x[i], 2, quantize=quantize))
        for c in range(3):  # a plain (H, W) image too
            assert torch.equal(batched[i, c], bicubic_downscale(x[i, c], 2, quantize=quantize))


# Devices.


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("quantize", [False, True])
def test_cuda_matches_cpu(quantize):
    x = random_levels((2, 3, 45, 38), seed=12, dtype=torch.float32)
    for call in (lambda t: bicubic_downscale(t, 3, quantize=quantize),
                 lambda t: bicubic_upscale(t, 2, quantize=quantize),
                 lambda t: imresize(t, scale=0.45, quantize=quantize)):
        cpu, gpu = call(x), call(x.cuda())
        assert gpu.device.type == "cuda"
        if quantize:  # at most a one-level flip where float64 rounding lands on a tie
            assert ((gpu.cpu() - cpu).abs() * 255).max() <= 1
            assert ((gpu.cpu() != cpu).float().mean()) < 1e-3
        else:
            torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)


# Errors.


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bicubic_downscale(torch.rand(3, 8, 8), 0), "scale must be a real number >= 1"),
        (lambda: bicubic_downscale(torch.rand(3, 8, 8), "2"), "scale must be a real number >= 1"),
        (lambda: bicubic_upscale(torch.rand(3, 8, 8), -2), "scale must be an integer >= 1"),
        (lambda: bicubic_downscale(torch.rand(8), 2), r"shaped \(\.\.\., H, W\)"),
        (lambda: bicubic_downscale(torch.zeros(3, 8, 8, dtype=torch.uint8), 2), "float tensor"),
        (lambda: bicubic_downscale(torch.rand(3, 0, 8), 2), "empty"),
        (lambda: bicubic_downscale(np.zeros((8, 8)), 2), "torch.Tensor"),
        (lambda: imresize(torch.rand(8, 8)), "exactly one of scale= and size="),
        (lambda: imresize(torch.rand(8, 8), scale=0.5, size=(4, 4)), "exactly one of"),
        (lambda: imresize(torch.rand(8, 8), scale=0), "positive number"),
        (lambda: imresize(torch.rand(8, 8), scale=float("nan")), "positive number"),
        (lambda: imresize(torch.rand(8, 8), size=(4, 0)), "two positive ints"),
        (lambda: imresize(torch.rand(8, 8), size=4), "two positive ints"),
    ],
)
def test_bad_input_raises_srlab_error(call, message):
    with pytest.raises(SrlabError, match=message):
        call()


# Non-integer scales: MATLAB's imresize(hr, 1/s, 'bicubic') by the same rules, against the reference.


@pytest.mark.parametrize("scale", [1.5, 2.5, 2.7, 3.3])
@pytest.mark.parametrize("quantize", [False, True])
def test_downscale_at_a_non_integer_scale_matches_reference(scale, quantize):
    x = random_levels((3, 27, 20), seed=11)
    out = bicubic_downscale(x, scale, quantize=quantize)
    size = (math.ceil((1 / scale) * 27), math.ceil((1 / scale) * 20))
    ref = reference_imresize(x.numpy(), size, (1 / scale, 1 / scale), quantize)
    assert out.shape == (3, *size)
    if quantize:
        assert_levels_match(out, ref)  # non-dyadic weights: ties may round either way in the reference
    else:
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("height", "scale", "expected"),
    [
        (100, 2.7, 38),  # 100 / 2.7 = 37.04 -> 38 (MATLAB: ceil(scale * size))
        (27, 2.7, 10),  # a whole number of LR pixels: no extra row
        (10, 2.5, 4),
        (9, 1.5, 6),
        (7, 3, 3),  # integer scales: ceil(H / s) in integers, as before
        (12, 4.0, 3),
    ],
)
def test_downscaled_size_is_matlabs_ceil_rule(height, scale, expected):
    assert downscaled_size(height, height, scale) == (expected, expected)


def test_downscaled_size_never_differs_from_the_exact_ratio_at_common_scales():
    # ceil((1/s) * H) in doubles vs the exact rational ceil(H * q / p): equal for these scales and sizes,
    # so the float rule adds no row that exact arithmetic would not.
    for scale, (p, q) in {1.5: (3, 2), 2.5: (5, 2), 2.7: (27, 10), 3.3: (33, 10), 6: (6, 1)}.items():
        assert all(downscaled_size(h, 1, scale)[0] == -(-h * q // p) for h in range(1, 3000))


def test_downscale_refuses_scales_below_one():
    with pytest.raises(SrlabError, match=r"bicubic_downscale: scale must be a real number >= 1, got 0\.5"):
        bicubic_downscale(torch.rand(3, 8, 8), 0.5)
