"""``srlab upscale``: super-resolve image files or folders to PNGs (:func:`srlab.inference.upscale_file`).

A file that cannot be read or written is reported and the others are still processed; the exit
status is 1 if any failed. Inputs are never overwritten. Content-adaptive models run through their
adaptive method (``--knob``, ``--adaptive``; see :mod:`srlab.adaptive`) and each line tells the MACs
the image took against the same weights' full path.

Real-ESRGAN's ``inference_realesrgan.py`` spellings work too: ``-i`` (an input, like the positional
ones), ``-n`` (``--model``), ``-s/--outscale`` (a final resize to any scale of the input; MATLAB
bicubic here where Real-ESRGAN uses OpenCV's Lanczos), ``--ext`` and ``--suffix`` (the output name is
``{stem}_{suffix}.{ext}``, ``{stem}.{ext}`` for an empty suffix) and ``--half``. Two defaults differ
from Real-ESRGAN's, to keep srlab's: the output is PNG unless ``--ext`` says otherwise, and the suffix
is ``x{scale}`` (the output scale), not ``out``; ``--half`` is opt-in where Real-ESRGAN's ``--fp32``
is opt-out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from srlab.adaptive import AdaptiveModel
from srlab.cli import export as export_cmd
from srlab.cli.common import (
    add_adaptive_flags, add_model_flags, add_path_flags, add_sampler_flags, adaptive_from_flags, flag, images_of,
    load_model_from_flags, model_on_path, positive_float, process_each, refuse_path_for_adaptive, results_folder,
    sampler_from_flags,
)
from srlab.data.io import PNG_COMPRESSION, check_not_overwriting
from srlab.errors import SrlabError
from srlab.inference.files import STREAM_ABOVE_PIXELS, upscale_file
from srlab.inference.precision import half_precision
from srlab.models.registry import spec_of

HELP = "super-resolve images (files or folders) to PNG files"

OUTPUT_FORMATS = ("png", "jpg", "webp", "auto")


def _suffix(text: str) -> str:
    """An argparse type: a file-name suffix holds no folder separators."""
    if "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(f"must be part of a file name, without '/' or '\\', got {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    parser.add_argument("-i", "--input", dest="more_inputs", action="append", default=[], metavar="INPUT",
                        help="an image file or folder, repeatable (Real-ESRGAN's spelling of INPUT)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="folder for the results")
    add_model_flags(parser)
    parser.add_argument("-n", dest="model", metavar="NAME", help="same as --model (Real-ESRGAN's -n)")
    parser.add_argument("-s", "--outscale", type=positive_float, metavar="S",
                        help="final output scale relative to the input (e.g. 3.5 with a x4 model): where it "
                             "differs from the model's scale the output is resized with MATLAB bicubic")
    flag(parser, "ext", default="png", choices=OUTPUT_FORMATS,
         help="output format; auto: the input's own (default png)")
    flag(parser, "suffix", type=_suffix, metavar="TEXT",
         help="output name {stem}_{TEXT}.{ext}; an empty TEXT writes {stem}.{ext} (default x{scale}, the output scale)")
    flag(parser, "half", action="store_true",
         help="half precision: float16 on CUDA, bfloat16 on CPU (refused on a CPU without bfloat16 units, "
              "and for models not verified in half precision)")
    add_adaptive_flags(parser)
    add_sampler_flags(parser)
    add_path_flags(parser)
    export_cmd.add_onnx_flag(parser)
    flag(parser, "self_ensemble", action="store_true",
         help="x8 geometric self-ensemble (4 rotations x flip, outputs averaged; 8x slower)")
    flag(parser, "stream", default="auto", choices=["auto", "always", "never"],
         help=f"read and write by strips, memory bounded by the strip (auto: outputs over "
              f"{STREAM_ABOVE_PIXELS // 2**20} Mpx); default auto")
    flag(parser, "png_compression", type=int, default=PNG_COMPRESSION, choices=range(10), metavar="0-9",
         help=f"zlib level of the PNGs (default {PNG_COMPRESSION}); 1 writes huge outputs several times faster")


def output_path(out_dir: Path, image: Path, *, suffix: str, ext: str) -> Path:
    """``{stem}_{suffix}.{ext}`` in out_dir (``{stem}.{ext}`` for an empty suffix); ext "auto" keeps the input's."""
    extension = image.suffix.lower().lstrip(".") if ext == "auto" else ext
    return out_dir / f"{image.stem}{'_' if suffix else ''}{suffix}.{extension}"


def run(args: argparse.Namespace) -> int:
    inputs = [*args.inputs, *args.more_inputs]
    if not inputs:
        raise SrlabError("no inputs: give image files or folders (srlab upscale IMAGE... -o OUT, or -i IMAGE)")
    if args.onnx and args.half:
        raise SrlabError("--half converts a PyTorch model: drop it with --onnx (export with --fp16 instead)")
    model, device = (export_cmd.onnx_model_from_flags(args), None) if args.onnx else load_model_from_flags(args)
    sampler_from_flags(args, model)
    adaptive = None if args.onnx else adaptive_from_flags(args, model)
    if adaptive is not None:
        if args.self_ensemble:
            raise SrlabError("adaptive inference and --self_ensemble do not combine: drop one (or use --adaptive off)")
        if args.half:
            raise SrlabError("adaptive inference and --half do not combine: drop one (or use --adaptive off)")
        refuse_path_for_adaptive(args)
        model = AdaptiveModel(adaptive, model)
    elif args.half:  # Real-ESRGAN's habit: half precision as asked, without --path auto's check
        model = half_precision(model, device)
    else:
        model = model_on_path(model, args)
    refusal = spec_of(model).info.tiling_refusal
    if refusal and (args.tile is not None or args.stream == "always"):  # once, rather than for every image
        raise SrlabError(f"--tile / --stream always: model {spec_of(model).name!r} with {refusal}")
    images = images_of(inputs)
    out_dir = results_folder(args.out)
    written: set[Path] = set()
    suffix = f"x{args.outscale or spec_of(model).scale:g}" if args.suffix is None else args.suffix

    def upscale(image: Path) -> None:
        destination = output_path(out_dir, image, suffix=suffix, ext=args.ext)
        if destination in written:
            raise SrlabError(f"another input already wrote '{destination}': rename one of the inputs")
        check_not_overwriting(destination, images)
        started = time.perf_counter()
        done = upscale_file(model, image, destination, tile=args.tile, tile_overlap=args.tile_overlap,
                            self_ensemble=args.self_ensemble, stream=args.stream,
                            png_compression=args.png_compression, outscale=args.outscale)
        written.add(destination)
        (w, h), (ow, oh) = done.size, done.out_size
        how = ", streamed" if done.streamed else ""
        print(f"{image} -> {destination} ({w}x{h} -> {ow}x{oh}{how}, {time.perf_counter() - started:.2f} s"
              f"{_spent(model)})")

    return process_each(images, upscale)


def _spent(model) -> str:
    """An adaptive model's MACs for the image just written (all its tiles or strips)."""
    if not isinstance(model, AdaptiveModel):
        return ""
    calls = model.take_calls()
    spent, full = sum(c.macs_spent for c in calls), sum(c.macs_full for c in calls)
    share = f" ({spent / full:.1%})" if full else ""
    return f", {spent / 1e9:.2f} of {full / 1e9:.2f} GMACs{share}"
