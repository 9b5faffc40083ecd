"""What an exported model file says about itself: the ONNX ``metadata_props`` srlab writes and reads.

Every key starts with ``srlab.``; values are strings (ONNX stores nothing else). They carry what the
inference path needs to run the file as it runs the PyTorch model (scale, size multiple, pad mode,
receptive radius) and what a reader needs to know what the file computes (model, hyper-parameters,
form, precision, the input convention). A file is self-contained: it runs without the model being
registered in the srlab that reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from srlab.errors import SrlabError
from srlab.models.registry import ModelInfo, ModelSpec

PREFIX = "srlab."
FORMAT_VERSION = "1"
INPUT_NAME, OUTPUT_NAME = "lr", "sr"
INPUT_CONVENTION = "lr: float32 N x 3 x H x W, RGB in [0, 1]"
OUTPUT_CONVENTION = "sr: float32 N x 3 x (scale*H) x (scale*W), RGB in [0, 1], not clamped"


@dataclass(frozen=True)
class ExportedModel:
    """The metadata of an exported file."""

    spec: ModelSpec
    # What the graph computes: "model" (the model's forward, fused where it has a deploy form), or for a
    # content-adaptive model "full static path of adaptive method <name>" (every unit on its heaviest route).
    graph: str
    precision: str  # "fp32" or "fp16" (the computation; inputs and outputs are float32 either way)
    # None: any H x W (dynamic shapes); else the only (H, W) the graph takes.
    input_size: tuple[int, int] | None
    exporter: str
    opset: int

    def props(self) -> dict[str, str]:
        spec, info = self.spec, self.spec.info
        props = {
            "format_version": FORMAT_VERSION,
            "model": spec.name,
            "scale": str(spec.scale),
            "args": json.dumps(dict(spec.args), sort_keys=True, default=str),
            "form": spec.form,
            "graph": self.graph,
            "size_multiple": str(info.size_multiple),
            "pad_mode": info.pad_mode,
            "receptive_radius": str(info.receptive_radius),
            "half_precision_safe": str(info.half_precision_safe).lower(),
            "tiling_refusal": info.tiling_refusal,
            "precision": self.precision,
            "input": INPUT_CONVENTION,
            "output": OUTPUT_CONVENTION,
            "dynamic_shapes": "false" if self.input_size else "true",
            "exporter": self.exporter,
            "opset": str(self.opset),
        }
        if self.input_size is not None:
            props["input_size"] = f"{self.input_size[0]}x{self.input_size[1]}"
        return {PREFIX + key: value for key, value in props.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], *, source: str) -> ExportedModel:
        """Read back :meth:`props`; ``source`` (the file) names what is wrong in the error."""
        own = {key.removeprefix(PREFIX): value for key, value in props.items() if key.startswith(PREFIX)}
        if "model" not in own:
            raise SrlabError(
                f"'{source}' has no srlab metadata (srlab.model, srlab.scale, ...): export it with `srlab export`"
            )
        try:
            scale = int(own["scale"])
            info = ModelInfo(
                paper="",
                scales=(scale,),
                size_multiple=int(own["size_multiple"]),
                pad_mode=own["pad_mode"],
                receptive_radius=int(own["receptive_radius"]),
                half_precision_safe=own.get("half_precision_safe", "true") == "true",
                tiling_refusal=own.get("tiling_refusal", ""),
            )
            spec = ModelSpec(
                name=own["model"], scale=scale, args=json.loads(own.get("args", "{}")), info=info,
                form=own.get("form", "train"),
            )
            size = own.get("input_size")
            input_size = tuple(int(v) for v in size.split("x")) if size else None
            return cls(
                spec=spec, graph=own.get("graph", "model"), precision=own.get("precision", "fp32"),
                input_size=input_size, exporter=own.get("exporter", ""), opset=int(own.get("opset", "0")),
            )
        except (KeyError, ValueError) as e:
            raise SrlabError(f"'{source}' has broken srlab metadata ({type(e).__name__}: {e}): export it again") from None

