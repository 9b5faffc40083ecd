"""``srlab profile``: parameters, MACs, activations, latency and peak memory of one model."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from srlab.cli.common import flag, non_negative_int, parse_model_args, positive_int
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.upscale import resolve_device
from srlab.models.create import DEFAULT_MODEL, model_with_weights
from srlab.models.registry import spec_of
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
    profile = profile_model(
        model, device=device, threads=args.threads, repeats=args.repeats, warmup=args.warmup, lr_size=args.lr_size,
    )
    print(profile.table())
    print(f"weights          {weights}")
    if args.json:
        data = {**profile.to_json(), "weights": weights, "model_args": dict(spec_of(model).args)}
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0
