"""``srlab upscale``: super-resolve image files or folders to PNGs.

A file that cannot be read or written is reported and the others are still processed; the exit
status is 1 if any failed. Inputs are never overwritten.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from srlab.cli.common import add_model_flags, flag, load_model_from_flags
from srlab.data.io import check_not_overwriting, list_images, read_image, write_image
from srlab.data.resize import bicubic_upscale
from srlab.errors import SrlabError
from srlab.inference.upscale import upscale_tensor
from srlab.models.registry import spec_of

HELP = "super-resolve images (files or folders) to PNG files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="folder for the results")
    add_model_flags(parser)
    flag(parser, "self_ensemble", action="store_true",
         help="x8 geometric self-ensemble (4 rotations x flip, outputs averaged; 8x slower)")


def output_path(out_dir: Path, image: Path, scale: int) -> Path:
    return out_dir / f"{image.stem}_x{scale}.png"


def upscale_file(model: torch.nn.Module, image: Path, destination: Path, *, tile: int | None,
                 tile_overlap: int | None, self_ensemble: bool = False) -> tuple[tuple[int, int], tuple[int, int]]:
    """Upscale one file; alpha is upscaled with bicubic interpolation and kept, as are grey and 16 bits."""
    scale = spec_of(model).scale
    loaded = read_image(image)
    # self_ensemble is passed only when asked for: callers (and tests) that stand in for upscale_tensor
    # with the older (model, lr, *, tile, tile_overlap) signature keep working.
    extra = {"self_ensemble": True} if self_ensemble else {}
    sr = upscale_tensor(model, loaded.rgb, tile=tile, tile_overlap=tile_overlap, **extra).float().cpu()
    alpha = None
    if loaded.alpha is not None:
        alpha = bicubic_upscale(loaded.alpha, scale).clamp(0, 1)
    write_image(destination, sr.clamp(0, 1), alpha=alpha, bit_depth=loaded.bit_depth, grayscale=loaded.grayscale)
    return tuple(loaded.rgb.shape[-2:][::-1]), tuple(sr.shape[-2:][::-1])


def run(args: argparse.Namespace) -> int:
    model, _ = load_model_from_flags(args)
    scale = spec_of(model).scale
    images: list[Path] = []
    for item in args.inputs:
        images.extend(list_images(item))
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SrlabError(f"-o '{out_dir}' is a file: give a folder for the results")
    out_dir.mkdir(parents=True, exist_ok=True)

    failures, written = 0, set()
    for image in images:
        destination = output_path(out_dir, image, scale)
        try:
            if destination in written:
                raise SrlabError(f"another input already wrote '{destination}': rename one of the inputs")
            check_not_overwriting(destination, images)
            started = time.perf_counter()
            (w, h), (ow, oh) = upscale_file(model, image, destination, tile=args.tile, tile_overlap=args.tile_overlap,
                                            self_ensemble=args.self_ensemble)
            written.add(destination)
            print(f"{image} -> {destination} ({w}x{h} -> {ow}x{oh}, {time.perf_counter() - started:.2f} s)")
        except SrlabError as e:
            failures += 1
            print(f"srlab: error: {e}", file=sys.stderr)
        except RuntimeError as e:  # torch.OutOfMemoryError is one; so is the CPU allocator's failure
            if "memory" not in str(e).lower():
                raise
            failures += 1
            print(f"srlab: error: '{image}' does not fit in memory: pass --tile 256 (or smaller)", file=sys.stderr)
    if failures:
        print(f"srlab: {failures} of {len(images)} images failed", file=sys.stderr)
        return 1
    return 0
