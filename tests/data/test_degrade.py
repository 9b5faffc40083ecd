"""Degradations D(y; δ) (srlab.data.degrade) against independent references: the kernels against their
closed forms (SciPy's Gaussian density and Bessel J1), JPEG against Pillow, noise statistics, the presets'
published ranges, and bit-exact replay from a seed or a recorded δ."""

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import special
from scipy.stats import multivariate_normal

from conftest import BENCHMARKS, needs_benchmarks
from srlab.data.datasets import modcrop
from srlab.data.degrade import apply_ops, parse_degradation, sample_rng
from srlab.data.degrade.kernels import bessel_j1, make_kernel, read_kernel_file, sinc_kernel
from srlab.data.degrade.ops import gaussian_noise, jpeg, poisson_noise
from srlab.data.io import read_rgb, sample_photo
from srlab.data.resize import bicubic_downscale
from srlab.errors import SrlabError


def _taps(size):
    """(x, y) of every tap, x the column: the layout of the kernels."""
    axis = np.arange(size) - (size - 1) / 2
    x, y = np.meshgrid(axis, axis)
    return np.stack([x, y], axis=-1)


def _covariance(sigma_x, sigma_y, theta):
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T


@pytest.mark.parametrize("sigma_x, sigma_y, theta", [(1.5, 1.5, 0.0), (2.5, 0.7, 0.6), (0.4, 3.0, -2.2)])
def test_gaussian_kernels_are_the_closed_form_density(sigma_x, sigma_y, theta):
    density = multivariate_normal([0, 0], _covariance(sigma_x, sigma_y, theta)).pdf(_taps(21))
    kernel = make_kernel({"type": "gaussian", "size": 21, "sigma_x": sigma_x, "sigma_y": sigma_y, "theta": theta})
    np.testing.assert_allclose(kernel, density / density.sum(), rtol=1e-10, atol=1e-15)


def test_moved_gaussian_centre_is_the_density_about_that_point():
    density = multivariate_normal([1.5, 1.5], 2.0**2 * np.eye(2)).pdf(_taps(25))
    kernel = make_kernel({"type": "gaussian", "size": 25, "sigma_x": 2.0, "center": [1.5, 1.5]})
    np.testing.assert_allclose(kernel, density / density.sum(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("kind, shape", [
    ("generalized_gaussian", lambda q, beta: np.exp(-0.5 * q**beta)),
    ("plateau", lambda q, beta: 1 / (1 + q**beta)),
])
@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_generalized_and_plateau_kernels_follow_their_formulas(kind, shape, beta):
    taps = _taps(15)
    inverse = np.linalg.inv(_covariance(2.0, 1.0, 0.9))
    q = np.einsum("...i,ij,...j->...", taps, inverse, taps)
    expected = shape(q, beta)
    kernel = make_kernel({"type": kind, "size": 15, "sigma_x": 2.0, "sigma_y": 1.0, "theta": 0.9, "beta": beta})
    np.testing.assert_allclose(kernel, expected / expected.sum(), rtol=1e-10, atol=1e-15)


def test_generalized_gaussian_of_beta_one_is_the_gaussian():
    common = {"size": 11, "sigma_x": 1.3, "sigma_y": 2.1, "theta": 0.3}
    np.testing.assert_allclose(make_kernel({"type": "generalized_gaussian", "beta": 1.0, **common}),
                               make_kernel({"type": "gaussian", **common}), rtol=1e-12)


@pytest.mark.parametrize("cutoff", [math.pi / 5, math.pi / 2, 2.9])
def test_sinc_kernel_is_the_jinc_form(cutoff):
    r = np.hypot(*np.moveaxis(_taps(13), -1, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(r == 0, cutoff**2 / (4 * np.pi), cutoff * special.j1(cutoff * r) / (2 * np.pi * r))
    np.testing.assert_allclose(sinc_kernel(13, cutoff), expected / expected.sum(), rtol=1e-10, atol=1e-15)


def test_bessel_j1_is_scipys_over_the_arguments_of_large_kernels():
    x = np.linspace(0, 100, 20001)
    np.testing.assert_allclose(bessel_j1(x), special.j1(x), rtol=0, atol=1e-13)


def test_kernel_files_are_read_and_bad_ones_refused(tmp_path):
    kernel = np.arange(9, dtype=np.float64).reshape(3, 3) + 1
    np.save(tmp_path / "k.npy", kernel)
    (tmp_path / "k.txt").write_text("1 2 3\n4 5 6\n7 8 9\n")
    (tmp_path / "k.csv").write_text("1,2,3\n4,5,6\n7,8,9\n")
    for name in ("k.npy", "k.txt", "k.csv"):
        np.testing.assert_allclose(read_kernel_file(tmp_path / name), kernel / kernel.sum())
    (tmp_path / "even.txt").write_text("1 2\n3 4\n")
    with pytest.raises(SrlabError, match=r"even.txt' holds a 2x2 array: a kernel is 2-D with odd sides"):
        read_kernel_file(tmp_path / "even.txt")
    with pytest.raises(SrlabError, match="cannot read kernel file .*missing.npy"):
        read_kernel_file(tmp_path / "missing.npy")


def test_blur_by_a_file_kernel_of_one_tap_changes_nothing(tmp_path):
    (tmp_path / "delta.txt").write_text("0 0 0\n0 1 0\n0 0 0\n")
    hr = sample_photo()[:, :40, :40].float()
    ops = [{"op": "blur", "kernel": {"type": "file", "path": str(tmp_path / "delta.txt")}}]
    assert torch.equal(apply_ops(hr, ops), hr.mul(255).round().div(255))


@pytest.mark.parametrize("quality", [10, 55, 95])
def test_jpeg_is_pillows_encoder_and_decoder(quality):
    image = sample_photo()[:, :48, :64].float()
    buffer = io.BytesIO()
    Image.fromarray(image.mul(255).round().byte().permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
    expected = torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(jpeg(image, quality), expected)


def test_gaussian_noise_has_the_asked_sigma_per_channel_or_shared_in_grey():
    grey = torch.full((3, 256, 256), 0.5)
    colour = gaussian_noise(grey, 15.0, False, seed=1) - grey
    assert abs(colour.std().item() * 255 - 15) < 0.2 and abs(colour.mean().item()) * 255 < 0.1
    assert abs(np.corrcoef(colour[0].flatten(), colour[1].flatten())[0, 1]) < 0.02
    shared = gaussian_noise(grey, 15.0, True, seed=1) - grey
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[1], shared[2])
    assert abs(shared.std().item() * 255 - 15) < 0.3


def test_correlated_noise_has_the_asked_covariance():
    grey = torch.full((3, 256, 256), 0.5)
    covariance = np.array([[100.0, 60.0, 20.0], [60.0, 90.0, 30.0], [20.0, 30.0, 50.0]])
    noise = (gaussian_noise(grey, 0.0, False, seed=2, covariance=covariance.tolist()) - grey) * 255
    measured = np.cov(noise.reshape(3, -1).double().numpy())
    np.testing.assert_allclose(measured, covariance, atol=3.0)


def test_poisson_noise_variance_is_the_mean_over_the_levels():
    # 256 distinct values: Real-ESRGAN's level count is 256, so the variance of v + noise is v / 256 * scale².
    ramp = torch.arange(256.0).div(255).repeat(3, 256, 1)
    for scale in (1.0, 2.0):
        noise = poisson_noise(ramp, scale, False, seed=3) - ramp
        inner = (ramp > 0.2) & (ramp < 0.8)  # away from the clamping at 0 and 1
        expected = (ramp[inner].mean() / 256 * scale**2).item()
        assert abs(noise[inner].var().item() / expected - 1) < 0.03
        assert abs(noise[inner].mean().item()) < 0.002 * scale


def test_bicubic_preset_is_srlabs_d():
    hr = modcrop(sample_photo().float(), 4)
    lr, _ = parse_degradation({"preset": "bicubic"}, 4)(hr, sample_rng(0))
    assert torch.equal(lr, bicubic_downscale(hr, 4, quantize=True))


@needs_benchmarks
def test_bicubic_preset_makes_the_benchmark_lr_images():
    hr = modcrop(read_rgb(BENCHMARKS / "Set5" / "HR" / "bird.png"), 3)
    lr, _ = parse_degradation({"preset": "bicubic"}, 3)(hr, sample_rng(0))
    assert torch.equal(lr, read_rgb(BENCHMARKS / "Set5" / "LR_bicubic" / "X3" / "birdx3.png"))


@pytest.mark.parametrize("preset", ["realesrgan", "bsrgan"])
def test_presets_reproduce_from_the_seed_and_from_the_recorded_delta(preset):
    hr = sample_photo()[:, :96, :96].float()
    degradation = parse_degradation({"preset": preset}, 4)
    lr, ops = degradation(hr, sample_rng(7, 0, 3))
    again, ops_again = degradation(hr, sample_rng(7, 0, 3))
    assert ops == ops_again and torch.equal(lr, again)
    assert lr.shape == (3, 24, 24) and torch.equal(lr, lr.mul(255).round().div(255))
    assert torch.equal(apply_ops(hr, json.loads(json.dumps(ops))), lr)
    assert degradation.sample(sample_rng(7, 0, 4), (96, 96)) != ops  # another index, another δ


def _kernels(ops):
    return [entry["kernel"] for entry in ops if entry["op"] == "blur"]


def test_realesrgan_draws_from_the_published_ranges():
    degradation = parse_degradation({"preset": "realesrgan"}, 4)
    deltas = [degradation.sample(sample_rng(0, i), (128, 128)) for i in range(300)]
    sizes, qualities, sigmas, poisson = [], [], [], []
    for ops in deltas:
        last_resize = max(i for i, e in enumerate(ops) if e["op"] == "resize")
        assert ops[last_resize]["size"] == [32, 32]
        # After the resize to the LR size: the final sinc filter and/or the second JPEG, nothing else.
        assert all(e["op"] == "jpeg" or e["kernel"]["type"] == "sinc" for e in ops[last_resize + 1:])
        assert sum(e["op"] == "jpeg" for e in ops) == 2
        for kernel in _kernels(ops):
            sizes.append(kernel["size"])
            if kernel["type"] != "sinc":
                assert 0.2 <= kernel["sigma_x"] <= 3.0
        qualities += [e["quality"] for e in ops if e["op"] == "jpeg"]
        sigmas += [e["sigma"] for e in ops if e["op"] == "gaussian_noise"]
        poisson += [e["scale"] for e in ops if e["op"] == "poisson_noise"]
    assert set(sizes) == set(range(7, 22, 2))
    assert min(qualities) >= 30 and max(qualities) <= 95 and max(qualities) - min(qualities) > 55
    assert 1 <= min(sigmas) and max(sigmas) <= 30 and max(sigmas) > 25
    assert 0.05 <= min(poisson) and max(poisson) <= 3.0
    # Gaussian or Poisson noise, half and half, at both orders.
    assert 0.4 < len(sigmas) / (2 * len(deltas)) < 0.6


def test_bsrgan_keeps_its_order_rules_and_ranges():
    degradation = parse_degradation({"preset": "bsrgan"}, 4)
    for i in range(200):
        ops = degradation.sample(sample_rng(0, i), (128, 128))
        assert ops[-1]["op"] == "jpeg" and all(30 <= e["quality"] <= 95 for e in ops if e["op"] == "jpeg")
        levels = [e["sigma"] for e in ops if e["op"] == "gaussian_noise" and "covariance" not in e]
        assert all(2 <= s <= 25 and float(s).is_integer() for s in levels)
        assert all(k["size"] % 2 == 1 and 7 <= k["size"] <= 25 for k in _kernels(ops))


def test_user_steps_sample_their_ranges_and_must_end_at_the_lr_size():
    steps = [{"step": "blur", "kernel": "aniso", "sigma": [0.5, 2], "size": [7, 13]},
             {"step": "downscale", "method": ["area", "nearest"]},
             {"step": "noise", "sigma": 15, "gray": 0.5}, {"step": "jpeg", "quality": 70, "prob": 0.5}]
    degradation = parse_degradation(steps, 2)
    ops = degradation.sample(sample_rng(1), (64, 48))
    assert ops[0]["kernel"]["size"] in (7, 9, 11, 13) and 0.5 <= ops[0]["kernel"]["sigma_x"] <= 2
    assert ops[1] == {"op": "resize", "size": [32, 24], "method": ops[1]["method"]}
    assert ops[2]["sigma"] == 15.0
    with pytest.raises(SrlabError, match=r"end at 240x240, not at the LR size 120x120 .* add a \{step: downscale\}"):
        parse_degradation([{"step": "noise", "sigma": 5}], 2)
    with pytest.raises(SrlabError, match=r"a kernel size is an odd integer or a range holding one, got \[8, 8\]"):
        parse_degradation([{"step": "blur", "size": [8, 8]}, {"step": "downscale"}], 2)


@pytest.mark.parametrize("spec, message", [
    ({"preset": "realesrgan2"}, "unknown degradation preset 'realesrgan2': use one of bicubic, realesrgan, bsrgan"),
    ([{"step": "sharpen"}], r"degradation step 0 \('sharpen'\) is not one of blur, downscale, noise, jpeg"),
    ([{"step": "noise", "sigmaa": 3}], "degradation step 0 \\(noise\\): unknown parameter 'sigmaa'"),
    ({"preset": "bicubic", "steps": []}, "degradation must be {preset: NAME}"),
])
def test_bad_degradations_are_refused_in_one_line(spec, message):
    with pytest.raises(SrlabError, match=message):
        parse_degradation(spec, 4)


def test_a_degradation_downscales():
    with pytest.raises(SrlabError, match="a degradation downscales: its scale must be a number >= 1, got 0.5"):
        parse_degradation({"preset": "realesrgan"}, 0.5)


def test_bad_delta_entries_are_refused_in_one_line():
    hr = torch.zeros(3, 8, 8)
    with pytest.raises(SrlabError, match="unknown op 'sharpen': use one of blur, resize"):
        apply_ops(hr, [{"op": "sharpen"}])
    with pytest.raises(SrlabError, match="'size' must be an odd integer >= 1, got 4"):
        apply_ops(hr, [{"op": "blur", "kernel": {"type": "gaussian", "size": 4, "sigma_x": 1.0}}])
    with pytest.raises(SrlabError, match="JPEG quality must be 1 to 100"):
        apply_ops(hr, [{"op": "jpeg", "quality": 0}])

