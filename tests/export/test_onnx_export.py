"""ONNX export of every registered model: onnxruntime computes what PyTorch computes, through the same
pad/tile/crop path, on random inputs and on a real photo; the models that cannot export are refused in one
line naming why (srlab.export)."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from srlab.errors import SrlabError
from srlab.export.metadata import INPUT_NAME, OUTPUT_NAME
from srlab.export.onnx import export_onnx, inference_form
from srlab.inference.rounding import ROUNDING_FACTOR
from srlab.export.runtime import OnnxModel
from srlab.inference import upscale_tensor
from srlab.models.create import create_model
from srlab.models.registry import build_model, list_models, model_info, with_scale
from conftest import OFFICIAL_WEIGHTS, needs_shared, photo

TOLERANCE = 1e-4

# Exported and compared in the default suite (each a few seconds at most on 2 cores).
FAST = (
    "arm_carn", "arm_fsrcnn", "bicubic", "car_edsr", "carn_m", "classsr_fsrcnn", "ditn", "ecbsr", "ecbsr_etds",
    "edsr_baseline",
    "espcn", "qsrnet", "qsrnet_large", "qsrnet_small", "espcn_etds", "etds_l", "etds_m", "etds_s", "etds_t", "fsrcnn", "fsrcnn_etds", "imdn", "rdsr",
    "rdsr_adaptive", "rdsr_s", "rfdn", "rfdn_aim", "rlfn", "rlfn_ntire", "rlfn_s", "shufflemixer_tiny", "smsr",
    "span", "span_ch28", "sr_lut", "srcnn",
)
# Cannot export with dynamic shapes: the reason the error names (the table in the README).
NOT_DYNAMIC = {
    "esrt": "col2im", "fiwhn": "col2im",
    "pcsr_carn": "data-dependent", "pcsr_fsrcnn": "data-dependent",
    # the pooling window follows the input size: TorchScript cannot export that arithmetic, dynamo bakes the
    # traced size's window in (the check against PyTorch on another size refuses it)
    "safmn": "dynamo: differs from PyTorch", "safmn_l": "dynamo: differs from PyTorch",
    "safmn_pp": "dynamo: differs from PyTorch",
    "ipt": "", "liif_edsr_baseline": "", "lte_edsr_baseline": "", "metasr_rdn": "",
    # per-image kernels folded into a grouped convolution whose group count is the batch
    "adsrnet": "kernel of unknown shape", "asconvsr": "kernel of unknown shape",
}
# Of those, the ones that export with static shapes (one input size: the graph bakes in their output size,
# patch grid or pooling windows); PCSR's full path does not export at all.
STATIC_ONLY = tuple(sorted(set(NOT_DYNAMIC) - {"pcsr_carn", "pcsr_fsrcnn"}))
# Diffusion samplers (a seeded loop of denoiser evaluations): refused, they run in PyTorch only.
SAMPLERS = ("resshift", "resshift_tiny", "sr3", "sr3_tiny")
# Export too, but take longer (big networks, or the dynamo exporter): @pytest.mark.slow.
SLOW = tuple(sorted(set(list_models()) - set(FAST) - set(NOT_DYNAMIC) - set(SAMPLERS)))


def test_every_model_is_covered():
    groups = [set(FAST), set(SLOW), set(NOT_DYNAMIC), set(SAMPLERS)]
    assert set().union(*groups) == set(list_models())
    assert sum(map(len, groups)) == len(list_models())  # each model in one group


def _scale(name: str) -> int:
    scales = model_info(name).scales
    return 4 if 4 in scales else scales[0]


def _photo_crop() -> torch.Tensor:
    """A 37x45 crop of skimage's astronaut (face and suit: edges and flat areas), (1, 3, H, W) in [0, 1]."""
    crop = photo("astronaut")[90:127, 170:215]
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255


def _export_and_compare(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(name, scale=_scale(name))
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    exported = OnnxModel(path, threads=1)
    reference, _ = inference_form(model)
    generator = torch.Generator().manual_seed(2)
    for lr in (torch.rand(1, 3, 29, 38, generator=generator), _photo_crop()):
        got = upscale_tensor(exported, lr)
        assert got.shape == (1, 3, lr.shape[-2] * exported.scale, lr.shape[-1] * exported.scale)
        _assert_matches(got, reference, lr, name)


def _assert_matches(got: torch.Tensor, reference: torch.nn.Module, lr: torch.Tensor, name: str) -> None:
    """onnxruntime's output within TOLERANCE of PyTorch's, or (an ill-conditioned network: random-init
    ELAN, IPT) no further from a float64 run than ROUNDING_FACTOR x PyTorch's own float32 output."""
    expected = upscale_tensor(reference, lr)
    difference = (got - expected).abs().max().item()
    if difference > TOLERANCE:
        exact = upscale_tensor(copy.deepcopy(reference).double(), lr.double())
        own_error = (expected.double() - exact).abs().max().item()
        assert (got.double() - exact).abs().max().item() <= ROUNDING_FACTOR * own_error, f"{name}: off by {difference:.3g}"


@pytest.mark.parametrize("name", FAST)
def test_fast_models_export_and_match_pytorch(name, tmp_path):
    _export_and_compare(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_slow_models_export_and_match_pytorch(name, tmp_path):
    _export_and_compare(name, tmp_path)


def test_diffusion_samplers_are_refused_in_one_line(tmp_path):
    model = build_model("sr3_tiny", scale=4, args={"channels": 8, "groups": 4})
    with pytest.raises(SrlabError, match="model 'sr3_tiny' is a diffusion sampler .*: it runs in PyTorch only"):
        export_onnx(model, tmp_path / "sr3.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(("name", "reason"), sorted(NOT_DYNAMIC.items()))
def test_models_that_cannot_export_are_refused_in_one_line(name, reason, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, scale=_scale(name))
    target = tmp_path / f"{name}.onnx"
    refusal = rf"model '{name}' cannot be exported to ONNX \(with --no-dynamic_shapes .*\): .*{reason}"
    with pytest.raises(SrlabError, match=refusal) as info:
        export_onnx(model, target)
    assert "\n" not in str(info.value)
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", STATIC_ONLY)
def test_static_only_models_export_for_one_input_size(name, tmp_path):
    """Arbitrary-scale models at an integer scale, IPT and ESRT (a fixed patch grid), SAFMN (fixed pooling
    windows) export with static shapes."""
    torch.manual_seed(0)
    model = build_model(name, scale=_scale(name))
    path = export_onnx(model, tmp_path / f"{name}.onnx", dynamic_shapes=False, example_size=(48, 48))
    exported = OnnxModel(path, threads=1)
    reference, _ = inference_form(model)
    lr = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    _assert_matches(upscale_tensor(exported, lr), reference, lr, name)
    assert exported.input_size == (48, 48)


@pytest.fixture(scope="module")
def imdn_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("imdn", scale=2)
    return model, export_onnx(model, tmp_path_factory.mktemp("imdn") / "imdn.onnx")


def test_the_file_follows_the_contract_and_records_the_metadata(imdn_file):
    _, path = imdn_file
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3 and not dims[2].dim_value and not dims[3].dim_value  # any H x W
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["srlab.model"] == "imdn" and props["srlab.scale"] == "2"
    assert props["srlab.size_multiple"] == "1" and props["srlab.pad_mode"] == "reflect"
    assert props["srlab.receptive_radius"] == str(model_info("imdn").receptive_radius)
    assert props["srlab.input"].startswith("lr: float32 N x 3 x H x W, RGB in [0, 1]")
    assert props["srlab.dynamic_shapes"] == "true" and props["srlab.precision"] == "fp32"
    loaded = OnnxModel(path)
    assert (loaded.scale, loaded.size_multiple, loaded.pad_mode, loaded.model_name) == (2, 1, "reflect", "imdn")
    assert loaded.input_size is None and next(loaded.parameters(), None) is None


def test_tiles_and_batches_run_through_the_same_path(imdn_file):
    model, path = imdn_file
    exported = OnnxModel(path, threads=1)
    lr = torch.rand(2, 3, 41, 53, generator=torch.Generator().manual_seed(3))
    expected = upscale_tensor(model.eval(), lr)
    assert (upscale_tensor(exported, lr) - expected).abs().max() <= TOLERANCE
    assert (upscale_tensor(exported, lr, tile=16) - expected).abs().max() <= TOLERANCE
    assert (upscale_tensor(exported, lr[0]) - expected[0]).abs().max() <= TOLERANCE  # (C, H, W) too


def test_models_that_pad_inside_pad_inside_the_graph_too(tmp_path):
    """A window-multiple model (pad mode "inside") exported at 64x64 must pad odd sizes itself."""
    torch.manual_seed(0)
    model = build_model("rdsr_s", scale=2)  # size multiple 6, reflect: padded by the path instead
    exported = OnnxModel(export_onnx(model, tmp_path / "rdsr_s.onnx"), threads=1)
    assert exported.size_multiple == 6 and exported.pad_mode == "reflect"
    lr = torch.rand(1, 3, 25, 31)
    assert (upscale_tensor(exported, lr) - upscale_tensor(model.eval(), lr)).abs().max() <= TOLERANCE


def test_static_shapes_take_only_the_exported_size(tmp_path):
    torch.manual_seed(0)
    model = build_model("fsrcnn_etds", scale=2)
    path = export_onnx(model, tmp_path / "static.onnx", dynamic_shapes=False, example_size=(24, 32))
    exported = OnnxModel(path, threads=1)
    assert exported.input_size == (24, 32)
    lr = torch.rand(1, 3, 24, 32)
    assert (exported(lr) - model.eval()(lr)).abs().max() <= TOLERANCE
    with pytest.raises(SrlabError, match=r"static shapes for 24x32 inputs, got 20x32: export it with --dynamic_shapes"):
        exported(torch.rand(1, 3, 20, 32))


def test_fp16_computes_in_half_precision_behind_float32_io(tmp_path):
    torch.manual_seed(0)
    # A narrow IMDN: the full one's fp16 export took 19 s of the default suite (AMD EPYC Zen 4, 2026-12-06).
    model = create_model("imdn", scale=2, args={"channels": 16, "num_modules": 1})
    path = export_onnx(model, tmp_path / "half.onnx", fp16=True)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    exported = OnnxModel(path, threads=1)
    assert exported.exported.precision == "fp16"
    lr = _photo_crop()
    difference = (upscale_tensor(exported, lr) - upscale_tensor(model.eval(), lr)).abs().max().item()
    assert 0 < difference <= 2e-2


def test_fp16_is_refused_for_models_that_are_not_half_precision_safe(tmp_path):
    unsafe = next(name for name in list_models() if not model_info(name).half_precision_safe)
    with pytest.raises(SrlabError, match=rf"model '{unsafe}' is not half-precision safe .*: drop --fp16"):
        export_onnx(build_model(unsafe, scale=_scale(unsafe)), tmp_path / "x.onnx", fp16=True)


def test_arbitrary_scale_models_export_integer_scales_only(tmp_path):
    model = with_scale(build_model("liif_edsr_baseline", scale=2), 2.5)
    with pytest.raises(SrlabError, match=r"x2\.5: ONNX export takes integer scales .*: export at --scale 2"):
        export_onnx(model, tmp_path / "liif.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_caller_s_model_keeps_its_mode(tmp_path):
    model = build_model("carn_m", scale=2).train()
    export_onnx(model, tmp_path / "carn_m.onnx")
    assert all(module.training for module in model.modules())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"ONNX model '.*missing.onnx' does not exist"),
        (b"\x00not a model", r"'.*bad.onnx' is not a readable ONNX model"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / ("missing.onnx" if content is None else "bad.onnx")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SrlabError, match=message):
        OnnxModel(path)


def test_a_file_without_srlab_metadata_is_refused(imdn_file, tmp_path):
    _, path = imdn_file
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(SrlabError, match=r"'.*plain.onnx' has no srlab metadata .*: export it with `srlab export`"):
        OnnxModel(plain)


@needs_shared(OFFICIAL_WEIGHTS / "imdn" / "IMDN_x4.pth")
def test_official_imdn_x4_exports_and_matches(tmp_path):
    model = create_model("imdn", scale=4, checkpoint=OFFICIAL_WEIGHTS / "imdn" / "IMDN_x4.pth")
    exported = OnnxModel(export_onnx(model, tmp_path / "imdn_x4.onnx"), threads=1)
    lr = _photo_crop()
    expected = upscale_tensor(model, lr)
    assert (upscale_tensor(exported, lr) - expected).abs().max() <= TOLERANCE
    assert expected.std() > 0.05  # real weights on a real photo: a picture, not a constant


@needs_shared(OFFICIAL_WEIGHTS / "span" / "team38_span_ch28_slim.pth")
def test_official_span_deploy_form_exports_and_matches(tmp_path):
    """SPAN's official weights are its fused deploy form; the file records that form."""
    model = create_model("span_ch28", scale=4, checkpoint=OFFICIAL_WEIGHTS / "span" / "team38_span_ch28_slim.pth")
    exported = OnnxModel(export_onnx(model, tmp_path / "span.onnx"), threads=1)
    assert exported.srlab_spec.form == "deploy"
    lr = _photo_crop()
    # Float32 rounding in other summation orders: up to 2e-4 on random inputs with these weights (PyTorch's
    # own float32 output is 7.5e-5 from float64 there), below 1e-4 on the photo.
    assert (upscale_tensor(exported, lr) - upscale_tensor(model, lr)).abs().max() <= TOLERANCE
