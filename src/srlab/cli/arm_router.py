"""``srlab arm-router``: train the learned router of an ARM supernet (adaptive method ``arm_learned``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from srlab.adaptive.arm_learned import (
    CALIBRATION_DOWNSCALES, ROUTER_SUFFIX, ROUTER_WIDTH, calibrate_arm_router, router_file, save_arm_router,
)
from srlab.adaptive.rdsr import ROUTER_PATCH
from srlab.cli.common import flag, open_fraction, parse_model_args, positive_int, readable_pairs
from srlab.data.datasets import discover_pairs
from srlab.errors import SrlabError
from srlab.fileio import check_not_overwriting
from srlab.models.create import create_model

HELP = "train a learned router for an ARM supernet (the arm_learned method: what each subnet would lose, per LR patch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "model", metavar="NAME", help="the supernet, e.g. arm_carn (read from an srlab checkpoint if it records one)")
    flag(parser, "checkpoint", required=True, metavar="FILE", help="its weights: a released .pth or srlab's .safetensors")
    flag(parser, "data", required=True, metavar="DIR",
         help="calibration images, never the test sets: HR only, HR + LR_bicubic/X<S>, or a DIV2K-style _HR folder")
    flag(parser, "scale", type=int, metavar="S", help="upscaling factor (read from the checkpoint if it records one)")
    flag(parser, "model_arg", action="append", default=[], metavar="KEY=VALUE", help="a hyper-parameter, repeatable")
    flag(parser, "out", metavar="FILE",
         help=f"the router file (default: <checkpoint stem>{ROUTER_SUFFIX} beside the weights, where arm_learned reads it)")
    flag(parser, "stride", type=positive_int, default=16, metavar="T", help="between 32x32 LR patches (default 16)")
    flag(parser, "downscales", type=open_fraction, nargs="*", default=list(CALIBRATION_DOWNSCALES), metavar="F",
         help="also learn from each image downscaled by these factors, its content denser per pixel (default "
              f"{' '.join(map(str, CALIBRATION_DOWNSCALES))}; --downscales alone: the images as they are)")
    flag(parser, "steps", type=positive_int, default=16000, metavar="N",
         help="training steps (default 16000; 4000 spent ~0.05 more of ARM-CARN's MACs at the same loss)")
    flag(parser, "router_width", type=positive_int, default=ROUTER_WIDTH, metavar="C",
         help=f"channels of the router's first convolution (default {ROUTER_WIDTH})")
    flag(parser, "seed", type=int, default=0, metavar="N", help="default 0 (deterministic for a seed and a thread count)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else router_file(Path(args.checkpoint))
    if not out.name.endswith(ROUTER_SUFFIX):
        raise SrlabError(f"--out '{out}' must end in {ROUTER_SUFFIX} (arm_learned reads <weights stem>{ROUTER_SUFFIX})")
    check_not_overwriting(out, [args.checkpoint])
    model = create_model(args.model, scale=args.scale, checkpoint=args.checkpoint, args=parse_model_args(args.model_arg))
    folder = discover_pairs(args.data, model.scale)
    failures: dict[str, str] = {}

    start = time.perf_counter()
    try:
        pairs = readable_pairs(folder, model.scale, failures, min_lr_side=ROUTER_PATCH,
                               downscales=args.downscales)
        router, loss = calibrate_arm_router(model, pairs, stride=args.stride, steps=args.steps, seed=args.seed,
                                             width=args.router_width)
    finally:
        for name, problem in failures.items():
            print(f"srlab: error: {name}: {problem}", file=sys.stderr)
    print(f"router trained on {len(folder.pairs) - len(failures)} images ({args.steps} steps, final loss {loss:.3f}) "
          f"in {time.perf_counter() - start:.0f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_arm_router(out, router, model)
    print(f"wrote {out}")
    return 1 if failures else 0
