"""``srlab dip``: Deep Image Prior super-resolution (:mod:`srlab.unsupervised.dip`), no training data.

Each image gets its own network, fitted to it for ``--iterations`` steps (the paper's 2000 at x4, 4000
at x8), and the result is written atomically to ``OUT/<name>_x<S>.png``. An image that cannot be read
or written is reported in one line and the others are still processed (exit 1). The fit is slow on a
CPU (about 2 s of one core per step for a 64 x 64 LR image at x4, so over an hour for the paper's 2000
steps; a GPU is the place for it): ``--max_seconds`` bounds each image's fit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from srlab.cli.common import flag, images_of, non_negative_int, positive_float, positive_int, process_each, results_folder
from srlab.data.io import check_not_overwriting, read_rgb, write_image
from srlab.inference.upscale import resolve_device
from srlab.unsupervised.dip import DipSettings, DipStep, super_resolve

HELP = "Deep Image Prior: super-resolve images by fitting a random network to each (slow, no training data)"


def _dip_scale(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="LR image files or folders")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="folder for the results")
    flag(parser, "scale", type=_dip_scale, default=4, metavar="S", help="upscaling factor, an integer >= 2 (default 4)")
    flag(parser, "iterations", type=positive_int, metavar="N",
         help="Adam steps per image (default: the paper's, 2000 up to x4, 4000 from x8)")
    flag(parser, "max_seconds", type=positive_float, metavar="T",
         help="stop each image's fit after T seconds, keeping the output of the last step (default: no limit)")
    flag(parser, "seed", type=non_negative_int, default=0, help="seed of the weights and noise (default 0)")
    flag(parser, "device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")


def run(args: argparse.Namespace) -> int:
    settings = DipSettings(scale=args.scale, iterations=args.iterations, seed=args.seed, max_seconds=args.max_seconds)
    device = resolve_device(args.device)
    images = images_of(args.inputs)
    out_dir = results_folder(args.out)
    return process_each(
        images,
        lambda image: _super_resolve_file(image, out_dir / f"{image.stem}_x{args.scale}.png", images, settings, device),
    )


def _super_resolve_file(image: Path, destination: Path, images: list[Path], settings: DipSettings,
                        device: torch.device) -> None:
    check_not_overwriting(destination, images)
    lr = read_rgb(image).to(device)
    with tqdm(total=settings.total_iterations, desc=image.name, unit="step", leave=False, disable=None) as bar:
        def on_step(step: DipStep) -> None:
            bar.update()
            bar.set_postfix(lr_mse=f"{step.lr_loss:.2e}", refresh=False)

        result = super_resolve(lr, settings, on_step=on_step)
    write_image(destination, result.sr.cpu())
    h, w = lr.shape[-2:]
    print(f"{image} -> {destination} ({w}x{h} -> {w * settings.scale}x{h * settings.scale}, "
          f"{result.iterations} steps, LR MSE {result.lr_losses[-1]:.2e}, {result.seconds:.1f} s)")
