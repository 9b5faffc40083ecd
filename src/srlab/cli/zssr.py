"""``srlab zssr``: zero-shot super-resolution, a network trained on each image itself
(:mod:`srlab.unsupervised.zssr`).

Each IMAGE is written to ``OUT/<name>_x<S>.png``. An image that cannot be read or written is reported
on one line and the others are still processed (exit status 1). Training runs up to 3000 iterations per
scale step (minutes on a GPU, an hour or more on a laptop CPU): ``--max_seconds`` bounds it and the image
is still written, ``--iterations`` caps the count.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab.cli.common import flag, images_of, non_negative_int, positive_float, positive_int, process_each, results_folder
from srlab.data.io import check_not_overwriting, read_rgb, write_image
from srlab.errors import SrlabError
from srlab.inference.upscale import resolve_device
from srlab.unsupervised.zssr import CONFIGS, config_for, load_kernel, zssr

HELP = "zero-shot super-resolution (ZSSR): train a small network on each image itself, then upscale it"


def _scale(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 1 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 1 (e.g. 2, 4 or 2.5), got {text!r}")
    return int(value) if value.is_integer() else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="folder for the results")
    flag(parser, "scale", type=_scale, required=True, metavar="S", help="upscaling factor (any real > 1)")
    flag(parser, "config", default="default", choices=CONFIGS,
         help="ZSSR's configs: default (one jump, bicubic), gradual (six non-uniform steps, ~6x slower, "
              "better), kernel (with --kernel: no rotations or flips), real (kernel, mild noise, "
              "no back-projection); default: default")
    flag(parser, "kernel", metavar="FILE",
         help="the degradation's blur kernel (e.g. KernelGAN's): .npy, .mat with 'Kernel' (needs scipy) or a "
              "text matrix; default bicubic")
    flag(parser, "max_seconds", type=positive_float, metavar="T",
         help="stop training after T seconds (split among the scale steps) and write the image anyway")
    flag(parser, "iterations", type=positive_int, metavar="N", help="at most N iterations per step (default 3000)")
    flag(parser, "seed", type=non_negative_int, default=0, help="random seed (default 0)")
    flag(parser, "device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    flag(parser, "quiet", action="store_true", help="no progress bar")


def output_path(out_dir: Path, image: Path, scale: int | float) -> Path:
    return out_dir / f"{image.stem}_x{scale:g}.png"


def run(args: argparse.Namespace) -> int:
    if args.config == "kernel" and args.kernel is None:
        raise SrlabError("--config kernel needs --kernel FILE (or use --config default for bicubic)")
    if args.config == "gradual" and args.kernel is not None:
        raise SrlabError("--config gradual has several scale steps and --kernel is one kernel: use --config kernel")
    kernel = None if args.kernel is None else load_kernel(args.kernel)
    config = config_for(args.config, args.scale)
    if args.iterations is not None:
        config.max_iters = args.iterations
    device = resolve_device(args.device)
    images = images_of(args.inputs)
    out_dir = results_folder(args.out)
    written: set[Path] = set()

    def super_resolve(image: Path) -> None:
        destination = output_path(out_dir, image, args.scale)
        if destination in written:
            raise SrlabError(f"another input already wrote '{destination}': rename one of the inputs")
        check_not_overwriting(destination, images)
        result = zssr(read_rgb(image), config, kernel=kernel, seed=args.seed, device=device,
                      max_seconds=args.max_seconds, progress=not args.quiet)
        write_image(destination, result.image)
        written.add(destination)
        steps = ", ".join(f"{n} iterations ({why})" for n, why in zip(result.iterations, result.stopped_by))
        print(f"{image} -> {destination} ({steps}, {result.seconds:.1f} s)")

    return process_each(images, super_resolve)
