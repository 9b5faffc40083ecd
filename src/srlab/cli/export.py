"""``srlab export``: write a model's inference form as an ONNX file (:func:`srlab.export.onnx.export_onnx`).

The file takes ``lr`` (float32 N x 3 x H x W, RGB in [0, 1]) and returns ``sr``; its metadata holds the
scale, size multiple, pad mode and receptive radius, so ``srlab upscale --onnx FILE`` runs it through the
same padding, tiling and cropping as the PyTorch model. A model that cannot be exported is refused in
one line naming the operator or the difference from PyTorch (the table in the README lists them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab.cli.common import flag, parse_model_args, scale_factor
from srlab.cli.profile import lr_size
from srlab.errors import SrlabError
from srlab.fileio import check_not_overwriting
from srlab.models.create import DEFAULT_MODEL, model_with_weights

HELP = "export a model to ONNX (for onnxruntime and other runtimes; see `srlab upscale --onnx`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "model", metavar="NAME", help=f"registered model name (default {DEFAULT_MODEL})")
    flag(parser, "scale", type=scale_factor, metavar="S", help="upscaling factor (read from the checkpoint if it records one)")
    flag(parser, "checkpoint", metavar="FILE", help="weights: .safetensors from `srlab train`, or an official .pth")
    flag(parser, "model_arg", action="append", default=[], metavar="KEY=VALUE",
         help="a hyper-parameter of the model, repeatable")
    flag(parser, "random_init", action="store_true",
         help="export a freshly initialised network when no weights are given (to try a deployment pipeline)")
    flag(parser, "format", default="onnx", choices=["onnx"], help="file format (default onnx)")
    flag(parser, "dynamic_shapes", action=argparse.BooleanOptionalAction, default=True,
         help="the graph takes any batch size and image size (default); --no-dynamic_shapes fixes them to --size")
    flag(parser, "size", type=lr_size, default=(64, 64), metavar="HxW",
         help="the example input traced and checked (default 64x64); with --no-dynamic_shapes the only input size")
    flag(parser, "fp16", action="store_true", help="compute in float16 (inputs and outputs stay float32)")
    parser.add_argument("-o", "--out", required=True, metavar="FILE.onnx", help="the file to write")


def run(args: argparse.Namespace) -> int:
    from srlab.export.onnx import export_onnx

    out = Path(args.out)
    if out.is_dir():
        raise SrlabError(f"-o '{out}' is a folder: give a file name, e.g. {out / 'model.onnx'}")
    if args.checkpoint is not None:
        check_not_overwriting(out, [args.checkpoint])
    model, weights = model_with_weights(
        args.model, scale=args.scale, checkpoint=args.checkpoint, args=parse_model_args(args.model_arg),
        fresh=args.random_init, checkpoint_flag="--checkpoint FILE (or --random_init)",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out, dynamic_shapes=args.dynamic_shapes, fp16=args.fp16, example_size=args.size)
    print(f"{out} (weights: {weights})")
    return 0


# `srlab upscale --onnx FILE`: the flags that choose a PyTorch model have no meaning there.
_PYTORCH_ONLY_FLAGS = ("model", "checkpoint", "model_arg", "adaptive", "knob")


def add_onnx_flag(parser: argparse.ArgumentParser) -> None:
    flag(parser, "onnx", metavar="FILE.onnx",
         help="run a file from `srlab export` with onnxruntime (CPU) instead of a PyTorch model; scale, size "
              "multiple and pad mode come from the file")


def onnx_model_from_flags(args: argparse.Namespace):
    """The :class:`~srlab.export.runtime.OnnxModel` that ``--onnx`` names, after checking the other flags."""
    from srlab.export.runtime import OnnxModel

    given = [f"--{name}" for name in _PYTORCH_ONLY_FLAGS if getattr(args, name, None) not in (None, [])]
    if given:
        raise SrlabError(f"--onnx runs the exported file as it is: drop {', '.join(given)}")
    if getattr(args, "device", "auto") == "cuda":
        raise SrlabError("--onnx runs on the CPU (onnxruntime's CPU provider): drop --device cuda")
    model = OnnxModel(args.onnx)
    if args.scale is not None and args.scale != model.scale:
        raise SrlabError(f"'{args.onnx}' upscales x{model.scale}, not x{args.scale}: drop --scale or export at x{args.scale}")
    return model
