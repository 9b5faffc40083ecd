"""``srlab profile``: parameters, MACs, activations, latency and peak memory of one model; for a
content-adaptive model with ``--image``, also the MACs it spends on that image and its routing."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from srlab.cli.common import (
    add_adaptive_flags, add_path_flags, adaptive_from_flags, flag, non_negative_int, parse_model_args, positive_int,
)
from srlab.data.io import read_rgb
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.upscale import resolve_device
from srlab.models.create import DEFAULT_MODEL, model_with_weights
from srlab.models.registry import spec_of
from srlab.profile.adaptive import profile_adaptive
from srlab.profile.report import profile_model

HELP = "profile a model: parameters, MACs (720p output and 256x256 LR), #Acts, latency, peak memory"


def lr_size(text: str) -> tuple[int, int]:
    """argparse type for ``HxW`` (e.g. 180x320): a bad value is a one-line flag error."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"must be HEIGHTxWIDTH with positive integers (e.g. 180x320), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "model", metavar="NAME", help=f"registered model name (default {DEFAULT_MODEL})")
    flag(parser, "scale", type=int, metavar="S", help="upscaling factor (read from the checkpoint if it records one)")
    flag(parser, "checkpoint", metavar="FILE",
         help="weights (default: the bundled ones if srlab has them, else a random initialisation)")
    flag(parser, "model_arg", action="append", default=[], metavar="KEY=VALUE",
         help="a hyper-parameter of the model, repeatable")
    flag(parser, "device", default="cpu", choices=["auto", "cpu", "cuda"], help="where latency and memory are measured (default: cpu)")
    flag(parser, "threads", type=positive_int, metavar="N", help="CPU threads for torch (default: torch's setting)")
    flag(parser, "repeats", type=positive_int, default=20, metavar="R", help="timed runs (default 20)")
    flag(parser, "warmup", type=non_negative_int, default=3, metavar="W", help="untimed runs first (default 3)")
    flag(parser, "lr_size", type=lr_size, metavar="HxW",
         help="LR input for latency and memory (default: the one whose output is 1280x720, e.g. 180x320 at x4)")
    flag(parser, "json", metavar="OUT.json", help="also write the profile as JSON")
    add_path_flags(parser)  # latency of the path `srlab upscale` runs (auto), or of the one named
    add_adaptive_flags(parser)
    flag(parser, "image", metavar="LR.png",
         help="an LR image: report the MACs a content-adaptive model spends on it and its routing histogram")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, weights = model_with_weights(
        args.model, scale=args.scale, checkpoint=args.checkpoint, args=parse_model_args(args.model_arg), fresh=True,
    )
    if args.json:
        target = Path(args.json)
        if target.is_dir():
            raise SrlabError(f"--json '{target}' is a folder: give a file name, e.g. {target / 'profile.json'}")
        target.parent.mkdir(parents=True, exist_ok=True)
    adaptive = adaptive_from_flags(args, model)
    if args.image and adaptive is None:
        raise SrlabError(f"--image reports what a content-adaptive model spends: {spec_of(model).name} is static "
                         f"(use --adaptive static to see the patch engine's cost, or drop --image)")
    lr = read_rgb(args.image) if args.image else None  # a bad image is refused before the long part
    profile = profile_model(
        model, device=device, threads=args.threads, repeats=args.repeats, warmup=args.warmup, lr_size=args.lr_size,
        path=args.path, precision=args.precision, compile_from=args.compile_from,
    )
    print(profile.table())
    print(f"weights          {weights}")
    spent = None
    if adaptive is not None:
        if lr is None:
            print("adaptive         MACs above are the full path's: give --image LR.png to see what it spends")
        else:
            spent = profile_adaptive(adaptive.to(device).eval(), lr, image=args.image)
            print(spent.table())
    if args.json:
        data = {**profile.to_json(), "weights": weights, "model_args": dict(spec_of(model).args)}
        if spent is not None:
            data["adaptive"] = spent.to_json()
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0
