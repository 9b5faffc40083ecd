"""``srlab demo``: train a small model for about a minute on bundled sample photos and upscale one."""

from __future__ import annotations

import argparse

from srlab.cli.common import flag
from srlab.demo import TEST_PHOTO, run_demo

HELP = "train a small rdsr for about a minute on sample photos, upscale one, and compare with bicubic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "out", default="out/demo", metavar="DIR", help="output folder (default out/demo)")
    flag(parser, "scale", type=int, default=2, choices=[2, 3, 4], help="default 2")
    flag(parser, "epochs", type=int, default=4, help="training epochs of 105 iterations (default 4, well under a minute on 2 idle cores)")
    flag(parser, "quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    result = run_demo(args.out, scale=args.scale, epochs=args.epochs, progress=not args.quiet)
    print(f"{TEST_PHOTO} x{args.scale} (PSNR/SSIM on Y, paper protocol):")
    for label, scores in (("bicubic", result.bicubic), ("srlab rdsr_s", result.model)):
        print(f"  {label:<13}{scores['psnr_y']:.2f} dB  {scores['ssim_y']:.4f}")
    print(f"wrote {result.out_dir}/comparison.png and the images beside it")
    return 0
