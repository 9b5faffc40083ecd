"""``srlab eval``: PSNR/SSIM (Y channel, paper protocol) of a model on one or more data sets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from srlab.cli.common import add_model_flags, flag, load_model_from_flags
from srlab.data.datasets import discover_pairs
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.evaluate import evaluate_folder
from srlab.models.registry import spec_of

HELP = "evaluate a model on data sets (PSNR/SSIM on Y, the papers' protocol)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    flag(parser, "data", action="append", required=True, metavar="DIR",
         help="HR-only folder (LR made with MATLAB bicubic) or benchmark/DIV2K layout; repeatable")
    flag(parser, "json", metavar="OUT.json", help="write the results as JSON")
    flag(parser, "quiet", action="store_true", help="no progress bar")
    flag(parser, "self_ensemble", action="store_true",
         help="x8 geometric self-ensemble (4 rotations x flip, outputs averaged; 8x slower): the papers' '+' rows")


def _check_json_path(path: str) -> None:
    """Fail before the (long) evaluation, not after it, if the results could not be written."""
    target = Path(path)
    if target.is_dir():
        raise SrlabError(f"--json '{target}' is a folder: give a file name, e.g. {target / 'results.json'}")
    if target.parent.exists() and not target.parent.is_dir():
        raise SrlabError(f"--json '{target}': '{target.parent}' is a file, not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)


def run(args: argparse.Namespace) -> int:
    model, _ = load_model_from_flags(args)
    spec = spec_of(model)
    folders = [discover_pairs(d, spec.scale) for d in args.data]  # check every folder before the long part
    if args.json:
        _check_json_path(args.json)
    results = []
    suffix = " (x8 self-ensemble)" if args.self_ensemble else ""
    print(f"{'dataset':<16} {'scale':>5} {'images':>6} {'PSNR_Y':>8} {'SSIM_Y':>7}  model")
    for folder in folders:
        result = evaluate_folder(
            model, folder, tile=args.tile, tile_overlap=args.tile_overlap, progress=not args.quiet,
            self_ensemble=args.self_ensemble,
        )
        results.append(result)
        print(
            f"{result.dataset:<16} {'x' + str(result.scale):>5} {len(result.images):>6} "
            f"{result.psnr_y:>8.4f} {result.ssim_y:>7.4f}  {result.model}{suffix}"
        )
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"results": [r.to_json() for r in results]}, indent=2) + "\n")
    return 0
