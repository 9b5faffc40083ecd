"""int8 post-training quantisation of exported ONNX files (:mod:`srlab.export.int8`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared, photo, photo_tensor, write_folder
from srlab.errors import SrlabError
from srlab.export.int8 import calibration_images, quantize_int8
from srlab.export.onnx import export_onnx
from srlab.export.runtime import OnnxModel
from srlab.models.create import create_model

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    """A small IMDN (2 blocks of 16 channels, 18 Convs) exported to float32 ONNX."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "imdn.onnx"
    export_onnx(create_model("imdn", scale=2, args={"channels": 16, "num_modules": 2}), path)
    return path


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> list[np.ndarray]:
    folder = write_folder(tmp_path_factory.mktemp("calibration"), {
        "coffee": ("coffee", (80, 60)), "rocket": ("rocket", (80, 60)), "hubble": ("hubble_deep_field", (80, 60)),
    })
    return calibration_images(folder, crop=32)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / torch.mean((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).item())


def unseen_image() -> torch.Tensor:
    return photo_tensor(photo("chelsea", (40, 28))).float()[None]


def test_calibration_images_are_centre_crops_of_the_folder(tmp_path):
    write_folder(tmp_path, {"a": ("coffee", (50, 40)), "b": ("rocket", (20, 16))})
    images = calibration_images(tmp_path, crop=32)
    assert [x.shape for x in images] == [(1, 3, 32, 32), (1, 3, 16, 20)]
    assert all(x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 for x in images)
    assert len(calibration_images(tmp_path, limit=1)) == 1


def test_every_conv_in_int8_when_the_fidelity_allows_and_the_output_stays_close(tiny_export, calibration, tmp_path):
    report = quantize_int8(tiny_export, tmp_path / "int8.onnx", calibration, min_fidelity_db=45)
    assert (report.convs, report.float_convs, report.calibration_images) == (18, (), 3)
    assert report.fidelity_db >= 45
    graph = onnx.load(str(report.path)).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    assert sum(node.op_type == "QuantizeLinear" for node in graph.node) >= 18
    assert {node.input[1] for node in graph.node if node.op_type == "Conv"} <= dequantized  # int8 weights
    float_model, int8_model = OnnxModel(tiny_export), OnnxModel(report.path)
    assert int8_model.exported.precision == "int8" and int8_model.scale == 2
    lr = unseen_image()
    assert psnr(int8_model(lr), float_model(lr)) > 40  # an image it was not calibrated on


def test_a_higher_fidelity_keeps_the_image_and_output_convs_and_the_noisiest_in_float(tiny_export, calibration, tmp_path):
    everything = quantize_int8(tiny_export, tmp_path / "all.onnx", calibration, min_fidelity_db=45)
    target = everything.fidelity_db + 6
    report = quantize_int8(tiny_export, tmp_path / "mixed.onnx", calibration, min_fidelity_db=target)
    assert 0 < len(report.float_convs) < report.convs and report.fidelity_db >= target
    graph = onnx.load(str(report.path)).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    float_weights = {node.input[1] for node in convs if node.name in report.float_convs}
    assert not float_weights & {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    assert "/net/fea_conv/Conv" in report.float_convs  # reads the image
    assert "/net/upsampler/upsampler.0/Conv" in report.float_convs  # writes the output
    lr = unseen_image()
    assert psnr(OnnxModel(report.path)(lr), OnnxModel(tiny_export)(lr)) > psnr(
        OnnxModel(everything.path)(lr), OnnxModel(tiny_export)(lr))


def test_bad_sources_and_calibration_are_refused(tiny_export, calibration, tmp_path):
    with pytest.raises(SrlabError, match="refusing to overwrite input file"):
        quantize_int8(tiny_export, tiny_export, calibration)
    with pytest.raises(SrlabError, match="does not exist: give the file `srlab export` wrote"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "o.onnx", calibration)
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(SrlabError, match="is not a readable ONNX model"):
        quantize_int8(tmp_path / "broken.onnx", tmp_path / "o.onnx", calibration)
    with pytest.raises(SrlabError, match=r"calibration images must be \(1, 3, h, w\) RGB arrays"):
        quantize_int8(tiny_export, tmp_path / "o.onnx", [np.zeros((3, 8, 8), np.float32)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrlabError, match="no images in folder"):
        calibration_images(tmp_path / "empty")
    assert not (tmp_path / "o.onnx").exists()


def test_an_fp16_export_is_refused(tmp_path, calibration):
    torch.manual_seed(0)
    export_onnx(create_model("imdn", scale=2, args={"channels": 16, "num_modules": 1}), tmp_path / "h.onnx", fp16=True)
    with pytest.raises(SrlabError, match="computes in fp16: quantise a float32 export"):
        quantize_int8(tmp_path / "h.onnx", tmp_path / "o.onnx", calibration)


def test_a_static_shape_export_needs_calibration_images_of_its_size(tmp_path, calibration):
    torch.manual_seed(0)
    model = create_model("imdn", scale=2, args={"channels": 16, "num_modules": 1})
    export_onnx(model, tmp_path / "s.onnx", dynamic_shapes=False, example_size=(24, 24))
    with pytest.raises(SrlabError, match="takes only 24x24 inputs \\(static shapes\\): quantise an export with dynamic"):
        quantize_int8(tmp_path / "s.onnx", tmp_path / "o.onnx", calibration)
    report = quantize_int8(tmp_path / "s.onnx", tmp_path / "o.onnx", [x[..., :24, :24] for x in calibration],
                           min_fidelity_db=40)
    assert OnnxModel(report.path).input_size == (24, 24)


# The official x4 releases on Set5 and Set14 (srlab's evaluation protocol), calibrated on scikit-image photos.
OFFICIAL = {
    "imdn": "imdn/IMDN_x4.pth",
    "rlfn": "rlfn/rlfn_x4.pth",
    "bsrn": "bsrn/net_g_BSRN_x4.pth",
}


@pytest.mark.slow
@needs_shared(OFFICIAL_WEIGHTS, BENCHMARKS)
@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_weights_lose_at_most_a_tenth_of_a_db(name, tmp_path):
    from srlab.data.datasets import discover_pairs
    from srlab.inference.evaluate import evaluate_folder

    export_onnx(create_model(name, scale=4, checkpoint=OFFICIAL_WEIGHTS / OFFICIAL[name]), tmp_path / "fp32.onnx")
    photos = ["chelsea", "coffee", "rocket", "astronaut", "cat", "immunohistochemistry", "hubble_deep_field", "retina"]
    halves = {n: (n, (photo(n).shape[1] // 2, photo(n).shape[0] // 2)) for n in photos}  # LR-like: half size
    folder = write_folder(tmp_path / "calibration", halves)
    report = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calibration_images(folder))
    for dataset in ("Set5", "Set14"):
        pairs = discover_pairs(BENCHMARKS / dataset, 4)
        full = evaluate_folder(OnnxModel(tmp_path / "fp32.onnx"), pairs).psnr_y
        int8 = evaluate_folder(OnnxModel(report.path), pairs).psnr_y
        assert full - int8 <= 0.1, (dataset, full, int8, report.float_convs)
