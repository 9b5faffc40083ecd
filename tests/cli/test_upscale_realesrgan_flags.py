"""``srlab upscale`` with Real-ESRGAN's spellings: -i, -n, -s/--outscale, --ext, --suffix, --half."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import photo, run_cli
from srlab.data.io import read_image
from srlab.data.resize import bicubic_upscale, imresize
from srlab.errors import SrlabError
from srlab.inference import precision
from srlab.inference.files import output_size
from srlab.models.create import create_model
from srlab.models.weights import save_weights

BICUBIC = ["--scale", "2", "--device", "cpu"]  # with -n bicubic or --model bicubic


@pytest.fixture()
def batch(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo("chelsea", (30, 20))).save(folder / "a.png")
    Image.fromarray(photo("astronaut", (24, 18))).save(folder / "b.jpg", quality=90)
    return folder


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_dash_i_and_dash_n_are_the_positional_inputs_and_model(batch, tmp_path, capsys):
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "plain", "--model", "bicubic", *BICUBIC)
    assert (code, err) == (0, "")
    code, _, err = run_cli(capsys, "upscale", "-i", batch / "a.png", "-i", batch / "b.jpg", "-o", tmp_path / "real",
                           "-n", "bicubic", *BICUBIC)
    assert (code, err) == (0, "")
    code, _, err = run_cli(capsys, "upscale", "-i", batch, "-o", tmp_path / "folder", "-n", "bicubic", *BICUBIC)
    assert (code, err) == (0, "")
    for name in ("a_x2.png", "b_x2.png"):  # srlab's default naming is kept
        np.testing.assert_array_equal(pixels(tmp_path / "real" / name), pixels(tmp_path / "plain" / name))
        np.testing.assert_array_equal(pixels(tmp_path / "folder" / name), pixels(tmp_path / "plain" / name))


def test_no_input_at_all_is_a_one_line_usage_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "upscale", "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC)
    assert code == 2
    assert err == "srlab: error: no inputs: give image files or folders (srlab upscale IMAGE... -o OUT, or -i IMAGE)\n"
    assert not (tmp_path / "o").exists()


def test_outscale_resizes_the_model_output_with_matlab_bicubic(batch, tmp_path, capsys):
    code, out, err = run_cli(capsys, "upscale", batch / "a.png", "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC,
                             "-s", "3.5")
    assert (code, err) == (0, "")
    written = tmp_path / "o" / "a_x3.5.png"
    assert "30x20 -> 105x70" in out
    lr = read_image(batch / "a.png").rgb
    expected = imresize(bicubic_upscale(lr, 2, quantize=True), size=(70, 105)).clamp(0, 1)
    expected = (expected * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(pixels(written), expected)


def test_outscale_equal_to_the_model_scale_changes_nothing(batch, tmp_path, capsys):
    run_cli(capsys, "upscale", batch / "a.png", "-o", tmp_path / "plain", "-n", "bicubic", *BICUBIC)
    code, _, err = run_cli(capsys, "upscale", batch / "a.png", "-o", tmp_path / "s2", "-n", "bicubic", *BICUBIC,
                           "--outscale", "2")
    assert (code, err) == (0, "")
    np.testing.assert_array_equal(pixels(tmp_path / "s2" / "a_x2.png"), pixels(tmp_path / "plain" / "a_x2.png"))


def test_outscale_sizes_do_not_gain_a_pixel_from_binary_fractions():
    assert output_size(10, 10, 2.2) == (22, 22)  # 2.2 * 10 is 22.000000000000004 in binary
    assert output_size(20, 30, 3.5) == (70, 105)
    assert output_size(3, 7, 0.5) == (2, 4)  # MATLAB's ceil


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan"])
def test_bad_outscale_is_a_flag_error(batch, tmp_path, capsys, value):
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC, "-s", value)
    assert code == 2 and err.count("\n") == 1
    assert f"argument -s/--outscale: must be a positive number, got '{value}'" in err
    assert not (tmp_path / "o").exists()


def test_outscale_refuses_forced_streaming(batch, tmp_path, capsys):
    code, _, err = run_cli(capsys, "upscale", batch / "a.png", "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC,
                           "-s", "3", "--stream", "always")
    assert code == 1
    assert "srlab: error: --stream always and --outscale do not combine" in err


def test_ext_picks_the_format_and_auto_keeps_the_input_one(batch, tmp_path, capsys):
    for ext in ("jpg", "webp", "auto"):
        code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / ext, "-n", "bicubic", *BICUBIC, "--ext", ext)
        assert (code, err) == (0, "")
    assert {p.name: Image.open(p).format for p in (tmp_path / "jpg").iterdir()} == {"a_x2.jpg": "JPEG",
                                                                                   "b_x2.jpg": "JPEG"}
    assert {p.name: Image.open(p).format for p in (tmp_path / "webp").iterdir()} == {"a_x2.webp": "WEBP",
                                                                                    "b_x2.webp": "WEBP"}
    assert {p.name: Image.open(p).format for p in (tmp_path / "auto").iterdir()} == {"a_x2.png": "PNG",
                                                                                    "b_x2.jpg": "JPEG"}


def test_bad_ext_is_a_flag_error(batch, tmp_path, capsys):
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC, "--ext", "gif")
    assert code == 2 and err.count("\n") == 1 and "--ext" in err and "invalid choice: 'gif'" in err


def test_suffix_names_the_outputs(batch, tmp_path, capsys):
    code, _, _ = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC, "--suffix", "out")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_out.png", "b_out.png"]
    code, _, _ = run_cli(capsys, "upscale", batch, "-o", tmp_path / "bare", "-n", "bicubic", *BICUBIC, "--suffix", "")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["a.png", "b.png"]


def test_bad_suffix_is_a_flag_error(batch, tmp_path, capsys):
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC,
                           "--suffix", "../x")
    assert code == 2 and err.count("\n") == 1
    assert "argument --suffix: must be part of a file name, without '/' or '\\', got '../x'" in err


def test_inputs_are_never_overwritten_and_each_refusal_is_reported(batch, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in batch.iterdir()}
    code, _, err = run_cli(capsys, "upscale", batch, "-o", batch, "-n", "bicubic", *BICUBIC,
                           "--suffix", "", "--ext", "auto")
    assert code == 1
    assert err.count("srlab: error: refusing to overwrite input file") == 2
    assert "srlab: 2 of 2 images failed" in err
    assert {p.name: p.read_bytes() for p in batch.iterdir()} == before


def test_a_bad_file_in_a_batch_is_reported_and_the_rest_processed(batch, tmp_path, capsys):
    (batch / "c.png").write_bytes(b"not a png")
    rgba = np.dstack([photo("chelsea", (16, 12)), np.full((12, 16), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(batch / "d.png")
    code, _, err = run_cli(capsys, "upscale", "-i", batch, "-o", tmp_path / "o", "-n", "bicubic", *BICUBIC,
                           "--ext", "jpg", "-s", "3", "--suffix", "big")
    assert code == 1 and "Traceback" not in err
    assert "srlab: error: cannot read image" in err and "c.png" in err
    assert "JPEG has no alpha channel" in err  # d.png: the alpha would be lost in a JPEG
    assert "srlab: 2 of 4 images failed" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_big.jpg", "b_big.jpg"]
    assert Image.open(tmp_path / "o" / "a_big.jpg").size == (90, 60)


def test_half_runs_bfloat16_on_cpu_close_to_float32(batch, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)  # bfloat16 runs (emulated) on any CPU
    model = ["-n", "rdsr_s", "--scale", "2", "--device", "cpu"]
    code, _, err = run_cli(capsys, "upscale", batch / "a.png", "-o", tmp_path / "fp32", *model, "--precision", "fp32")
    assert (code, err) == (0, "")
    code, _, err = run_cli(capsys, "upscale", batch / "a.png", "-o", tmp_path / "half", *model, "--half")
    assert (code, err) == (0, "")
    full, half = (pixels(tmp_path / d / "a_x2.png").astype(int) for d in ("fp32", "half"))
    difference = np.abs(full - half)
    assert 0 < difference.max() <= 8 and difference.mean() < 1.0  # bfloat16 keeps 8 bits of mantissa


def test_half_on_a_cpu_without_bfloat16_units_is_refused(batch, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", "-n", "rdsr_s", "--scale", "2",
                           "--device", "cpu", "--half")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("srlab: error: --half on CPU runs bfloat16, and this CPU has no bfloat16 units")
    assert not (tmp_path / "o").exists()


def test_half_refuses_models_not_verified_in_half_precision(batch, tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("liif_edsr_baseline", scale=2, args={"channels": 8, "num_blocks": 1, "hidden": 8, "depth": 2})
    save_weights(tmp_path / "liif.safetensors", model)
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", "--checkpoint", tmp_path / "liif.safetensors",
                           "--device", "cpu", "--half")
    assert code == 2
    assert err == ("srlab: error: --half: model 'liif_edsr_baseline' is not verified to be accurate in half "
                   "precision: drop --half\n")
    with pytest.raises(SrlabError, match="not verified to be accurate in half precision"):
        precision.half_precision(model, torch.device("cpu"))


def test_half_with_an_onnx_file_is_refused(batch, tmp_path, capsys):
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", "--onnx", tmp_path / "m.onnx", "--half")
    assert code == 2
    assert err == "srlab: error: --half converts a PyTorch model: drop it with --onnx (export with --fp16 instead)\n"
