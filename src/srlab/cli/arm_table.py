"""``srlab arm-table``: build an ARM supernet's lookup table from a validation folder."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from srlab.cli.common import flag, parse_model_args, positive_int
from srlab.data.datasets import discover_pairs, load_pair
from srlab.errors import SrlabError
from srlab.fileio import check_not_overwriting
from srlab.inference.upscale import resolve_device
from srlab.models.arm_table import BINS, PATCH, STEP, build_arm_table, write_carrying_checkpoint, write_table_json
from srlab.models.create import create_model

HELP = "build the edge-score -> PSNR lookup table of an ARM supernet (arm_fsrcnn, arm_carn, arm_srresnet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "model", metavar="NAME", help="the supernet (read from an srlab checkpoint if it records one)")
    flag(parser, "checkpoint", required=True, metavar="FILE", help="its weights: .safetensors from srlab train, or a .pth")
    flag(parser, "data", required=True, metavar="DIR",
         help="validation images: HR only, HR + LR_bicubic/X<S>, or a DIV2K-style _HR folder")
    flag(parser, "scale", type=int, metavar="S", help="upscaling factor (read from the checkpoint if it records one)")
    flag(parser, "model_arg", action="append", default=[], metavar="KEY=VALUE", help="a hyper-parameter, repeatable")
    flag(parser, "out", required=True, metavar="FILE",
         help="FILE.hmap.json (the released format, found beside weights of the same stem) or FILE.safetensors "
              "(the weights carrying their table, what the arm method reads)")
    flag(parser, "patch", type=positive_int, default=PATCH, metavar="P", help=f"LR patch side (default {PATCH})")
    flag(parser, "step", type=positive_int, default=STEP, metavar="T", help=f"stride between patches (default {STEP})")
    flag(parser, "bins", type=positive_int, default=BINS, metavar="B", help=f"edge-score bins (default {BINS})")
    flag(parser, "device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    carrying = out.suffix == ".safetensors"
    if not (carrying or out.name.endswith(".hmap.json")):
        raise SrlabError(f"--out '{out}' must end in .hmap.json (the table) or .safetensors (weights carrying it)")
    check_not_overwriting(out, [args.checkpoint])
    model = create_model(args.model, scale=args.scale, checkpoint=args.checkpoint, args=parse_model_args(args.model_arg))
    folder = discover_pairs(args.data, model.scale)
    pairs = [(pair.name, functools.partial(load_pair, pair, model.scale)) for pair in folder.pairs]
    build = build_arm_table(
        model.to(resolve_device(args.device)), pairs, bins=args.bins, patch=args.patch, step=args.step
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if carrying:
        write_carrying_checkpoint(out, model.cpu(), build.document, like=args.checkpoint)
    else:
        write_table_json(out, build.document)
    for name, problem in build.failures:
        print(f"srlab: error: {name}: {problem}", file=sys.stderr)
    costs = ", ".join(f"{c / 1e6:.1f}" for c in build.document["cost_list"])
    print(f"ARM table of {build.patches} patches from {build.images} images; MFLOPs per {args.patch}x{args.patch} patch: {costs}")
    print(f"wrote {out}")
    return 1 if build.failures else 0
