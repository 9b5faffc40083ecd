"""``srlab quantize``: an exported ONNX file to int8, then run with ``srlab upscale --onnx``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import run_cli, write_folder

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from srlab.export.onnx import export_onnx
    from srlab.models.create import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "imdn.onnx"
    export_onnx(create_model("imdn", scale=2, args={"channels": 16, "num_modules": 1}), path)
    return path


def test_quantize_then_upscale_with_the_int8_file(exported, tmp_path, capsys):
    calibration = write_folder(tmp_path / "cal", {"coffee": ("coffee", (64, 48)), "rocket": ("rocket", (64, 48))})
    code, out, err = run_cli(capsys, "quantize", exported, "--calibration", calibration, "-o", tmp_path / "int8.onnx",
                             "--min_fidelity", "40")
    assert (code, err) == (0, "")
    assert out.startswith(f"{tmp_path / 'int8.onnx'}: 11 of 11 convolutions in int8 (0 kept float), ")
    assert out.endswith(" dB from the float output on 2 calibration images\n")
    images = write_folder(tmp_path / "in", {"cat": ("chelsea", (30, 20))})
    code, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", "--onnx", tmp_path / "int8.onnx")
    assert (code, err) == (0, "")
    assert Image.open(tmp_path / "out" / "cat_x2.png").size == (60, 40)


@pytest.mark.parametrize(("flags", "message"), [
    (["--min_fidelity", "nan"], "argument --min_fidelity/--min-fidelity: must be a finite number, got 'nan'"),
    (["--calibration", "MISSING"], "'MISSING' does not exist (check the path)"),
])
def test_bad_flags_are_one_line_errors(exported, tmp_path, capsys, flags, message):
    write_folder(tmp_path / "cal", {"coffee": ("coffee", (32, 24))})
    argv = ["quantize", exported, "-o", tmp_path / "int8.onnx", "--calibration", tmp_path / "cal", *flags]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("srlab: error: ") and message in err
    assert not (tmp_path / "int8.onnx").exists()


def test_a_source_that_is_not_an_export_is_refused(tmp_path, capsys):
    write_folder(tmp_path / "cal", {"coffee": ("coffee", (32, 24))})
    code, _, err = run_cli(capsys, "quantize", tmp_path / "nothing.onnx", "-o", tmp_path / "int8.onnx",
                           "--calibration", tmp_path / "cal")
    assert code == 2
    assert err == f"srlab: error: ONNX model '{tmp_path / 'nothing.onnx'}' does not exist: give the file `srlab export` wrote\n"
