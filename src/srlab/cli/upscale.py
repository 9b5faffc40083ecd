"""``srlab upscale``: super-resolve image files or folders to PNGs (:func:`srlab.inference.upscale_file`).

A file that cannot be read or written is reported and the others are still processed; the exit
status is 1 if any failed. Inputs are never overwritten. Content-adaptive models run through their
adaptive method (``--knob``, ``--adaptive``; see :mod:`srlab.adaptive`) and each line tells the MACs
the image took against the same weights' full path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from srlab.adaptive import AdaptiveModel
from srlab.cli import export as export_cmd
from srlab.cli.common import (
    add_adaptive_flags, add_model_flags, add_path_flags, adaptive_from_flags, flag, load_model_from_flags, model_on_path,
)
from srlab.data.io import PNG_COMPRESSION, check_not_overwriting, list_images
from srlab.errors import SrlabError
from srlab.inference.files import STREAM_ABOVE_PIXELS, upscale_file
from srlab.models.registry import spec_of

HELP = "super-resolve images (files or folders) to PNG files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="folder for the results")
    add_model_flags(parser)
    add_adaptive_flags(parser)
    add_path_flags(parser)
    export_cmd.add_onnx_flag(parser)
    flag(parser, "self_ensemble", action="store_true",
         help="x8 geometric self-ensemble (4 rotations x flip, outputs averaged; 8x slower)")
    flag(parser, "stream", default="auto", choices=["auto", "always", "never"],
         help=f"read and write by strips, memory bounded by the strip (auto: outputs over "
              f"{STREAM_ABOVE_PIXELS // 2**20} Mpx); default auto")
    flag(parser, "png_compression", type=int, default=PNG_COMPRESSION, choices=range(10), metavar="0-9",
         help=f"zlib level of the PNGs (default {PNG_COMPRESSION}); 1 writes huge outputs several times faster")


def output_path(out_dir: Path, image: Path, scale: int) -> Path:
    return out_dir / f"{image.stem}_x{scale}.png"


def run(args: argparse.Namespace) -> int:
    model = export_cmd.onnx_model_from_flags(args) if args.onnx else load_model_from_flags(args)[0]
    scale = spec_of(model).scale
    adaptive = None if args.onnx else adaptive_from_flags(args, model)
    if adaptive is not None:
        if args.self_ensemble:
            raise SrlabError("adaptive inference and --self_ensemble do not combine: drop one (or use --adaptive off)")
        model = AdaptiveModel(adaptive, model)
    else:
        model = model_on_path(model, args)
    images: list[Path] = []
    for item in args.inputs:
        images.extend(list_images(item))
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SrlabError(f"-o '{out_dir}' is a file: give a folder for the results")
    out_dir.mkdir(parents=True, exist_ok=True)

    failures = _upscale_all(model, images, out_dir, scale, args)
    if failures:
        print(f"srlab: {failures} of {len(images)} images failed", file=sys.stderr)
        return 1
    return 0


def _spent(model) -> str:
    """An adaptive model's MACs for the image just written (all its tiles or strips)."""
    if not isinstance(model, AdaptiveModel):
        return ""
    calls = model.take_calls()
    spent, full = sum(c.macs_spent for c in calls), sum(c.macs_full for c in calls)
    share = f" ({spent / full:.1%})" if full else ""
    return f", {spent / 1e9:.2f} of {full / 1e9:.2f} GMACs{share}"


def _upscale_all(model, images: list[Path], out_dir: Path, scale: int, args: argparse.Namespace) -> int:
    """Upscale every image into out_dir, reporting each failure; returns the number that failed."""
    failures, written = 0, set()
    for image in images:
        destination = output_path(out_dir, image, scale)
        try:
            if destination in written:
                raise SrlabError(f"another input already wrote '{destination}': rename one of the inputs")
            check_not_overwriting(destination, images)
            started = time.perf_counter()
            done = upscale_file(model, image, destination, tile=args.tile, tile_overlap=args.tile_overlap,
                                self_ensemble=args.self_ensemble, stream=args.stream,
                                png_compression=args.png_compression)
            written.add(destination)
            (w, h), (ow, oh) = done.size, done.out_size
            how = ", streamed" if done.streamed else ""
            print(f"{image} -> {destination} ({w}x{h} -> {ow}x{oh}{how}, {time.perf_counter() - started:.2f} s"
                  f"{_spent(model)})")
        except SrlabError as e:
            failures += 1
            print(f"srlab: error: {e}", file=sys.stderr)
    return failures
