"""``srlab benchmark``: evaluate and profile several models at several scales and write a report folder
(results.json / .csv / .md, SVG plots, zoomed visual comparisons, index.html)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from srlab.adaptive import list_adaptive
from srlab.cli.common import add_path_flags, flag, non_negative_int, parse_model_args, positive_int
from srlab.cli.profile import lr_size
from srlab.errors import SrlabError
from srlab.metrics.registry import metric_names, parse_metric_weights, parse_metrics, weight_keys
from srlab.report.benchmark import parse_crop, run_benchmark

HELP = "benchmark several models (PSNR/SSIM, parameters, MACs, CPU latency) and write an HTML report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "models", nargs="+", required=True, metavar="NAME", help="registered model names, e.g. bicubic rdsr_s")
    flag(parser, "data", nargs="+", action="extend", required=True, metavar="DIR",
         help="data sets: HR-only folders or benchmark/DIV2K layouts (e.g. ../shared/benchmarks/Set5)")
    flag(parser, "scales", nargs="+", type=positive_int, default=[2, 3, 4], metavar="S", help="default: 2 3 4")
    flag(parser, "checkpoint", nargs="+", action="extend", default=[], metavar="NAME=FILE",
         help="weights of a model; repeatable, one file per scale or one multi-scale/official file "
              "(default: srlab's bundled weights; bicubic needs none)")
    flag(parser, "model_arg", nargs="+", action="extend", default=[], metavar="NAME:KEY=VALUE",
         help="a hyper-parameter of one model, e.g. ecbsr_etds:channels=32; repeatable")
    flag(parser, "metrics", default="psnr,ssim", metavar="LIST",
         help=f"comma-separated, from {','.join(metric_names())} (default psnr,ssim; extras go to the JSON/CSV)")
    flag(parser, "metric_weights", nargs="+", action="extend", default=[], metavar="KEY=PATH",
         help=f"weight files of the metrics that need them, keys {', '.join(weight_keys())}; repeatable")
    flag(parser, "images", type=non_negative_int, default=2, metavar="N",
         help="visual comparisons of the first N images of the first data set (default 2; 0: none)")
    flag(parser, "crop", nargs="+", action="extend", default=[], metavar="NAME:X,Y,SIZE",
         help="compare image NAME (file stem) on the SIZE x SIZE square at column X, row Y (HR pixels) instead")
    flag(parser, "out", required=True, metavar="DIR", help="report folder (created; index.html inside)")
    flag(parser, "threads", type=positive_int, metavar="N",
         help="CPU threads for the latency runs (default: torch's setting); stated in the report")
    flag(parser, "repeats", type=positive_int, default=10, metavar="R", help="timed latency runs (default 10)")
    flag(parser, "warmup", type=non_negative_int, default=2, metavar="W", help="untimed runs first (default 2)")
    flag(parser, "latency_size", type=lr_size, metavar="HxW",
         help="LR input of the latency runs (default: the one whose output is 1280x720)")
    flag(parser, "device", default="cpu", choices=["auto", "cpu", "cuda"],
         help="where the evaluation runs (default cpu; latency is always measured on the CPU)")
    flag(parser, "tile", type=positive_int, metavar="T", help="evaluate in T x T LR tiles (bounds memory)")
    flag(parser, "knob", nargs="+", action="extend", default=[], metavar="NAME=VALUE",
         help="the knob of a content-adaptive model (ARM eta, PCSR k, CAMixerSR ratio; default: the method's), "
              "e.g. arm_carn=1.0; adaptive models are scored through their adaptive method")
    flag(parser, "adaptive", nargs="+", action="extend", default=[], metavar="NAME=METHOD",
         help="the adaptive method that scores a model instead of its own, e.g. "
              f"rdsr_adaptive=rdsr_adaptive_rate; one of {', '.join(list_adaptive())}, or off (the plain forward)")
    flag(parser, "quiet", action="store_true", help="no progress bars")
    add_path_flags(parser)  # of the latency runs; scores are always fp32 eager's


def _per_model(items: list[str], what: str, example: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for item in items:
        name, sep, rest = item.partition(":" if what == "--model_arg" else "=")
        if not sep or not name.strip() or not rest.strip():
            raise SrlabError(f"{what} expects {example.split()[0]}, got {item!r} (e.g. {what} {example.split()[1]})")
        parsed.setdefault(name.strip(), []).append(rest.strip())
    return parsed


def _knob(name: str, values: list[str]) -> float:
    if len(values) > 1:
        raise SrlabError(f"--knob {name}= is given {len(values)} times: give one value per model")
    try:
        return float(values[0])
    except ValueError:
        raise SrlabError(f"--knob {name}={values[0]}: the knob must be a number (e.g. --knob {name}=1.0)") from None


def _method(name: str, values: list[str]) -> str:
    if len(values) > 1:
        raise SrlabError(f"--adaptive {name}= is given {len(values)} times: give one method per model")
    if values[0] not in (*list_adaptive(), "off"):
        raise SrlabError(f"--adaptive {name}={values[0]}: unknown adaptive method; choose one of "
                         f"{', '.join(list_adaptive())}, off")
    return values[0]


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    metrics = parse_metrics(args.metrics)
    metric_weights = parse_metric_weights(args.metric_weights)
    checkpoints = _per_model(args.checkpoint, "--checkpoint", "NAME=FILE espcn=runs/espcn_x2/best.safetensors")
    model_args: dict[str, dict[str, Any]] = {
        name: parse_model_args(values)
        for name, values in _per_model(args.model_arg, "--model_arg", "NAME:KEY=VALUE ecbsr_etds:channels=32").items()
    }
    crops = [parse_crop(text) for text in args.crop]
    knobs = {name: _knob(name, values) for name, values in _per_model(args.knob, "--knob", "NAME=VALUE arm_carn=1.0").items()}
    methods = {
        name: _method(name, values)
        for name, values in _per_model(args.adaptive, "--adaptive", "NAME=METHOD rdsr_adaptive=rdsr_adaptive_rate").items()
    }
    result = run_benchmark(
        args.models, args.data, args.scales, args.out, checkpoints=checkpoints, model_args=model_args,
        metrics=metrics, metric_weights=metric_weights, images=args.images, crops=crops, threads=args.threads,
        repeats=args.repeats, warmup=args.warmup, latency_lr_size=args.latency_size, device=args.device, tile=args.tile,
        knobs=knobs, adaptive_methods=methods, progress=not args.quiet, path=args.path, precision=args.precision,
        compile_from=args.compile_from,
    )
    out = Path(args.out)
    print((out / "results.md").read_text(encoding="utf-8"), end="")
    print(
        f"wrote {out / 'index.html'} ({len(result.plots)} plots, {len(result.comparisons)} comparisons) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0
