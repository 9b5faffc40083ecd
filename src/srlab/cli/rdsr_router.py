"""``srlab rdsr-router``: train an ``rdsr_adaptive`` model's router on calibration images."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from srlab.adaptive.rdsr import ROUTER_PATCH, calibrate_feature_router, calibrate_router, with_router
from srlab.cli.common import flag, open_fraction, positive_int, readable_pairs
from srlab.data.datasets import discover_pairs
from srlab.errors import SrlabError
from srlab.fileio import check_not_overwriting
from srlab.models.create import create_model
from srlab.models.weights import save_weights

HELP = "train the router of an rdsr_adaptive model (what each exit would lose, predicted per LR patch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "checkpoint", required=True, metavar="FILE", help="rdsr_adaptive weights (.safetensors from srlab train)")
    flag(parser, "data", required=True, metavar="DIR",
         help="calibration images, never the test sets: HR only, HR + LR_bicubic/X<S>, or a DIV2K-style _HR folder")
    flag(parser, "out", required=True, metavar="FILE", help="FILE.safetensors: the weights with the trained router")
    flag(parser, "stride", type=positive_int, metavar="T",
         help="between 32x32 LR patches (default 16; 32 with --feature_router)")
    flag(parser, "downscales", type=open_fraction, nargs="*", default=[], metavar="F",
         help="also learn from each image downscaled by these factors, its content denser per pixel (default: the "
              "images as they are, the bundled routers' recipe)")
    flag(parser, "steps", type=positive_int, default=16000, metavar="N",
         help="training steps (default 16000; the bundled routers' count: 4000 spent more MACs at the same loss)")
    flag(parser, "seed", type=int, default=0, metavar="N",
         help="default 0 (the training is deterministic for a seed and a thread count)")
    flag(parser, "router_contrast", action="store_true",
         help="train a router that sees each patch over its contrast (model hyper-parameter router_contrast) "
              "in place of the checkpoint's; the network's other weights as they are")
    flag(parser, "bicubic_route", action="store_true",
         help="add bicubic upscaling as the cheapest route (model hyper-parameter bicubic_route; the router "
              "predicts one more difference); the network's other weights as they are")
    flag(parser, "feature_router", action="store_true",
         help="train the cascade's second router (model hyper-parameter feature_router: it sees each block's LR "
              "pixels and the first block's output, on each image and three flips of it; blocks at --stride, "
              "default 32 here) and keep the checkpoint's first router (retrained only with "
              "--router_contrast or --bicubic_route)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise SrlabError(f"--out '{out}' must end in .safetensors (the weights with their router)")
    check_not_overwriting(out, [args.checkpoint])
    first_router = args.router_contrast or args.bicubic_route or not args.feature_router
    if args.router_contrast or args.bicubic_route or args.feature_router:
        model = with_router(args.checkpoint, contrast=args.router_contrast, bicubic_route=args.bicubic_route,
                            feature_router=args.feature_router)
    else:
        model = create_model(checkpoint=args.checkpoint)
    folder = discover_pairs(args.data, model.scale)
    failures: dict[str, str] = {}

    calibrations = [("router", calibrate_router, 16)] if first_router else []
    calibrations += [("feature router", calibrate_feature_router, 32)] if args.feature_router else []
    try:
        for name, calibrate, stride in calibrations:
            start = time.perf_counter()
            pairs = readable_pairs(folder, model.scale, failures, min_lr_side=ROUTER_PATCH,
                                   downscales=args.downscales)
            loss = calibrate(model, pairs, stride=args.stride or stride, steps=args.steps, seed=args.seed)
            print(f"{name} trained on {len(folder.pairs) - len(failures)} images ({args.steps} steps, final loss "
                  f"{loss:.3f}) in {time.perf_counter() - start:.0f} s")
    finally:
        for name, problem in failures.items():
            print(f"srlab: error: {name}: {problem}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(out, model)
    print(f"wrote {out}")
    return 1 if failures else 0
