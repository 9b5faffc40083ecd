"""Export a model to ONNX: ``lr`` (float32 N x 3 x H x W, RGB in [0, 1]) -> ``sr``, with srlab's metadata.

What is exported is the model's inference form: the fused deploy form of re-parameterisable models
(:func:`srlab.models.reparam.deploy`), and for content-adaptive models (ARM, ClassSR, PCSR, srlab's
adaptive RDSR, SMSR, CAMixerSR) their full static path, :meth:`AdaptiveMethod.full_path` (every patch,
pixel or window on the heaviest route, no routing decisions: the data-dependent routing has no static
graph). Arbitrary-scale models (Meta-SR, LIIF, LTE) export at an integer scale, rendering
``scale * H x scale * W``. The file's ``metadata_props`` hold the scale, size multiple, pad mode and
receptive radius that :class:`srlab.export.runtime.OnnxModel` gives the one inference path (padding,
tiles, crops), see :mod:`srlab.export.metadata`.

Exporters. Two are tried in turn and the first whose graph matches PyTorch is kept:

1. the TorchScript exporter (``torch.onnx.export(dynamo=False)``), opset 18: it exports the convolutional
   models in well under a second (the dynamo exporter takes 5-30 s per model on 2 cores), but it bakes
   Python arithmetic on sizes into constants, so windowed attention, LayerNorm over ``x.shape`` and
   padding inside the forward come out fixed to the example's size (or fail to export);
2. the dynamo exporter (``torch.onnx.export(dynamo=True)``, torch.export + onnxscript), opset 18: sizes
   stay symbolic, so those models export with dynamic shapes.

Opset 18 is the first with ``Col2Im`` (IPT's and ESRT's ``F.fold``). Every export is checked before the
file is written: onnxruntime runs the graph on the example input and, with dynamic shapes, on a second
size (not a multiple of the size multiple for models that pad inside), and the largest absolute difference
from PyTorch must stay within ``1e-4`` (fp32) or ``2e-2`` (fp16). A graph that fails the check, like
one that does not export, is not written: the error names the operator or the difference.
"""

from __future__ import annotations

import copy
import io
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from srlab.adaptive import adaptive_for
from srlab.errors import SrlabError
from srlab.export.metadata import INPUT_NAME, OUTPUT_NAME, ExportedModel
from srlab.export.runtime import require, session_from_bytes
from srlab.fileio import atomic_path
from srlab.models.registry import ModelSpec, spec_of
from srlab.models.reparam import deploy

OPSET = 18
# Adaptive methods whose model's own forward is the full path: an ARM supernet's forward runs its full
# width (and the method itself needs the checkpoint's lookup table, which the static path does not use).
_FORWARD_IS_FULL_PATH = ("arm",)
# Largest |onnxruntime - PyTorch| accepted by the check, on outputs in [0, 1].
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    dynamic_shapes: bool = True,
    fp16: bool = False,
    example_size: tuple[int, int] = (64, 64),
    check: bool = True,
) -> Path:
    """Write ``model``'s inference form to ``path`` as ONNX (atomically) and return the path.

    ``dynamic_shapes``: the graph takes any batch and any H x W the model takes (else only
    ``example_size``, rounded up to the size multiple). ``fp16`` computes in half precision (inputs and
    outputs stay float32). ``check`` compares onnxruntime with PyTorch before writing (see the module
    docstring); an :class:`SrlabError` names what failed.
    """
    onnx = require("onnx")
    spec = spec_of(model)
    _check_exportable(spec, fp16)
    net, graph = inference_form(model)
    example = _example_input(spec, example_size, like=net)
    precision = "fp16" if fp16 else "fp32"
    if fp16:
        net = _HalfPrecision(copy.deepcopy(net))
    sizes = _check_sizes(spec, example) if dynamic_shapes else [tuple(example.shape[-2:])]
    failures = []
    for exporter in (_torchscript, _dynamo):
        try:
            proto = exporter(net, example, dynamic_shapes)
        except Exception as e:  # noqa: BLE001 - any exporter failure is reported as the model's reason
            failures.append(f"{exporter.__name__.strip('_')}: {_reason(e)}")
            continue
        if not check:
            break
        problem = _compare(proto, net, example, sizes, TOLERANCE[precision])
        if problem is None:
            break
        failures.append(f"{exporter.__name__.strip('_')}: {problem}")
    else:
        raise SrlabError(f"model {spec.name!r} cannot be exported to ONNX: {'; '.join(failures)}")
    meta = ExportedModel(
        spec=spec, graph=graph, precision=precision,
        input_size=None if dynamic_shapes else tuple(example.shape[-2:]),
        exporter=exporter.__name__.strip("_"), opset=OPSET,
    )
    del proto.metadata_props[:]
    for key, value in meta.props().items():
        proto.metadata_props.add(key=key, value=value)
    target = Path(path)
    with atomic_path(target) as tmp:
        onnx.save(proto, str(tmp))
    return target


def inference_form(model: nn.Module) -> tuple[nn.Module, str]:
    """The module that is exported (in eval mode), and what it computes (``ExportedModel.graph``)."""
    spec = spec_of(model)
    net, graph = deploy(model), "model"
    if spec.info.adaptive:
        graph = f"full static path of adaptive method {spec.info.adaptive}"
        if spec.info.adaptive not in _FORWARD_IS_FULL_PATH:
            net = adaptive_for(net).full_path()
    if net is model:  # leave the caller's model in its mode
        net = copy.copy(model)
    return _LrToSr(net).eval(), graph


class _LrToSr(nn.Module):
    """``lr -> sr`` and nothing else: the exporters trace one positional input, whatever keyword
    arguments the model's forward takes (PCSR's ``k``, the arbitrary-scale models' ``size``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.net(lr)


def _check_exportable(spec: ModelSpec, fp16: bool) -> None:
    if not float(spec.scale).is_integer():
        raise SrlabError(
            f"model {spec.name!r} at x{spec.scale}: ONNX export takes integer scales (the graph renders "
            f"scale*H x scale*W): export at --scale {max(1, int(spec.scale))} or another integer"
        )
    if fp16 and not spec.info.half_precision_safe:
        raise SrlabError(
            f"model {spec.name!r} is not half-precision safe (its activations overflow float16): drop --fp16"
        )


def _example_input(spec: ModelSpec, size: tuple[int, int], *, like: nn.Module) -> torch.Tensor:
    multiple = max(1, spec.info.size_multiple)
    height, width = (-(-side // multiple) * multiple for side in size)
    param = next(like.parameters(), None)
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, 3, height, width, generator=generator)
    return example if param is None else example.to(param.device)


def _check_sizes(spec: ModelSpec, example: torch.Tensor) -> list[tuple[int, int]]:
    """The example's size and a second one: another multiple of the size multiple, or for models that
    pad inside, a size that is not one (so the graph's own padding is checked)."""
    height, width = example.shape[-2:]
    multiple = max(1, spec.info.size_multiple)
    step = 3 if spec.info.pad_mode == "inside" and multiple > 1 else multiple
    return [(height, width), (height - step * (height // (2 * step)) or height + step, width + step)]


class _HalfPrecision(nn.Module):
    """The model in float16 behind float32 inputs and outputs (the file's I/O contract stays float32)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.net(lr.half()).float()


def _torchscript(net: nn.Module, example: torch.Tensor, dynamic: bool):
    onnx = require("onnx")
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about size arithmetic: the check judges the graph
        torch.onnx.export(
            net, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes=axes if dynamic else None,
        )
    return onnx.load_from_string(buffer.getvalue())


def _dynamo(net: nn.Module, example: torch.Tensor, dynamic: bool):
    require("onnxscript")
    dim = torch.export.Dim.DYNAMIC
    shapes = ({0: dim, 2: dim, 3: dim},) if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net, (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes, optimize=True, verbose=False, report=False,
        )
    return program.model_proto


def _compare(proto, net: nn.Module, example: torch.Tensor, sizes: list[tuple[int, int]], tolerance: float) -> str | None:
    """None if onnxruntime matches PyTorch on every size, else what differs."""
    try:
        session = session_from_bytes(proto.SerializeToString(), threads=torch.get_num_threads())
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors have no common type
        return f"onnxruntime cannot load the graph ({_reason(e)})"
    generator = torch.Generator().manual_seed(1)
    for height, width in sizes:
        x = example if (height, width) == tuple(example.shape[-2:]) else torch.rand(
            1, 3, height, width, generator=generator
        ).to(example.device)
        with torch.no_grad():
            expected = net(x).float().cpu()
        try:
            got = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.float().cpu().numpy()})[0])
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors have no common type
            return f"onnxruntime fails on a {height}x{width} input ({_reason(e)})"
        if got.shape != expected.shape:
            return f"output {tuple(got.shape)} instead of {tuple(expected.shape)} on a {height}x{width} input"
        diff = (got - expected).abs().max().item()
        if not diff <= tolerance:
            return f"differs from PyTorch by {diff:.3g} (> {tolerance:g}) on a {height}x{width} input"
    return None


def _reason(error: Exception) -> str:
    """One line saying why an export failed: the unsupported operator where the message names one."""
    while error.__cause__ is not None:  # torch.export wraps the error that says what failed
        error = error.__cause__
    text = " ".join(str(error).split())
    op = re.search(r"operator '([\w:.]+)'", text) or re.search(r"\b(aten[:.]{1,2}\w+(?:\.\w+)?)", text)
    if op is not None:
        return f"unsupported operator {op.group(1)} ({type(error).__name__})"
    return f"{type(error).__name__}: {text[:200]}"
