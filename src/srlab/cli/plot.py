"""``srlab plot RUN_DIR``: a training run's curves (losses, learning rate, validation PSNR / SSIM against
the iteration) as SVG and PNG, read from its ``train.log`` (see :mod:`srlab.report.training_curves`)."""

from __future__ import annotations

import argparse

from srlab.cli.common import flag
from srlab.report.training_curves import plot_run

HELP = "plot a training run's curves (losses, lr, validation PSNR/SSIM vs iteration) from its train.log, as SVG and PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory of `srlab train` (its --out)")
    flag(parser, "out", metavar="DIR", help="folder for the plots (default RUN_DIR/plots)")
    flag(parser, "no_png", action="store_true", help="write the SVGs only")


def run(args: argparse.Namespace) -> int:
    for path in plot_run(args.run_dir, args.out, png=not args.no_png):
        print(path)
    return 0
