"""``srlab eval``: PSNR/SSIM (Y channel, paper protocol) and other metrics of a model on data sets,
at one scale or several (one table per scale). Content-adaptive models run through their adaptive
method (``--knob``, ``--adaptive``), and the MACs they spent are printed and kept in the JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from srlab.cli.common import (
    add_adaptive_flags, add_model_flags, add_path_flags, add_sampler_flags, adaptive_from_flags, flag,
    load_model_from_flags, model_on_path, positive_int, refuse_path_for_adaptive, sampler_from_flags, scale_factor,
)
from srlab.data.datasets import discover_pairs
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.evaluate import ComputeSummary, DatasetResult, evaluate_folder, sample_seeds
from srlab.metrics.protocol import PROTOCOLS
from srlab.metrics.registry import MetricSet, metric_names, parse_metric_weights, parse_metrics, weight_keys
from srlab.models.registry import spec_of

HELP = "evaluate a model on data sets (PSNR/SSIM on Y, the papers' protocol)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    add_adaptive_flags(parser)
    add_sampler_flags(parser)
    # Scores must reproduce the official ones to the last printed digit: eager fp32 unless asked otherwise.
    add_path_flags(parser, path="eager", precision="fp32")
    flag(parser, "data", action="append", required=True, metavar="DIR",
         help="HR-only folder (LR made with MATLAB bicubic) or benchmark/DIV2K layout; repeatable")
    flag(parser, "lr_dir", action="append", metavar="DIR",
         help="read the LR images of the matching --data from DIR (<name>x<s>.png or <name>.png, e.g. srlab "
              "degrade's output) instead of LR_bicubic/X<s> or bicubic; once per --data, in the same order")
    flag(parser, "json", metavar="OUT.json", help="write the results as JSON")
    flag(parser, "quiet", action="store_true", help="no progress bar")
    flag(parser, "self_ensemble", action="store_true",
         help="x8 geometric self-ensemble (4 rotations x flip, outputs averaged; 8x slower): the papers' '+' rows")
    flag(parser, "metrics", default="psnr,ssim", metavar="LIST",
         help=f"comma-separated, from {','.join(metric_names())} (default psnr,ssim; each adds a JSON key)")
    flag(parser, "metric_weights", action="append", default=[], metavar="KEY=PATH",
         help=f"weight files of the metrics that need them, keys {', '.join(weight_keys())}; repeatable")
    flag(parser, "protocol", default="y", choices=sorted(PROTOCOLS),
         help="PSNR/SSIM on y (the papers' protocol, default), y8 (Y rounded to 8 bits first, the older "
              "convention), rgb (all three channels), or LIIF/LTE's test script: liif-div2k (RGB, unrounded "
              "output, scale+6 pixels shaved) and liif-benchmark (Y, unrounded, scale shaved); the score "
              "names say which")
    flag(parser, "samples", type=positive_int, default=1, metavar="K",
         help="diffusion models: score K samples per image, seeds --seed .. --seed+K-1; the table shows "
              "the mean over samples ± their standard deviation (averaged over images), and a row for the mean "
              "of the K images; the JSON adds each seed's scores (default 1)")
    flag(parser, "scales", type=scale_factor, nargs="+", metavar="S",
         help="evaluate at several scales in one run, one table each (instead of --scale)")


def _check_json_path(path: str) -> None:
    """Fail before the (long) evaluation, not after it, if the results could not be written."""
    target = Path(path)
    if target.is_dir():
        raise SrlabError(f"--json '{target}' is a folder: give a file name, e.g. {target / 'results.json'}")
    if target.parent.exists() and not target.parent.is_dir():
        raise SrlabError(f"--json '{target}': '{target.parent}' is a file, not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)


def run(args: argparse.Namespace) -> int:
    metric_set = MetricSet(parse_metrics(args.metrics), parse_metric_weights(args.metric_weights))  # weights load here
    protocol = PROTOCOLS[args.protocol]
    columns = metric_set.keys(protocol)
    if args.scales and args.scale is not None:
        raise SrlabError("give --scale S or --scales S1 S2 ..., not both")
    scales = list(dict.fromkeys(args.scales)) if args.scales else [args.scale]
    if args.json:
        _check_json_path(args.json)
    lr_dirs = args.lr_dir or [None] * len(args.data)
    if len(lr_dirs) != len(args.data):
        raise SrlabError(f"give --lr_dir once per --data (in the same order): {len(args.data)} --data, "
                         f"{len(lr_dirs)} --lr_dir")
    # Every model and folder is checked before the long part: a bad one is a usage error (exit status 2).
    runs = []
    for scale in scales:
        args.scale = scale
        model, _ = load_model_from_flags(args)
        sampler_from_flags(args, model)
        sample_seeds(model, args.samples)  # refuses --samples K > 1 for models without a sampler
        adaptive = adaptive_from_flags(args, model)
        if adaptive is not None and (args.tile or args.self_ensemble):
            raise SrlabError("adaptive inference routes whole images: drop --tile and --self_ensemble "
                             "(or --adaptive off for the plain model)")
        if adaptive is None:
            model = model_on_path(model, args)
        else:
            refuse_path_for_adaptive(args)
        scale_of_model = spec_of(model).scale
        runs.append((model, adaptive, [
            discover_pairs(d, scale_of_model, lr_dir=lr) for d, lr in zip(args.data, lr_dirs, strict=True)
        ]))
    results, failed = [], []
    for model, adaptive, folders in runs:
        if len(scales) > 1:
            print(f"x{spec_of(model).scale}")
        _print_header(columns, args.samples)
        suffix = " (x8 self-ensemble)" if args.self_ensemble else ""
        for folder in folders:
            try:
                result = evaluate_folder(
                    model, folder, protocol=protocol, tile=args.tile, tile_overlap=args.tile_overlap,
                    progress=not args.quiet, self_ensemble=args.self_ensemble, metrics=metric_set,
                    adaptive=adaptive, samples=args.samples,
                )
            except SrlabError as e:  # e.g. a corrupt image: a mean over the other images is not the set's score
                failed.append(f"{folder.name} x{spec_of(model).scale}")
                print(f"srlab: error: {e}", file=sys.stderr)
                continue
            results.append(result)
            _print_rows(result, columns, f"{suffix}{_compute_note(result.compute)}")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"results": [r.to_json() for r in results]}, indent=2) + "\n")
    if failed:
        total = sum(len(folders) for _, _, folders in runs)
        print(f"srlab: {len(failed)} of {total} data sets failed and have no score: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _compute_note(compute: ComputeSummary | None) -> str:
    if compute is None:
        return ""
    knob = "" if compute.knob_name is None else f" {compute.knob_name}={compute.knob:g}"
    return (f" ({compute.method}{knob}: {compute.macs_spent / 1e9:.3f} of {compute.macs_full / 1e9:.3f} GMACs "
            f"per image, {compute.macs_fraction:.1%})")


def _print_rows(result: DatasetResult, columns: tuple[str, ...], note: str) -> None:
    """The set's row; with several samples, mean ± std over samples, and a row for the mean image."""
    sampling = result.sampling
    if sampling is None:
        values = " ".join(f"{result.scores[k]:>{_width(k)}.4f}" for k in columns)
    else:
        values = " ".join(f"{f'{result.scores[k]:.4f}±{sampling.std[k]:.4f}':>{_width(k, 2)}}" for k in columns)
        seeds = f"{sampling.seeds[0]}..{sampling.seeds[-1]}"
        note = f" ({len(sampling.seeds)} samples, seeds {seeds}: mean ± std over samples){note}"
    start = f"{result.dataset:<16} {'x' + str(result.scale):>5} {len(result.images):>6}"
    print(f"{start} {values}  {result.model}{note}")
    if sampling is not None:
        values = " ".join(f"{sampling.mean_image[k]:>{_width(k, 2)}.4f}" for k in columns)
        print(f"{start} {values}  {result.model} (the mean image of the {len(sampling.seeds)} samples)")


def _width(key: str, samples: int = 1) -> int:
    return max(8, len(key)) + (8 if samples > 1 else 0)  # room for "±0.0123"


def _print_header(columns: tuple[str, ...], samples: int) -> None:
    names = " ".join(f"{k.upper():>{_width(k, samples)}}" for k in columns)
    print(f"{'dataset':<16} {'scale':>5} {'images':>6} {names}  model")
