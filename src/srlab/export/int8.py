"""Post-training static int8 quantisation of an exported ONNX model (onnxruntime, QDQ format).

:func:`quantize_int8` takes a float32 file from :func:`srlab.export.onnx.export_onnx` and a few LR
calibration images (never the images it will be scored on) and writes a file that
:class:`srlab.export.runtime.OnnxModel` and ``srlab upscale --onnx`` run like the float one:

1. onnxruntime's pre-processing (shape inference, graph optimisation) of the float graph;
2. ``quantize_static`` in QDQ format: Conv weights int8 per output channel, Conv activations uint8 per
   tensor with the min/max ranges of the calibration images. Only Conv is quantised: quantising the
   other operators too (adds, attention products, concatenations) cost IMDN x4 0.3 dB more on Set5, and
   percentile or entropy ranges clip the rare large activations SR features have (0.25-1.5 dB lost);
3. mixed precision, decided on the calibration images alone. Eight-bit activations of SR features lose
   too much everywhere (every Conv in int8: -0.36 dB for IMDN x4, -0.55 dB for RLFN x4 on Set5), so some
   Convs stay float: each Conv's quantisation noise is measured (the lowest signal-to-quantisation-noise
   ratio of its input and output in the int8 graph, onnxruntime's ``qdq_loss_debug``), and the fewest of
   the noisiest Convs are kept float that bring the int8 output within ``min_fidelity_db`` (PSNR against
   the float output, on the calibration images) of the float model (a binary search: about
   log2(number of Convs) quantisations). Ranking by noise per multiply-accumulate instead (to keep the
   cheap Convs float) needed nearly every Conv of RLFN float for the same fidelity.

The file keeps the source's srlab metadata with ``srlab.precision`` "int8", and records the Convs kept
float and the fidelity reached (``srlab.int8``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srlab.data.io import list_images, read_rgb
from srlab.errors import SrlabError
from srlab.export.metadata import INPUT_NAME, OUTPUT_NAME, PREFIX, ExportedModel
from srlab.export.runtime import require, onnxruntime_session
from srlab.fileio import atomic_path, check_not_overwriting

__all__ = ["CALIBRATION_CROP", "MIN_FIDELITY_DB", "Int8Report", "calibration_images", "quantize_int8"]

# PSNR of the int8 output against the float output on the calibration images. 57 dB: on Set5 x4, IMDN
# lost 0.083 dB at 57.3 and 0.156 dB at 49.9, RLFN 0.022 dB at 56.9 (the README's int8 section).
MIN_FIDELITY_DB = 57.0
# Calibration images are centre crops of this side (LR pixels): activation ranges need content, not size,
# and each step of the search runs every calibration image through the graph.
CALIBRATION_CROP = 96
_NOISE_FLOOR_DB = 99.0  # the SQNR of a tensor the int8 graph does not quantise


@dataclass(frozen=True)
class Int8Report:
    """What :func:`quantize_int8` wrote."""

    path: Path
    convs: int
    float_convs: tuple[str, ...]  # the Convs kept in float, by node name
    fidelity_db: float  # PSNR of the int8 output against the float output on the calibration images
    calibration_images: int

    @property
    def int8_convs(self) -> int:
        return self.convs - len(self.float_convs)


def calibration_images(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, crop: int = CALIBRATION_CROP, limit: int = 16
) -> list[np.ndarray]:
    """LR images for calibration from a folder, a file or a list of them: float32 (1, 3, h, w) in [0, 1],
    centre crops of at most ``crop`` x ``crop``, at most ``limit`` of them."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths = [path for item in sources for path in list_images(item)][:limit]
    if not paths:
        raise SrlabError("--calibration: give a folder of LR images (a few photos that are not the test images)")
    images = []
    for path in paths:
        rgb = read_rgb(path)
        height, width = rgb.shape[-2:]
        top, left = max(0, (height - crop) // 2), max(0, (width - crop) // 2)
        images.append(np.ascontiguousarray(rgb[None, :, top:top + crop, left:left + crop].numpy(), dtype=np.float32))
    return images


def quantize_int8(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    calibration: Sequence[np.ndarray | torch.Tensor],
    *,
    min_fidelity_db: float = MIN_FIDELITY_DB,
) -> Int8Report:
    """Quantise the float32 ONNX file ``source`` (from ``srlab export``) to int8 into ``destination``
    (written atomically), calibrated on ``calibration`` ((1, 3, h, w) float arrays in [0, 1]); see the
    module docstring. SrlabError for a file that is not a float32 srlab export."""
    onnx = require("onnx")
    require("onnxruntime")
    source, destination = Path(source), Path(destination)
    check_not_overwriting(destination, [source])
    proto, meta = _read_float_export(source, onnx)
    images = [np.ascontiguousarray(np.asarray(x, dtype=np.float32)) for x in calibration]
    if not images or any(x.ndim != 4 or x.shape[:2] != (1, 3) for x in images):
        raise SrlabError("calibration images must be (1, 3, h, w) RGB arrays, at least one")
    if meta.input_size is not None and any(x.shape[-2:] != meta.input_size for x in images):
        height, width = meta.input_size
        raise SrlabError(f"'{source}' takes only {height}x{width} inputs (static shapes): quantise an export with "
                         "dynamic shapes, or calibrate on images of that size")
    with tempfile.TemporaryDirectory(prefix="srlab-int8-") as scratch:
        work = _Work(Path(scratch), source, images)
        every_conv = work.quantized([])
        ranked = work.rank_convs(every_conv)
        keep, fidelity, path = work.search(ranked, every_conv, min_fidelity_db)
        quantized = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props[PREFIX + "precision"] = "int8"
    props[PREFIX + "int8"] = json.dumps({
        "convs": len(ranked), "float_convs": list(keep), "fidelity_db": round(fidelity, 2),
        "calibration_images": len(images), "min_fidelity_db": min_fidelity_db,
    })
    del quantized.metadata_props[:]
    for key, value in props.items():
        quantized.metadata_props.add(key=key, value=value)
    with atomic_path(destination) as tmp:
        onnx.save(quantized, str(tmp))
    return Int8Report(destination, len(ranked), tuple(keep), fidelity, len(images))


def _read_float_export(path: Path, onnx):  # noqa: ANN001, ANN202 - the optional onnx module and its proto
    if not path.is_file():
        raise SrlabError(f"ONNX model '{path}' does not exist: give the file `srlab export` wrote")
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf's decode errors have no common public type
        raise SrlabError(f"'{path}' is not a readable ONNX model ({type(e).__name__}): export it again") from None
    meta = ExportedModel.from_props({p.key: p.value for p in proto.metadata_props}, source=str(path))
    if meta.precision != "fp32":
        raise SrlabError(f"'{path}' computes in {meta.precision}: quantise a float32 export (srlab export without --fp16)")
    return proto, meta


def _image_and_output_convs(graph) -> set[str]:  # noqa: ANN001 - an onnx GraphProto
    """The Convs that read the image with no Conv before them, and those whose output reaches the graph's
    output with no Conv after them: 8 bits of a re-quantised image, or of the output itself, cost more
    PSNR than any inner Conv (RLFN x4: 44.5 -> 49.5 dB of fidelity for its first Conv alone)."""
    after_conv: set[str] = set()  # tensors computed from a Conv's output
    first = set()
    for node in graph.node:  # ONNX nodes are in topological order
        upstream = any(name in after_conv for name in node.input)
        if node.op_type == "Conv" and not upstream:
            first.add(node.name)
        if node.op_type == "Conv" or upstream:
            after_conv.update(node.output)
    before_output: set[str] = {out.name for out in graph.output}  # tensors the output is computed from
    last = set()
    for node in reversed(graph.node):
        if not any(name in before_output for name in node.output):
            continue
        if node.op_type == "Conv":
            last.add(node.name)
        else:
            before_output.update(node.input)
    return first | last


class _Work:
    """The files of one quantisation, in a scratch folder: the pre-processed float graph and int8 graphs."""

    def __init__(self, scratch: Path, source: Path, images: list[np.ndarray]) -> None:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        self.scratch, self.images = scratch, images
        self.float_path = scratch / "float.onnx"
        try:
            quant_pre_process(str(source), str(self.float_path))
        except Exception as e:  # noqa: BLE001 - onnxruntime's optimiser raises bare Exceptions
            raise SrlabError(f"onnxruntime cannot prepare '{source}' for quantisation: {' '.join(str(e).split())[:200]}") from None
        float_session = onnxruntime_session(str(self.float_path))
        self.references = [np.clip(float_session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], 0, 1) for x in images]
        self._count = 0

    def _reader(self):  # noqa: ANN202 - an onnxruntime CalibrationDataReader
        from onnxruntime.quantization import CalibrationDataReader

        images = self.images

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.pending = iter(images)

            def get_next(self) -> dict[str, np.ndarray] | None:
                image = next(self.pending, None)
                return None if image is None else {INPUT_NAME: image}

        return Reader()

    def quantized(self, keep_float: Sequence[str]) -> Path:
        """The int8 graph with the Convs ``keep_float`` left in float."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        self._count += 1
        out = self.scratch / f"int8-{self._count}.onnx"
        quantize_static(
            str(self.float_path), str(out), self._reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
            nodes_to_exclude=list(keep_float), calibrate_method=CalibrationMethod.MinMax,
        )
        return out

    def fidelity(self, path: Path) -> float:
        """PSNR (dB) of the graph's clamped output against the float graph's on the calibration images."""
        session = onnxruntime_session(str(path))
        errors = [np.mean((np.clip(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], 0, 1) - ref) ** 2)
                  for x, ref in zip(self.images, self.references, strict=True)]
        mse = float(np.mean(errors))
        return math.inf if mse == 0 else 10 * math.log10(1 / mse)

    def rank_convs(self, every_conv: Path) -> list[str]:
        """Every Conv, noisiest first (``every_conv``: the graph with all of them in int8): the lowest
        signal-to-quantisation-noise ratio of its input and output on the calibration images."""
        onnx = require("onnx")
        from onnxruntime.quantization import qdq_loss_debug as debug

        graph = onnx.load(str(self.float_path)).graph
        convs = [node for node in graph.node if node.op_type == "Conv"]
        if not convs:
            raise SrlabError("the model has no convolutions: int8 quantisation here is for convolutional networks")
        ends = _image_and_output_convs(graph)
        augmented = self.scratch / "debug.onnx"
        debug.modify_model_output_intermediate_tensors(str(every_conv), str(augmented))
        matching = debug.create_activation_matching(debug.collect_activations(str(augmented), self._reader()))

        def sqnr(tensor: str) -> float:
            pair = matching.get(tensor, {})
            if "pre_qdq" not in pair or "post_qdq" not in pair:
                return _NOISE_FLOOR_DB
            return float(debug.compute_signal_to_quantization_noice_ratio(pair["pre_qdq"], pair["post_qdq"]))

        rest = sorted((node for node in convs if node.name not in ends),
                      key=lambda node: min(sqnr(node.input[0]), sqnr(node.output[0])))
        return [node.name for node in convs if node.name in ends] + [node.name for node in rest]

    def search(self, ranked: list[str], every_conv: Path, min_fidelity_db: float) -> tuple[list[str], float, Path]:
        """The fewest Convs from the top of ``ranked`` to keep float for ``min_fidelity_db``: (those Convs,
        the fidelity reached, the graph). A binary search; keeping every Conv float is exact by definition."""
        fidelity = self.fidelity(every_conv)
        if fidelity >= min_fidelity_db:
            return [], fidelity, every_conv
        low, high, best = 0, len(ranked), None
        while high - low > 1:
            middle = (low + high) // 2
            path = self.quantized(ranked[:middle])
            value = self.fidelity(path)
            if value >= min_fidelity_db:
                high, fidelity, best = middle, value, path
            else:
                low = middle
        if best is None:
            best = self.quantized(ranked)
            fidelity = self.fidelity(best)
        return ranked[:high], fidelity, best
