"""The evaluation protocol: golden MATLAB numbers, input handling, and the set accumulator."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srlab.errors import SrlabError
from srlab.metrics import PAPER_PROTOCOL, EvalProtocol, ScoreAccumulator, psnr, ssim
from srlab.metrics.color import rgb_to_y
from conftest import BENCHMARKS, needs_shared

SET5 = BENCHMARKS / "Set5"
SCORES = SET5 / "SR_RCAN" / "matlab_scores.txt"


def _load(path: Path) -> torch.Tensor:
    """A PNG as a (3, H, W) float64 tensor in [0, 1] (im2double)."""
    arr = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float64) / 255.0


def _matlab_scores() -> dict[int, dict[str, tuple[float, float]]]:
    """{scale: {image: (psnr, ssim)}} from RCAN's MATLAB output (per-image lines only)."""
    line_re = re.compile(r"^x(\d+) \d+ (\w+)_RCAN_x\d+\.png: PSNR= ([\d.]+) SSIM= ([\d.]+)$")
    out: dict[int, dict[str, tuple[float, float]]] = {}
    for line in SCORES.read_text().splitlines():
        m = line_re.match(line.strip())
        if m:
            out.setdefault(int(m[1]), {})[m[2]] = (float(m[3]), float(m[4]))
    return out


def _sr_path(scale: int, name: str) -> Path:
    # The files are stored as NAMEx{s}.png; RCAN's own naming is NAME_RCAN_x{s}.png.
    for candidate in (f"{name}x{scale}.png", f"{name}_RCAN_x{scale}.png"):
        path = SET5 / "SR_RCAN" / f"X{scale}" / candidate
        if path.exists():
            return path
    raise FileNotFoundError(f"no RCAN x{scale} output for {name} under {SET5 / 'SR_RCAN'}")


@needs_shared(SCORES)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_golden_matlab_rcan_set5(scale: int) -> None:
    expected = _matlab_scores()[scale]
    assert len(expected) == 5
    acc = ScoreAccumulator(PAPER_PROTOCOL)
    for name, (ref_psnr, ref_ssim) in expected.items():
        hr = _load(SET5 / "HR" / f"{name}.png")
        h, w = hr.shape[-2:]
        hr = hr[:, : h - h % scale, : w - w % scale]  # MATLAB modcrop, top-left anchored
        scores = acc.update(_load(_sr_path(scale, name)), hr, scale)
        # The reference is printed with 6 decimals, so ~5e-7 is the best agreement possible.
        assert scores["psnr_y"] == pytest.approx(ref_psnr, abs=1e-6), name
        assert scores["ssim_y"] == pytest.approx(ref_ssim, abs=2e-6), name
    # The set means the script prints (the mean of the per-image values).
    means = acc.compute()
    assert means["psnr_y"] == pytest.approx(np.mean([v[0] for v in expected.values()]), abs=1e-6)
    assert means["ssim_y"] == pytest.approx(np.mean([v[1] for v in expected.values()]), abs=2e-6)


def _pair(h: int = 40, w: int = 36, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(3, h, w, generator=gen, dtype=torch.float64)
    sr = (hr + 0.05 * torch.randn(3, h, w, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return sr, hr


def test_protocol_pipeline_by_hand() -> None:
    """score() is: round SR to 8 bits, Y * 255, shave `scale`, PSNR(255) and SSIM(255)."""
    sr, hr = _pair()
    scale = 3
    sr8 = torch.floor(sr * 255 + 0.5) / 255
    y_sr, y_hr = rgb_to_y(sr8) * 255, rgb_to_y(hr) * 255
    scores = EvalProtocol().score(sr, hr, scale)
    assert set(scores) == {"psnr_y", "ssim_y"}
    by_hand_psnr = float(psnr(y_sr, y_hr, data_range=255, crop_border=scale))
    by_hand_ssim = float(ssim(y_sr, y_hr, data_range=255, crop_border=scale))
    assert scores["psnr_y"] == pytest.approx(by_hand_psnr, abs=1e-12)
    assert scores["ssim_y"] == pytest.approx(by_hand_ssim, abs=1e-12)


def test_crop_border_defaults_to_scale() -> None:
    sr, hr = _pair()
    assert EvalProtocol().score(sr, hr, 4) == EvalProtocol(crop_border=4).score(sr, hr, 2)
    assert EvalProtocol(crop_border=0).score(sr, hr, 4) != EvalProtocol().score(sr, hr, 4)


def test_rounding_of_the_output() -> None:
    sr, hr = _pair()
    levels = torch.round(sr * 255) / 255
    # Off-grid values within a third of a level round back onto the grid.
    jitter = (torch.rand(sr.shape, dtype=torch.float64) - 0.5) * (0.6 / 255)
    nudged = levels + jitter
    assert EvalProtocol().score(nudged, hr, 2) == EvalProtocol().score(levels, hr, 2)
    assert EvalProtocol(round_output=False).score(nudged, hr, 2) != EvalProtocol().score(levels, hr, 2)
    # Half a level rounds up (away from zero), not to even: 2.5/255 -> level 3.
    half = torch.full((3, 24, 24), 2.5 / 255, dtype=torch.float64)
    three = torch.full((3, 24, 24), 3 / 255, dtype=torch.float64)
    assert EvalProtocol().score(half, three, 2)["psnr_y"] == float("inf")
    # Out-of-range values are clamped before rounding.
    wild, clamped = levels.clone(), levels.clone()
    wild[:, :10], clamped[:, :10] = -0.3, 0.0
    wild[:, -10:], clamped[:, -10:] = 1.4, 1.0
    assert EvalProtocol().score(wild, clamped, 2)["psnr_y"] == float("inf")


def test_rgb_channel() -> None:
    sr, hr = _pair()
    scores = EvalProtocol(channel="rgb").score(sr, hr, 2)
    assert set(scores) == {"psnr_rgb", "ssim_rgb"}
    sr8 = torch.floor(sr * 255 + 0.5)
    hr255 = hr * 255
    per_channel = [
        float(ssim(sr8[c : c + 1], hr255[c : c + 1], data_range=255, crop_border=2)) for c in range(3)
    ]
    assert scores["ssim_rgb"] == pytest.approx(np.mean(per_channel), abs=1e-12)
    by_hand_psnr = float(psnr(sr8, hr255, data_range=255, crop_border=2))
    assert scores["psnr_rgb"] == pytest.approx(by_hand_psnr, abs=1e-12)


@pytest.mark.parametrize("channel", ["y", "rgb"])
def test_grey_input_equals_rgb_with_equal_channels(channel: str) -> None:
    sr, hr = _pair()
    sr1, hr1 = sr[:1], hr[:1]
    protocol = EvalProtocol(channel=channel)  # type: ignore[arg-type]
    assert protocol.score(sr1, hr1, 2) == protocol.score(sr1.expand(3, -1, -1), hr1.expand(3, -1, -1), 2)


def test_identical_images() -> None:
    _, hr = _pair()
    hr8 = torch.round(hr * 255) / 255
    scores = PAPER_PROTOCOL.score(hr8, hr8, 2)
    assert scores["psnr_y"] == float("inf")
    assert scores["ssim_y"] == pytest.approx(1.0, abs=1e-12)


def test_float32_input_scores_like_float64() -> None:
    sr, hr = _pair()
    assert PAPER_PROTOCOL.score(sr.float(), hr.float(), 2) == pytest.approx(
        PAPER_PROTOCOL.score(sr.float().double(), hr.float().double(), 2), abs=1e-12
    )


def test_size_mismatch_raises_srlab_error() -> None:
    sr, hr = _pair(40, 36)
    with pytest.raises(SrlabError, match="differ in size"):
        PAPER_PROTOCOL.score(sr, hr[:, :39], 2)


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(3, 40),
        torch.rand(2, 40, 40),
        torch.rand(1, 3, 40, 40),
        torch.zeros(3, 40, 40, dtype=torch.uint8),
    ],
)
def test_bad_inputs_raise_srlab_error(bad: torch.Tensor) -> None:
    with pytest.raises(SrlabError, match=r"^sr must be a (\(3, H, W\)|float tensor)"):
        PAPER_PROTOCOL.score(bad, bad, 2)


def test_too_small_raises_srlab_error() -> None:
    x = torch.rand(3, 16, 16)
    with pytest.raises(SrlabError, match="too small"):
        PAPER_PROTOCOL.score(x, x, 4)


def test_protocol_is_frozen_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'crop_border'"):
        PAPER_PROTOCOL.crop_border = 2  # type: ignore[misc]
    with pytest.raises(SrlabError, match="channel must be 'y' or 'rgb', got 'ycbcr'"):
        EvalProtocol(channel="ycbcr")  # type: ignore[arg-type]
    with pytest.raises(SrlabError, match="crop_border must be >= 0 or None, got -1"):
        EvalProtocol(crop_border=-1)
    assert PAPER_PROTOCOL == EvalProtocol(crop_border=None, channel="y", round_output=True)


def test_score_accumulator_averages_per_image_values() -> None:
    acc = ScoreAccumulator()
    pairs = [_pair(seed=s) for s in range(3)]
    per_image = [acc.update(sr, hr, 2) for sr, hr in pairs]
    assert acc.count == 3
    means = acc.compute()
    for key in ("psnr_y", "ssim_y"):
        assert means[key] == pytest.approx(np.mean([s[key] for s in per_image]), abs=1e-12)
    acc.reset()
    assert acc.count == 0 and acc.compute() == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    # float32 inputs, as a model would produce them; the protocol works in float64 on either device.
    sr, hr = (t.float() for t in _pair(64, 48))
    for protocol in (PAPER_PROTOCOL, EvalProtocol(channel="rgb")):
        assert protocol.score(sr.cuda(), hr.cuda(), 3) == pytest.approx(protocol.score(sr, hr, 3), abs=1e-9)


def test_labelled_variants_y8_and_rgb() -> None:
    from srlab.metrics.protocol import PROTOCOLS, RGB_PROTOCOL, Y8_PROTOCOL

    assert PROTOCOLS["y"].keys == ("psnr_y", "ssim_y")
    assert Y8_PROTOCOL.keys == ("psnr_y8", "ssim_y8") and RGB_PROTOCOL.keys == ("psnr_rgb", "ssim_rgb")
    torch.manual_seed(0)
    hr = torch.rand(3, 40, 48, dtype=torch.float64)
    sr = (hr + 0.03 * torch.randn_like(hr)).clamp(0, 1)
    y8 = Y8_PROTOCOL.score(sr, hr, 2)
    # by hand: Y of both, rounded to 8-bit levels, then the usual PSNR
    a = torch.floor(rgb_to_y(torch.floor(sr * 255 + 0.5) / 255) * 255 + 0.5)
    b = torch.floor(rgb_to_y(hr) * 255 + 0.5)
    assert y8["psnr_y8"] == pytest.approx(float(psnr(a, b, data_range=255.0, crop_border=2)), abs=1e-9)
    assert y8["psnr_y8"] != pytest.approx(PAPER_PROTOCOL.score(sr, hr, 2)["psnr_y"], abs=1e-6)
    with pytest.raises(SrlabError, match="round_y"):
        EvalProtocol(channel="rgb", round_y=True)


def _liif_calc_psnr(sr: torch.Tensor, hr: torch.Tensor, *, dataset: str, scale: int) -> float:
    """LIIF's test formula (yinboc/liif utils.calc_psnr) written out: the unrounded difference, Y by its
    own weights on 'benchmark' with ``scale`` px shaved, RGB with ``scale + 6`` shaved on 'div2k'."""
    diff = sr.clamp(0, 1) - hr
    if dataset == "benchmark":
        shave = scale
        diff = (diff * torch.tensor([65.738, 129.057, 25.064], dtype=diff.dtype).view(3, 1, 1) / 256).sum(0)
    else:
        shave = scale + 6
    valid = diff[..., shave:-shave, shave:-shave]
    return float(-10 * torch.log10(valid.pow(2).mean()))


def test_liif_protocols_equal_liifs_test_formula() -> None:
    from srlab.metrics.protocol import PROTOCOLS

    torch.manual_seed(1)
    hr = torch.rand(3, 60, 72, dtype=torch.float64)
    sr = hr + 0.02 * torch.randn_like(hr)  # unclamped: the protocol clamps, LIIF's test clamps
    div2k, bench = PROTOCOLS["liif-div2k"], PROTOCOLS["liif-benchmark"]
    assert div2k.keys == ("psnr_rgb_liif", "ssim_rgb_liif") and bench.keys == ("psnr_y_liif", "ssim_y_liif")
    for scale in (2, 3, 4):
        assert div2k.score(sr, hr, scale)["psnr_rgb_liif"] == pytest.approx(
            _liif_calc_psnr(sr, hr, dataset="div2k", scale=scale), abs=1e-9)
        # srlab's Y (MATLAB's weights) against LIIF's weights: equal to five significant digits
        assert bench.score(sr, hr, scale)["psnr_y_liif"] == pytest.approx(
            _liif_calc_psnr(sr, hr, dataset="benchmark", scale=scale), abs=2e-4)
    # neither rounds the output: the paper protocol (rounded) reads differently
    assert bench.score(sr, hr, 2)["psnr_y_liif"] != pytest.approx(PAPER_PROTOCOL.score(sr, hr, 2)["psnr_y"], abs=1e-3)
    assert div2k.border(2.5) == 9 and PAPER_PROTOCOL.border(2.5) == 3
    with pytest.raises(SrlabError, match="border_offset"):
        EvalProtocol(border_offset=-1)
