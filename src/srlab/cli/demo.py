"""``srlab demo``: upscale the bundled sample photo with the bundled weights and compare with bicubic."""

from __future__ import annotations

import argparse

from srlab.cli.common import flag
from srlab.data.io import SAMPLE_PHOTO
from srlab.demo import run_demo
from srlab.models.create import DEFAULT_MODEL

HELP = "upscale a bundled photo with srlab's bundled weights, compare with bicubic (offline, seconds)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "out", default="out/demo", metavar="DIR", help="output folder (default out/demo)")
    flag(parser, "scale", type=int, default=4, choices=[2, 3, 4], help="default 4")
    flag(parser, "model", default=DEFAULT_MODEL, metavar="NAME", help=f"a model with bundled weights (default {DEFAULT_MODEL})")


def run(args: argparse.Namespace) -> int:
    result = run_demo(args.out, scale=args.scale, model_name=args.model)
    print(f"{SAMPLE_PHOTO} x{result.scale} (PSNR/SSIM on Y, paper protocol):")
    for label, scores in (("bicubic", result.bicubic), (f"srlab {result.model}", result.sr)):
        print(f"  {label:<13}{scores['psnr_y']:.2f} dB  {scores['ssim_y']:.4f}")
    print(f"wrote {result.files[-1]} and the images beside it")
    return 0
