"""``srlab export`` and ``srlab upscale --onnx``: an exported file upscales images to the same pixels as the
PyTorch model through the same pad/tile/stream path; mistakes are one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import photo, run_cli

# rdsr_s is srlab's default model, with bundled weights (x2): real weights, a size multiple of 6.
RDSR_S = ["--model", "rdsr_s", "--scale", "2"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from srlab.cli.main import main

    path = tmp_path_factory.mktemp("onnx") / "rdsr_s_x2.onnx"
    assert main(["export", *RDSR_S, "-o", str(path)]) == 0
    return path


@pytest.fixture()
def images(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo("astronaut", (61, 47))).save(folder / "astronaut.png")  # not multiples of 6
    Image.fromarray(photo("chelsea", (40, 30))).save(folder / "chelsea.png")
    return folder


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def test_export_writes_the_file_and_says_where_the_weights_came_from(exported, capsys, tmp_path):
    props = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert (props["srlab.model"], props["srlab.scale"], props["srlab.size_multiple"]) == ("rdsr_s", "2", "6")
    code, out, err = run_cli(capsys, "export", *RDSR_S, "-o", tmp_path / "again.onnx")
    assert (code, err) == (0, "")
    assert out.strip() == f"{tmp_path / 'again.onnx'} (weights: bundled)"


@pytest.mark.parametrize("extra", [[], ["--tile", "16"], ["--stream", "always"]])
def test_upscale_with_onnx_gives_the_pytorch_pixels(exported, images, tmp_path, capsys, extra):
    code, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "torch", *RDSR_S, "--device", "cpu",
                             "--precision", "fp32", *extra)
    assert (code, err) == (0, "")
    code, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "onnx", "--onnx", exported, *extra)
    assert (code, err) == (0, "")
    assert "astronaut.png -> " in out and "(61x47 -> 122x94" in out
    for name in ("astronaut_x2.png", "chelsea_x2.png"):
        torch_pixels, onnx_pixels = _pixels(tmp_path / "torch" / name), _pixels(tmp_path / "onnx" / name)
        assert torch_pixels.shape == onnx_pixels.shape
        # float differences of ~1e-6 can move a value across a rounding boundary, never by more than one level
        assert np.abs(torch_pixels - onnx_pixels).max() <= 1
        assert np.mean(torch_pixels != onnx_pixels) < 1e-3


def test_random_init_exports_a_model_without_weights(tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", "--model", "fsrcnn_etds", "--scale", "3", "-o", tmp_path / "m.onnx")
    assert code == 2 and err.startswith("srlab: error: model 'fsrcnn_etds' x3 has no weights")
    assert "--random_init" in err
    code, out, err = run_cli(
        capsys, "export", "--model", "fsrcnn_etds", "--scale", "3", "--random_init", "--fp16", "-o", tmp_path / "m.onnx"
    )
    assert (code, err) == (0, "") and "random initialisation" in out
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert props["srlab.precision"] == "fp16" and props["srlab.scale"] == "3"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--onnx", "{file}", "--model", "rdsr_s"], "--onnx runs the exported file as it is: drop --model"),
        (["--onnx", "{file}", "--scale", "3"], "upscales x2, not x3: drop --scale or export at x3"),
        (["--onnx", "{file}", "--knob", "1"], "--onnx runs the exported file as it is: drop --knob"),
        (["--onnx", "{missing}"], "ONNX model '{missing}' does not exist"),
    ],
)
def test_upscale_onnx_mistakes_are_one_line_errors(exported, images, tmp_path, capsys, argv, message):
    missing = tmp_path / "missing.onnx"
    argv = [a.format(file=exported, missing=missing) for a in argv]
    code, out, err = run_cli(capsys, "upscale", images, "-o", tmp_path / "out", *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("srlab: error: ")
    assert message.format(missing=missing) in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "tflite"], "argument --format: invalid choice: 'tflite'"),
        (["--size", "0x8"], "argument --size: must be HEIGHTxWIDTH with positive integers"),
        (["--model", "liif_edsr_baseline", "--scale", "2.5", "--random_init"],
         "model 'liif_edsr_baseline' at x2.5: ONNX export takes integer scales"),
    ],
)
def test_export_mistakes_are_one_line_errors(tmp_path, capsys, argv, message):
    code, out, err = run_cli(capsys, "export", *argv, "-o", tmp_path / "m.onnx")
    assert code == 2 and err.count("\n") == 1 and err.startswith("srlab: error: ")
    assert message in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_refuses_a_folder_as_output(tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", *RDSR_S, "-o", tmp_path)
    assert code == 2 and f"-o '{tmp_path}' is a folder: give a file name" in err


def test_a_model_that_cannot_export_is_one_line_on_the_terminal(tmp_path, capfd):
    """Both exporters fail on PCSR's routing (data-dependent shapes); neither may dump its graph to stderr."""
    code, out, err = run_cli(capfd, "export", "--model", "pcsr_fsrcnn", "--scale", "4", "--random_init",
                             "-o", tmp_path / "pcsr.onnx")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("srlab: error: model 'pcsr_fsrcnn' cannot be exported to ONNX")
    assert "data-dependent" in err
    assert list(tmp_path.iterdir()) == []
