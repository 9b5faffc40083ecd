"""Deep Image Prior: the network and downsampler compute what the official code computes (fixture made by
``make_dip_fixture.py`` from DmitryUlyanov/deep-image-prior), the fit, and ``srlab dip``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import photo, run_cli
from make_dip_fixture import SIZES, fixture_inputs, fixture_weights
from srlab.errors import SrlabError
from srlab.unsupervised.dip import (
    DipSettings, LanczosDownsampler, canvas_size, lanczos2_kernel, skip_network, super_resolve,
)

FIXTURE = np.load(Path(__file__).with_name("dip_official.npz"))
# The official SR network's parameter count (get_net(32, 'skip', 'reflection', skip_n33d=128, skip_n33u=128,
# skip_n11=4, num_scales=5, upsample_mode='bilinear'), counted from the official code at the fixture's commit).
OFFICIAL_PARAMETERS = 2_217_831


def lr_photo(width: int, height: int) -> torch.Tensor:
    return torch.from_numpy(photo("astronaut", (width, height)).copy()).permute(2, 0, 1).float() / 255


def test_the_state_dict_lists_the_official_keys_and_shapes():
    official = [(key, shape) for key, shape in json.loads(str(FIXTURE["keys"]))]
    network = skip_network()
    assert [(k, list(v.shape)) for k, v in network.state_dict().items()] == official
    assert sum(p.numel() for p in network.parameters()) == OFFICIAL_PARAMETERS
    # the names, scale 0: Concat "1", its skip branch "0" and deeper branch "1", each conv a Sequential of
    # (reflection pad, conv); the 3x3 conv after the Concat "3"; the final 1x1 conv "9"
    assert {"1.0.1.1.weight", "1.1.1.1.weight", "3.1.weight", "9.1.weight"} <= {k for k, _ in official}


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_the_network_computes_the_official_output_for_the_same_weights(height, width):
    inputs = fixture_inputs()
    assert np.allclose([inputs[k].astype(np.float64).sum() for k in sorted(inputs)], FIXTURE["input_sums"])
    network = skip_network()
    network.load_state_dict(
        {k: torch.from_numpy(v) for k, v in fixture_weights(network.state_dict()).items()}, strict=False
    )
    network.train()  # as the notebook runs it
    with torch.no_grad():
        output = network(torch.from_numpy(inputs[f"noise_{height}x{width}"])).numpy()
    expected = FIXTURE[f"output_{height}x{width}"]
    assert output.shape == expected.shape == (1, 3, height, width)
    # float32 sums in another order (threads, BLAS) move outputs by ~1e-5; a structural difference by ~0.1
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-4)
    assert expected.std() > 0.05  # the fixture's weights make an image, not a flat sigmoid


def test_lanczos2_kernel_is_the_closed_form_and_the_official_one():
    def lanczos2(x: float) -> float:  # sinc(x) sinc(x / 2), x never 0 at the half-pixel phase
        return math.sin(math.pi * x) / (math.pi * x) * math.sin(math.pi * x / 2) / (math.pi * x / 2)

    for factor in (2, 3, 4):
        taps = [lanczos2((j + 0.5 - 2 * factor) / factor) for j in range(4 * factor)]
        closed = np.outer(taps, taps) / np.sum(np.outer(taps, taps))
        np.testing.assert_allclose(lanczos2_kernel(factor).numpy(), closed, rtol=0, atol=1e-15)
    np.testing.assert_allclose(lanczos2_kernel(4).numpy(), FIXTURE["downsampler_kernel_x4"], rtol=0, atol=1e-15)
    kernel = lanczos2_kernel(4)
    assert kernel.shape == (16, 16) and torch.equal(kernel, kernel.T) and (kernel[0, 0] > 0 > kernel[0, 4])


def test_the_downsampler_gives_the_official_output_and_the_lr_size():
    image = torch.from_numpy(fixture_inputs()["downsampler_input"])
    np.testing.assert_allclose(LanczosDownsampler(4)(image).numpy(), FIXTURE["downsampler_output_x4"],
                               rtol=0, atol=1e-6)
    for factor in (2, 3, 4, 8):
        assert LanczosDownsampler(factor)(torch.rand(1, 3, 5 * factor, 7 * factor)).shape == (1, 3, 5, 7)
    flat = torch.full((1, 3, 24, 24), 0.25)
    torch.testing.assert_close(LanczosDownsampler(3)(flat), torch.full((1, 3, 8, 8), 0.25))


def test_the_canvas_is_a_multiple_of_32_and_at_least_64():
    assert canvas_size(44, 52) == (64, 64)
    assert canvas_size(288, 300) == (288, 320)
    assert canvas_size(65, 1) == (96, 64)


@pytest.mark.parametrize(("width", "height", "scale"), [(7, 5, 4), (5, 9, 3), (3, 2, 2)])
def test_odd_sizes_give_scale_times_the_lr_size(width, height, scale):
    result = super_resolve(lr_photo(width, height), DipSettings(scale=scale, iterations=1))
    assert result.sr.shape == (3, scale * height, scale * width)
    assert result.iterations == 1 and 0 <= result.sr.min() and result.sr.max() <= 1


def test_a_short_fit_lowers_the_lr_loss():
    result = super_resolve(lr_photo(12, 10), DipSettings(iterations=12))
    assert len(result.lr_losses) == 12
    assert np.mean(result.lr_losses[-3:]) < 0.6 * np.mean(result.lr_losses[:3])


def test_the_fit_is_deterministic_per_seed_and_leaves_torch_rng_alone():
    lr = lr_photo(9, 8)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = super_resolve(lr, DipSettings(iterations=3, seed=5))
    assert torch.equal(torch.get_rng_state(), before)
    again = super_resolve(lr, DipSettings(iterations=3, seed=5))
    other = super_resolve(lr, DipSettings(iterations=3, seed=6))
    assert torch.equal(first.sr, again.sr) and first.lr_losses == again.lr_losses
    assert not torch.equal(first.sr, other.sr)


def test_the_paper_settings_per_scale():
    assert (DipSettings(scale=4).total_iterations, DipSettings(scale=4).noise_std) == (2000, 0.03)
    assert (DipSettings(scale=8).total_iterations, DipSettings(scale=8).noise_std) == (4000, 0.05)
    with pytest.raises(SrlabError, match="integer >= 2"):
        DipSettings(scale=1)


def test_a_time_budget_stops_the_fit_early():
    result = super_resolve(lr_photo(8, 8), DipSettings(iterations=1000, max_seconds=1e-9))
    assert result.iterations == 1  # at least one step, then the budget is spent


def test_cli_writes_name_x_scale_and_reports_a_bad_image(tmp_path, capsys):
    Image.fromarray(photo("chelsea", (11, 7))).save(tmp_path / "cat.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "dip", tmp_path / "broken.png", tmp_path / "cat.png", "-o", out_dir,
                             "--scale", "4", "--iterations", "3", "--device", "cpu")
    assert code == 1
    assert "broken.png" in err and "srlab: 1 of 2 images failed" in err and "Traceback" not in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["cat_x4.png"]
    assert Image.open(out_dir / "cat_x4.png").size == (44, 28)
    assert "3 steps" in out


@pytest.mark.parametrize(("flags", "message"), [
    (["--scale", "1"], "argument --scale: must be an integer >= 2"),
    (["--iterations", "0"], "argument --iterations: must be a positive integer"),
    (["--max_seconds", "-1"], "argument --max_seconds/--max-seconds: must be a positive number"),
])
def test_cli_bad_flags_are_one_line_exit_2(tmp_path, capsys, flags, message):
    Image.fromarray(photo("chelsea", (8, 8))).save(tmp_path / "cat.png")
    code, out, err = run_cli(capsys, "dip", tmp_path / "cat.png", "-o", tmp_path / "out", *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
