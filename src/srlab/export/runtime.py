"""Run an exported ``.onnx`` file with onnxruntime as a model of srlab's inference path.

:class:`OnnxModel` is a parameter-free ``nn.Module`` whose ``srlab_spec`` (scale, size multiple, pad mode,
receptive radius) is read from the file's metadata, so :func:`srlab.inference.upscale_tensor` and
:func:`srlab.inference.upscale_file` pad, tile, stream and crop for it exactly as for the PyTorch model it
was exported from.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.export.metadata import INPUT_NAME, OUTPUT_NAME, ExportedModel


def require(module: str, package: str | None = None):
    """Import an optional dependency, or a one-line error naming the pip package."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SrlabError(
            f"ONNX export and inference need the package {package or module!r}: "
            f"pip install {package or module} (or pip install 'srlab[deploy]')"
        ) from None


def session_from_bytes(model: bytes | str, *, threads: int | None = None):
    """An onnxruntime CPU session for a serialised model (or a path); ``threads`` None: onnxruntime's default."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: onnxruntime warns about every constant it folds
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxModel(nn.Module):
    """An exported model file, callable on (N, 3, H, W) float tensors like the model it came from.

    ``scale``, ``size_multiple``, ``pad_mode``, ``receptive_radius`` and the rest of the metadata are
    attributes; ``srlab_spec`` is what the inference path reads.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        super().__init__()
        onnx = require("onnx")
        self.path = Path(path)
        if not self.path.is_file():
            raise SrlabError(f"ONNX model '{self.path}' does not exist: give the file `srlab export` wrote")
        try:
            proto = onnx.load(str(self.path), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - protobuf's decode errors have no common public type
            raise SrlabError(f"'{self.path}' is not a readable ONNX model ({type(e).__name__}): export it again") from None
        self.exported = ExportedModel.from_props({p.key: p.value for p in proto.metadata_props}, source=str(self.path))
        self.srlab_spec = self.exported.spec
        try:
            self.session = session_from_bytes(str(self.path), threads=threads)
        except SrlabError:
            raise
        except Exception as e:  # noqa: BLE001 - onnxruntime's load errors have no common type
            raise SrlabError(f"onnxruntime cannot load '{self.path}': {' '.join(str(e).split())[:200]}") from None

    @property
    def scale(self) -> int:
        return int(self.srlab_spec.scale)

    @property
    def size_multiple(self) -> int:
        return self.srlab_spec.info.size_multiple

    @property
    def pad_mode(self) -> str:
        return self.srlab_spec.info.pad_mode

    @property
    def receptive_radius(self) -> int:
        return self.srlab_spec.info.receptive_radius

    @property
    def model_name(self) -> str:
        return self.srlab_spec.name

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The only (H, W) a file exported with static shapes takes; None for dynamic shapes."""
        return self.exported.input_size

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise SrlabError(f"an ONNX srlab model takes (N, 3, H, W) RGB tensors, got shape {tuple(lr.shape)}")
        size = self.input_size
        if size is not None and tuple(lr.shape[-2:]) != size:
            raise SrlabError(
                f"'{self.path}' was exported with static shapes for {size[0]}x{size[1]} inputs, got "
                f"{lr.shape[-2]}x{lr.shape[-1]}: export it with --dynamic_shapes"
            )
        x = np.ascontiguousarray(lr.detach().to("cpu", torch.float32).numpy())
        (sr,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return torch.from_numpy(sr).to(lr.device)
