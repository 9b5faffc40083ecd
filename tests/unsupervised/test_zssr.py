"""ZSSR (srlab.unsupervised.zssr): its parts against hand-computed values, and whole runs on tiny images
with a few iterations of a small network."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from srlab.data.io import read_rgb
from srlab.errors import SrlabError
from srlab.unsupervised.zssr import (
    ZSSRConfig, back_project, config_for, downscale, fit_slope, load_kernel, sample_father_transform,
    self_ensemble_median, shift_kernel, should_reduce_lr, upscale, warp, zssr,
)
from srlab.unsupervised import zssr as zssr_module
from srlab.unsupervised.zssr import _geometric, _undo_geometric

TINY = dict(crop_size=16, width=8, depth=3, max_iters=4, run_test_every=2)


def smooth_image(height: int = 24, width: int = 24, seed: int = 0) -> torch.Tensor:
    """A (3, H, W) image with some structure: low-frequency waves plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 3, height), torch.linspace(0, 3, width), indexing="ij")
    base = torch.stack([torch.sin(xs * 2 + ys), torch.cos(ys * 3 - xs), torch.sin(xs * ys)])
    return (0.5 + 0.35 * base + 0.05 * torch.rand(3, height, width, generator=g)).clamp(0, 1)


# ------------------------------------------------------------------------------------- the lr policy


def test_fit_slope_matches_the_hand_computed_line():
    # x mean 100, Sxx 25000, y mean 3.6, Sxy -300: slope -0.012; fitted 4.8 4.2 3.6 3.0 2.4, SSR 0.1;
    # std = sqrt(0.1 / ((5 - 4) * 25000)) = 0.002
    slope, std = fit_slope([0, 50, 100, 150, 200], [5, 4, 3.5, 3, 2.5])
    assert slope == pytest.approx(-0.012, rel=1e-12)
    assert std == pytest.approx(0.002, rel=1e-12)
    # numpy's polyfit gives the same slope; its covariance now divides by N - 2 where ZSSR's numpy took N - 4
    (np_slope, _), cov = np.polyfit([0, 50, 100, 150, 200], [5, 4, 3.5, 3, 2.5], 1, cov=True)
    assert np_slope == pytest.approx(slope, rel=1e-9)
    assert math.sqrt(cov[0, 0] * 3 / 1) == pytest.approx(std, rel=1e-9)


def test_the_rate_drops_when_the_error_curve_is_flat_and_not_while_it_falls():
    steps = [0, 50, 100, 150, 200]
    assert not should_reduce_lr(steps, [5, 4, 3.5, 3, 2.5], ratio=1.5)  # -1.5 * slope = 0.018 > std 0.002
    # slope 1e-5 (std of the noise dominates): reduce
    assert should_reduce_lr(steps, [1.0, 1.01, 0.99, 1.0, 1.005], ratio=1.5)
    # falling, but slower than its uncertainty over 1.5: slope -0.00012, std 0.000196 -> reduce
    assert should_reduce_lr(steps, [1.02, 0.99, 1.0, 0.97, 1.0], ratio=1.5)
    with pytest.raises(ValueError, match="at least 5 points"):
        fit_slope([0, 1, 2, 3], [1, 1, 1, 1])


# --------------------------------------------------------------------------------- fathers and sons


def test_father_modes_follow_the_configured_probabilities():
    rng, config = np.random.default_rng(1), ZSSRConfig()
    modes = [sample_father_transform(rng, [(64, 64)], config)[2] for _ in range(4000)]
    share = {m: modes.count(m) / len(modes) for m in ("leave_as_is", "no_interp", "affine")}
    assert share["leave_as_is"] == pytest.approx(0.05, abs=0.015)
    assert share["no_interp"] == pytest.approx(0.45, abs=0.03)
    assert share["affine"] == pytest.approx(0.50, abs=0.03)


def test_fathers_come_from_the_smallest_source_at_least_as_large_as_the_drawn_scale():
    # Gradual x2 after three steps: sources at 1, (1, 1.5), (1.5, 1), (1.5, 1.5) times the input. The scale
    # is uniform in [0.5, 1.5], so half the non-trivial draws (scale > 1) use the 1.5x source (index 3).
    config = config_for("gradual", 2)
    shapes = [(20, 20), (20, 30), (30, 20), (30, 30)]
    rng = np.random.default_rng(2)
    draws = [sample_father_transform(rng, shapes, config) for _ in range(3000)]
    indices = [index for index, _, mode in draws if mode != "leave_as_is"]
    assert set(indices) == {0, 3}
    assert indices.count(3) / len(indices) == pytest.approx(0.5, abs=0.03)
    # with only the input as a source, every father comes from it
    assert {sample_father_transform(rng, shapes[:1], config)[0] for _ in range(200)} == {0}


def test_fathers_without_interpolation_are_exact_rotated_and_flipped_crops():
    config = ZSSRConfig(crop_size=8)
    image = torch.arange(3 * 20 * 20, dtype=torch.float32).view(3, 20, 20) / 1200
    rng, seen = np.random.default_rng(3), 0
    while seen < 20:
        index, matrix, mode = sample_father_transform(rng, [(20, 20)], config)
        if mode == "affine":
            continue
        seen += 1
        father = warp(image, matrix, (8, 8))
        matches = [torch.equal(father, _geometric(image, k)[:, y:y + 8, x:x + 8])
                   for k in range(8) for y in range(13) for x in range(13)]
        assert any(matches), matrix


def test_warp_is_opencv_s_mapping_a_shift_moves_the_pixels():
    image = torch.rand(3, 10, 10, dtype=torch.float64)
    shifted = warp(image, np.array([[1.0, 0, -2], [0, 1, -3], [0, 0, 1]]), (5, 6))  # output (x, y) <- (x+2, y+3)
    assert torch.equal(shifted, image[:, 3:8, 2:8])
    assert torch.equal(warp(image, np.eye(3), (12, 12))[:, 10:, :], torch.zeros(3, 2, 12, dtype=torch.float64))


def test_a_delta_kernel_subsamples_and_a_blur_matches_scipy_correlate():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    even = torch.rand(3, 12, 10, dtype=torch.float64)
    delta = torch.ones(1, 1, dtype=torch.float64)
    assert torch.equal(downscale(even, (2.0, 2.0), delta), even[:, ::2, ::2])
    x = torch.rand(3, 13, 11, dtype=torch.float64)  # odd sizes: rows round(linspace(0, H - 2, 7)), not ::2
    for shape in [(5, 5), (4, 6)]:
        kernel = torch.rand(shape, dtype=torch.float64)
        got = downscale(x, (2.0, 2.0), kernel)
        rows = np.round(np.linspace(0, 13 - 2, 7)).astype(int)
        cols = np.round(np.linspace(0, 11 - 2, 6)).astype(int)
        for c in range(3):
            blurred = scipy_ndimage.correlate(x[c].numpy(), kernel.numpy(), mode="reflect")
            np.testing.assert_allclose(got[c].numpy(), blurred[rows][:, cols], rtol=0, atol=1e-12)


def test_sons_are_the_ceil_size_and_upscaling_keeps_the_father_s_size():
    father = torch.rand(3, 9, 8)
    son = downscale(father, (2.0, 2.0))
    assert son.shape == (3, 5, 4)
    assert upscale(son, (2.0, 2.0), (9, 8)).shape == (3, 9, 8)
    assert upscale(son, (2.0, 2.0)).shape == (3, 10, 8)


def test_shift_kernel_moves_the_centre_of_mass_where_zssr_wants_it():
    ys, xs = torch.meshgrid(torch.arange(13.0), torch.arange(13.0), indexing="ij")
    kernel = torch.exp(-((ys - 4.3) ** 2 + (xs - 7.6) ** 2) / 4).double()
    shifted = shift_kernel(kernel / kernel.sum(), (2.0, 2.0))
    pad = (shifted.shape[0] - 13) // 2
    ys, xs = torch.meshgrid(torch.arange(float(shifted.shape[0])), torch.arange(float(shifted.shape[1])),
                            indexing="ij")
    mass = [float((ys * shifted).sum() / shifted.sum()), float((xs * shifted).sum() / shifted.sum())]
    wanted = 13 / 2 + 0.5 * (2 - 1) + pad  # shape / 2 + (sf - shape % 2) / 2, in the padded kernel
    assert mass == pytest.approx([wanted, wanted], abs=1e-9)
    assert float(shifted.sum()) == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------------ back-projection, ensemble


@pytest.mark.parametrize("kernel", [None, torch.full((3, 3), 1 / 9)])
def test_back_projection_reduces_the_lr_consistency_error(kernel):
    lr = smooth_image(12, 14)
    sr = (upscale(lr, (2.0, 2.0)) + 0.1 * torch.randn(3, 24, 28, generator=torch.Generator().manual_seed(0)))
    sr = sr.clamp(0, 1)

    def error(image):
        return float((downscale(image, (2.0, 2.0), kernel) - lr).abs().mean())

    errors = [error(sr)]
    for _ in range(10):
        sr = back_project(sr, lr, (2.0, 2.0), kernel)
        errors.append(error(sr))
    assert errors[1] < errors[0] and errors[-1] < 0.3 * errors[0], errors


def test_self_ensemble_median_is_numpy_s_median_of_the_eight_transforms():
    image = torch.rand(3, 6, 6)
    outputs = [torch.rand(3, 6, 6) for _ in range(8)]
    expected = np.median(np.stack([o.numpy() for o in outputs]), axis=0)
    np.testing.assert_allclose(self_ensemble_median(outputs).numpy(), expected, rtol=0, atol=1e-7)
    assert torch.equal(self_ensemble_median(outputs[:3]), torch.stack(outputs[:3]).median(dim=0).values)
    transformed = [_geometric(image, k) for k in range(8)]
    assert len({t.numpy().tobytes() for t in transformed}) == 8  # the 8 symmetries of the square
    assert all(torch.equal(_undo_geometric(t, k), image) for k, t in enumerate(transformed))


# ---------------------------------------------------------------------------------------- whole runs


def test_zssr_writes_the_scaled_size_and_is_deterministic_for_a_seed():
    image = smooth_image(24, 20)
    config = ZSSRConfig(scale_factors=[(2.0, 2.0)], **TINY)
    first, again, other = (zssr(image, config, seed=s) for s in (7, 7, 8))
    assert first.image.shape == (3, 48, 40)
    assert first.iterations == [4] and first.stopped_by == ["max_iters"]
    assert torch.equal(first.image, again.image)
    assert not torch.equal(first.image, other.image)
    assert 0 <= float(first.image.min()) and float(first.image.max()) <= 1


def test_a_gradual_schedule_runs_every_step_to_the_final_size():
    config = config_for("gradual", 2)
    assert config.scale_factors == [(1.0, 1.5), (1.5, 1.0), (1.5, 1.5), (1.5, 2.0), (2.0, 1.5), (2.0, 2.0)]
    assert config.back_projection_iters == [6, 6, 8, 10, 10, 12]
    config = ZSSRConfig(scale_factors=config.scale_factors, back_projection_iters=[1] * 6, **{**TINY, "max_iters": 1})
    result = zssr(smooth_image(16, 12), config, seed=0)
    assert result.image.shape == (3, 32, 24) and result.iterations == [1] * 6


def test_max_seconds_stops_training_and_still_gives_the_image():
    config = ZSSRConfig(scale_factors=[(2.0, 2.0)], **{**TINY, "max_iters": 3000})
    result = zssr(smooth_image(), config, max_seconds=1e-9)
    assert result.stopped_by == ["max_seconds"] and result.iterations[0] < 3000
    assert result.image.shape == (3, 48, 48)


def test_the_policy_checks_the_last_errors_and_training_stops_below_the_minimum_rate(monkeypatch):
    # Every check says "flat": the rate drops 1e-3 -> 1e-4 -> 1e-5 -> 1e-6 < 9e-6 at the third check.
    seen = []

    def always_flat(steps, errors, ratio):
        seen.append(list(steps))
        return True

    monkeypatch.setattr(zssr_module, "should_reduce_lr", always_flat)
    config = ZSSRConfig(scale_factors=[(2.0, 2.0)], **{**TINY, "max_iters": 400, "run_test_every": 1}, min_iters=2,
                        learning_rate_policy_check_every=5, learning_rate_slope_range=5)
    result = zssr(smooth_image(12, 12), config)
    assert result.stopped_by == ["min_learning_rate"]
    # checks at it = 4, 9, 14 ((it + 1) % 5 == 0, each more than min_iters after the last drop), each on
    # the last slope_range / run_test_every = 5 reconstruction errors
    assert seen == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    assert result.iterations == [15]


def test_load_kernel_reads_npy_and_text_and_refuses_junk(tmp_path):
    kernel = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float64)
    np.save(tmp_path / "k.npy", kernel)
    np.savetxt(tmp_path / "k.txt", kernel)
    for name in ("k.npy", "k.txt"):
        loaded = load_kernel(str(tmp_path / name))
        np.testing.assert_allclose(loaded.numpy(), kernel / 16)
    (tmp_path / "bad.txt").write_text("1 2\n3\n")
    with pytest.raises(SrlabError, match="bad.txt': cannot read it"):
        load_kernel(str(tmp_path / "bad.txt"))
    np.save(tmp_path / "neg.npy", -kernel)
    with pytest.raises(SrlabError, match="positive sum"):
        load_kernel(str(tmp_path / "neg.npy"))


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_writes_name_x_scale_and_reports_a_bad_image(tmp_path, capsys):
    Image.fromarray((smooth_image(20, 18).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "zssr", tmp_path / "a.png", tmp_path / "broken.png", "-o", out,
                                   "--scale", "2", "--iterations", "1", "--quiet", "--device", "cpu")
    assert code == 1
    assert "broken.png" in stderr and stderr.count("srlab: error:") == 1
    assert read_rgb(out / "a_x2.png").shape == (3, 40, 36)
    assert "a_x2.png" in stdout and "1 iterations (max_iters)" in stdout
    assert not (out / "broken_x2.png").exists()


def test_cli_max_seconds_writes_the_image(tmp_path, capsys):
    Image.fromarray((smooth_image(16, 16).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "b.png")
    code, stdout, _ = run_cli(capsys, "zssr", tmp_path / "b.png", "-o", tmp_path, "--scale", "2.5",
                              "--max_seconds", "0.000001", "--quiet", "--device", "cpu")
    assert code == 0 and "(max_seconds)" in stdout
    assert read_rgb(tmp_path / "b_x2.5.png").shape == (3, 40, 40)


@pytest.mark.parametrize("argv, mention", [
    (["--scale", "1"], "--scale"),
    (["--scale", "2", "--config", "kernel"], "--config kernel needs --kernel"),
    (["--scale", "2", "--kernel", "missing.npy"], "missing.npy"),
    (["--scale", "2", "--max_seconds", "-3"], "--max_seconds"),
])
def test_cli_bad_flags_are_one_line_errors(tmp_path, capsys, argv, mention):
    Image.new("RGB", (8, 8)).save(tmp_path / "c.png")
    code, _, stderr = run_cli(capsys, "zssr", tmp_path / "c.png", "-o", tmp_path / "out", *argv)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("srlab: error:"), stderr
    assert mention in lines[0]
