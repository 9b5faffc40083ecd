"""``srlab car``: train CAR (a learned x2/x4 downscaler with its upscaler), score it, downscale with it.

``train`` trains a resampler and an upscaler jointly (``--downscaler car``), or the same upscaler on
bicubic LR images (``--downscaler bicubic``, the baseline); ``eval`` scores the round trip HR ->
downscale -> upscale on folders of HR images (PSNR-Y); ``downscale`` writes the 8-bit CAR images of a
folder. See :mod:`srlab.train.car`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from srlab.cli.common import flag
from srlab.data.io import list_images, read_rgb, write_image
from srlab.errors import SrlabError
from srlab.train.car import DOWNSCALERS, CarTrainConfig, downscale_image, evaluate_round_trip, load_pair, train_car

HELP = "train CAR (learned downscaling + upscaling) or its bicubic baseline, score round trips, downscale"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser("train", help="train a pair (CAR jointly, or the upscaler on bicubic LR)")
    flag(train, "train_dir", required=True, metavar="DIR", help="HR training images")
    flag(train, "out", required=True, metavar="FILE", help="the checkpoint to write (.pt)")
    for field in dataclasses.fields(CarTrainConfig):
        kind = type(field.default)
        extra = {"choices": DOWNSCALERS} if field.name == "downscaler" else {}
        flag(train, field.name, type=kind, default=field.default, metavar=field.name.upper(),
             help=f"default {field.default}", **extra)
    evaluate = actions.add_parser("eval", help="PSNR-Y of HR -> downscale -> upscale on folders of HR images")
    evaluate.add_argument("checkpoint", help="a checkpoint from `srlab car train`")
    evaluate.add_argument("folders", nargs="+", help="folders of HR images")
    downscale = actions.add_parser("downscale", help="write the 8-bit CAR downscaled images of a folder")
    downscale.add_argument("checkpoint", help="a checkpoint from `srlab car train --downscaler car`")
    downscale.add_argument("input", help="folder of HR images")
    downscale.add_argument("output", help="folder for the PNG results (created)")


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _evaluate, "downscale": _downscale}[args.action](args)


def _train(args: argparse.Namespace) -> int:
    config = CarTrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CarTrainConfig)})
    train_car(config, args.train_dir, args.out, log=lambda line: print(line, flush=True))
    print(f"wrote {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    pair, config = load_pair(args.checkpoint)
    for folder in args.folders:
        scores = evaluate_round_trip(pair, folder, config.downscaler)
        print(f"{folder}: {config.downscaler} x{config.scale} round trip, mean PSNR-Y {scores['mean']:.3f} dB "
              f"({len(scores) - 1} images)")
    return 0


def _downscale(args: argparse.Namespace) -> int:
    pair, config = load_pair(args.checkpoint)
    if config.downscaler != "car":
        raise SrlabError(
            f"{args.checkpoint} was trained on bicubic LR images: downscale with a --downscaler car checkpoint"
        )
    paths = list_images(args.input)
    if not paths:
        raise SrlabError(f"no images in {args.input}: point it at a folder of HR images")
    Path(args.output).mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in paths:
        try:
            lr = downscale_image(pair, read_rgb(path), "car")
        except SrlabError as e:
            print(f"srlab: error: {e}", file=sys.stderr)
            failed += 1
            continue
        write_image(Path(args.output) / f"{path.stem}.png", lr)
    print(f"wrote {len(paths) - failed} images to {args.output}")
    return 1 if failed else 0
