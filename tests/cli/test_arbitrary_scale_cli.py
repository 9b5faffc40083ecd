"""``srlab upscale`` / ``srlab eval`` at non-integer scales, for arbitrary-scale models."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

import srlab
from conftest import photo, run_cli
from srlab.data.datasets import modcrop
from srlab.data.io import read_rgb
from srlab.data.resize import bicubic_downscale
from srlab.metrics.protocol import PAPER_PROTOCOL
from srlab.models.weights import save_weights

SMALL_LIIF = {"channels": 8, "num_blocks": 1, "hidden": 16, "depth": 2}


@pytest.fixture()
def liif_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "liif.safetensors"
    save_weights(path, srlab.create_model("liif_edsr_baseline", scale=4, args=SMALL_LIIF))  # saved at x4
    return path


def test_upscale_at_2_5_writes_matlabs_output_size(liif_checkpoint, tmp_path, capsys):
    Image.fromarray(photo("chelsea", (29, 21))).save(tmp_path / "a.png")
    code, out, err = run_cli(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "out",
                             "--checkpoint", liif_checkpoint, "--scale", "2.5", "--device", "cpu")
    assert (code, err) == (0, "")
    written = Image.open(tmp_path / "out" / "a_x2.5.png")
    assert written.size == (math.ceil(2.5 * 29), math.ceil(2.5 * 21))  # 73 x 53


def test_eval_at_2_7_follows_the_non_integer_protocol(liif_checkpoint, tmp_path, capsys):
    hr_dir = tmp_path / "set" / "HR"
    hr_dir.mkdir(parents=True)
    Image.fromarray(photo("astronaut", (61, 58))).save(hr_dir / "a.png")
    code, out, err = run_cli(capsys, "eval", "--data", tmp_path / "set", "--checkpoint", liif_checkpoint,
                             "--scale", "2.7", "--device", "cpu", "--json", tmp_path / "r.json")
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    row = result[0] if isinstance(result, list) else result["results"][0]
    # by hand: HR cropped to 54 x 54 (multiples of 27), LR 20 x 20, SR at 54 x 54, 3 pixels shaved
    model = srlab.create_model(checkpoint=liif_checkpoint, scale=2.7)
    hr = modcrop(read_rgb(hr_dir / "a.png"), 2.7)
    assert hr.shape[-2:] == (54, 54)
    lr = bicubic_downscale(hr, 2.7, quantize=True)
    assert lr.shape[-2:] == (20, 20)
    with torch.no_grad():
        sr = model(lr[None], size=(54, 54))[0]
    assert PAPER_PROTOCOL.border(2.7) == 3
    assert row["scale"] == 2.7
    assert row["psnr_y"] == pytest.approx(PAPER_PROTOCOL.score(sr, hr, 2.7)["psnr_y"], abs=1e-9)


def test_integer_only_models_refuse_a_non_integer_scale_in_one_line(tmp_path, capsys):
    Image.fromarray(photo("chelsea", (20, 20))).save(tmp_path / "a.png")
    code, out, err = run_cli(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "out",
                             "--model", "bicubic", "--scale", "2.5", "--device", "cpu")
    assert code != 0
    assert err == "srlab: error: model 'bicubic' does not support scale 2.5: use one of [2, 3, 4, 8]\n"


def test_a_scale_below_one_is_a_flag_error(tmp_path, capsys):
    code, out, err = run_cli(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "out", "--scale", "0.5")
    assert code == 2
    assert "argument --scale: must be a number >= 1" in err


def test_adaptive_inference_at_a_non_integer_scale_is_refused_in_one_line(liif_checkpoint, tmp_path, capsys):
    Image.fromarray(photo("chelsea", (20, 20))).save(tmp_path / "a.png")
    code, out, err = run_cli(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "out", "--checkpoint",
                             liif_checkpoint, "--scale", "2.5", "--adaptive", "static", "--device", "cpu")
    assert code != 0
    assert err == "srlab: error: adaptive inference needs an integer scale, not x2.5: drop --adaptive\n"
