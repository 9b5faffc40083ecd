"""Export a model to ONNX: ``lr`` (float32 N x 3 x H x W, RGB in [0, 1]) -> ``sr``, with srlab's metadata.

What is exported is the model's inference form: the fused deploy form of re-parameterisable models
(:func:`srlab.models.reparam.deploy`), and for content-adaptive models (ARM, ClassSR, PCSR, srlab's
adaptive RDSR, SMSR, CAMixerSR) their full static path, :meth:`AdaptiveMethod.full_path` (every patch,
pixel or window on the heaviest route, no routing decisions: the data-dependent routing has no static
graph). Arbitrary-scale models (Meta-SR, LIIF, LTE) export at an integer scale, rendering
``scale * H x scale * W``. The file's ``metadata_props`` hold the scale, size multiple, pad mode and
receptive radius that :class:`srlab.export.runtime.OnnxModel` gives the one inference path (padding,
tiles, crops), see :mod:`srlab.export.metadata`.

Exporters. Two are tried in turn and the first whose graph passes the check is kept:

1. the TorchScript exporter (``torch.onnx.export(dynamo=False)``), opset 18. It exports 57 of the 68
   registered models with dynamic shapes, most in well under a second (the dynamo exporter takes 5-30 s
   per model on 2 cores, minutes for the big transformers). It records size arithmetic done on traced
   sizes but bakes Python branches and Python data built per size into the graph, which three library
   edits made traceable without changing a result (``pad_to_multiple`` always pads while an exporter
   traces; ``round_up`` avoids a negative floor division, which ONNX truncates; ``LayerNorm2d`` takes its
   normalised shape from its weight) and MATLAB bicubic upscaling gets a convolution form under an
   exporter (``srlab.data.resize``: the same taps; SRCNN, FSRCNN, ESPCN, DRCN, LapSRN, ECBSR, bicubic);
2. the dynamo exporter (``torch.onnx.export(dynamo=True)``: torch.export + onnxscript), opset 18, where
   the first fails: it keeps sizes symbolic and translates more operators (SR-Net's ``rot90``).

Opset 18 is the first with ``Col2Im`` (``F.fold``). Every export is checked before the file is written:
onnxruntime runs the graph on the example input and, with dynamic shapes, on a second size with odd sides
(not a multiple of the size multiple for models that pad inside), and the largest absolute difference
from PyTorch must stay within ``1e-4`` (fp32) or ``2e-2`` (fp16) times ``max(1, max |output|)`` (see
``TOLERANCE``), unless it is no further from a float64 PyTorch run than ``ROUNDING_FACTOR`` (8) times PyTorch's own float32
output (float32 rounding in deep networks). A graph that fails the check, like one that does not export,
is not written: the error names the operator or the difference.

Not exported with dynamic shapes (README, "Deploy: ONNX export", has the table), but with static shapes
(``dynamic_shapes=False``: one input size): ESRT (``col2im`` of a size that follows the input), SAFMN,
SAFMN-L, SAFMN++ (adaptive max pooling to such a size has no ONNX operator), IPT and the arbitrary-scale
models (LIIF, LTE, Meta-SR: the output size is baked in). PCSR does not export: its full path still
indexes pixels by route (data-dependent shapes).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from srlab.adaptive import adaptive_for
from srlab.errors import SrlabError
from srlab.export.metadata import INPUT_NAME, OUTPUT_NAME, ExportedModel
from srlab.export.runtime import require, onnxruntime_session
from srlab.fileio import atomic_path
from srlab.inference.rounding import float32_rounding
from srlab.layers.padding import round_up
from srlab.models.registry import ModelSpec, spec_of
from srlab.models.reparam import deploy

OPSET = 18
# Adaptive methods whose model's own forward is the full path: an ARM supernet's forward runs its full
# width (and the method itself needs the checkpoint's lookup table, which the static path does not use).
_FORWARD_IS_FULL_PATH = ("arm",)
# Largest |onnxruntime - PyTorch| the check accepts, on outputs in [-1, 1]; outputs larger than that (a
# trained network on a random input overshoots: SPAN's official weights reach 12.8) scale it, since float32
# rounding in another summation order is relative (2e-4 there; PyTorch's own float32 output is 7.5e-5 from
# float64). Mistranslated graphs differ by more: SAFMN++'s adaptive pooling at sizes it does not divide,
# 1.5e-4 even with random weights, whose residual is small.
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
    if hasattr(model, "set_sampler"):  # srlab.models.sr3: a seeded loop of denoiser evaluations
        raise SrlabError(f"model {spec.name!r} is a diffusion sampler (--steps denoiser evaluations on seeded noise): "
                         "it runs in PyTorch only, ONNX export is not supported")
    _check_exportable(spec, fp16)
    was_training = model.training
    try:
        proto, graph, example, exporter = _export_checked(model, spec, dynamic_shapes, fp16, example_size, check)
    finally:
        model.train(was_training)  # the exported form shares the caller's modules and was put in eval mode
    precision = "fp16" if fp16 else "fp32"
    meta = ExportedModel(
        spec=spec, graph=graph, precision=precision,
        input_size=None if dynamic_shapes else tuple(example.shape[-2:]),
        exporter=exporter, opset=OPSET,
    )
    del proto.metadata_props[:]
    for key, value in meta.props().items():
        proto.metadata_props.add(key=key, value=value)
    target = Path(path)
    with atomic_path(target) as tmp:
        onnx.save(proto, str(tmp))
    return target


def _export_checked(model: nn.Module, spec: ModelSpec, dynamic_shapes: bool, fp16: bool,
                    example_size: tuple[int, int], check: bool):
    """(ONNX model, what it computes, the example input, the exporter's name) from the first exporter
    whose graph passes the check; an :class:`SrlabError` with every exporter's reason otherwise."""
    net, graph = inference_form(model)
    example = _example_input(spec, example_size, like=net)
    tolerance = TOLERANCE["fp16" if fp16 else "fp32"]
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
        problem = _compare(proto, net, example, sizes, tolerance)
        if problem is None:
            break
        failures.append(f"{exporter.__name__.strip('_')}: {problem}")
    else:
        hint = " (with --no-dynamic_shapes it may export for one input size)" if dynamic_shapes else ""
        raise SrlabError(f"model {spec.name!r} cannot be exported to ONNX{hint}: {'; '.join(failures)}")
    return proto, graph, example, exporter.__name__.strip("_")


def inference_form(model: nn.Module) -> tuple[nn.Module, str]:
    """The module that is exported, in eval mode (which puts ``model``'s modules, shared with it, in eval
    mode too), and what it computes (``ExportedModel.graph``)."""
    spec = spec_of(model)
    net, graph = deploy(model), "model"
    if spec.info.adaptive:
        graph = f"full static path of adaptive method {spec.info.adaptive}"
        if spec.info.adaptive not in _FORWARD_IS_FULL_PATH:
            net = adaptive_for(net).full_path()
    exported = _LrToSr(net).eval()
    exported.srlab_spec = spec  # the inference path runs it like the model (tests compare the two that way)
    return exported, graph


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
    height, width = (round_up(side, multiple) for side in size)
    param = next(like.parameters(), None)
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, 3, height, width, generator=generator)
    return example if param is None else example.to(param.device)


def _check_sizes(spec: ModelSpec, example: torch.Tensor) -> list[tuple[int, int]]:
    """The example's size and a second one: another multiple of the size multiple, or for models that
    pad inside, a size that is not one (so the graph's own padding is checked)."""
    height, width = example.shape[-2:]
    multiple = max(1, spec.info.size_multiple)
    step = 1 if spec.info.pad_mode == "inside" else multiple
    # Odd sides (for step 1): sizes that no pooling or window grid divides, where mistranslations show.
    return [(height, width), (round_up(height // 2 + 1, step), round_up(width + 1, step))]


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
    with warnings.catch_warnings(), torch.no_grad(), _native_output_dropped():
        warnings.simplefilter("ignore")  # tracer warnings about size arithmetic: the check judges the graph
        torch.onnx.export(
            net, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes=axes if dynamic else None,
        )
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def _native_output_dropped() -> Iterator[None]:
    """Drop what is written to stdout/stderr meanwhile, by C++ code and Python alike: the TorchScript
    exporter (torch 2.7-2.13) turns its log on whatever it is asked and dumps the whole graph there when
    an export fails, and torch.export logs the traced program and the operators it skips; the failure
    itself comes back as the exception."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    logging_disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # handlers hold the streams they were made with
    try:
        with open(os.devnull, "wb") as devnull, contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            for fd in (1, 2):
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        logging.disable(logging_disabled)
        for fd, copy_of in zip((1, 2), saved):
            os.dup2(copy_of, fd)
            os.close(copy_of)


def _dynamo(net: nn.Module, example: torch.Tensor, dynamic: bool):
    require("onnxscript")
    dim = torch.export.Dim.DYNAMIC
    shapes = ({0: dim, 2: dim, 3: dim},) if dynamic else None
    with warnings.catch_warnings(), torch.no_grad(), _native_output_dropped():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net, (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes, optimize=True, verbose=False, report=False,
        )
    return program.model_proto


def _compare(proto, net: nn.Module, example: torch.Tensor, sizes: list[tuple[int, int]], tolerance: float) -> str | None:
    """None if onnxruntime matches PyTorch on every size, else what differs."""
    try:
        session = onnxruntime_session(proto.SerializeToString(), threads=torch.get_num_threads())
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
        allowed = tolerance * max(1.0, expected.abs().max().item())
        if not diff <= allowed and not float32_rounding(net, x, expected, got)[0]:
            return f"differs from PyTorch by {diff:.3g} (> {allowed:.3g}) on a {height}x{width} input"
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
