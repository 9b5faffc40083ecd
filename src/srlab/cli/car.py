"""``srlab car``: score a CAR run of ``srlab train`` (a learned x2/x4 downscaler with its upscaler), downscale with it.

Training is ``srlab train --config configs/car_x4.yaml`` (``step: car``: the resampler and the model
jointly; the same model with ``step: supervised`` is the bicubic baseline). ``eval`` scores a run's round
trip HR -> downscale -> upscale on folders of HR images (PSNR-Y); ``downscale`` writes the 8-bit CAR
images of a folder. See :mod:`srlab.train.car`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srlab.data.io import list_images, read_rgb, write_image
from srlab.errors import SrlabError
from srlab.train.car import WHICH, downscale_image, evaluate_round_trip, load_car_run

HELP = "score a CAR run of `srlab train` (learned downscaling + upscaling) on round trips, downscale with it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    evaluate = actions.add_parser("eval", help="PSNR-Y of HR -> downscale -> upscale on folders of HR images")
    evaluate.add_argument("run_dir", help="a run of `srlab train` with step car (or its supervised baseline)")
    evaluate.add_argument("folders", nargs="+", help="folders of HR images")
    downscale = actions.add_parser("downscale", help="write the 8-bit CAR downscaled images of a folder")
    downscale.add_argument("run_dir", help="a run of `srlab train` with step car")
    downscale.add_argument("input", help="folder of HR images")
    downscale.add_argument("output", help="folder for the PNG results (created)")
    for action in (evaluate, downscale):
        action.add_argument("--weights", choices=tuple(WHICH), default="best",
                            help="the networks of the best (default) or the last validation")


def run(args: argparse.Namespace) -> int:
    return {"eval": _evaluate, "downscale": _downscale}[args.action](args)


def _evaluate(args: argparse.Namespace) -> int:
    car = load_car_run(args.run_dir, args.weights)
    for folder in args.folders:
        scores = evaluate_round_trip(car, folder)
        print(f"{folder}: {car.downscaler} x{car.scale} round trip, mean PSNR-Y {scores['mean']:.3f} dB "
              f"({len(scores) - 1} images)")
    return 0


def _downscale(args: argparse.Namespace) -> int:
    car = load_car_run(args.run_dir, args.weights)
    if car.resampler is None:
        raise SrlabError(f"{args.run_dir} was trained on bicubic LR images (step supervised): downscale with "
                         "a run of step car")
    paths = list_images(args.input)
    if not paths:
        raise SrlabError(f"no images in {args.input}: point it at a folder of HR images")
    Path(args.output).mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in paths:
        try:
            lr = downscale_image(car, read_rgb(path))
        except SrlabError as e:
            print(f"srlab: error: {e}", file=sys.stderr)
            failed += 1
            continue
        write_image(Path(args.output) / f"{path.stem}.png", lr)
    print(f"wrote {len(paths) - failed} images to {args.output}")
    return 1 if failed else 0
