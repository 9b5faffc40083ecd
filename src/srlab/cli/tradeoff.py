"""``srlab tradeoff``: sweep a content-adaptive model's knob on data sets and write its quality/compute
trade-off (tradeoff.json, tradeoff_meta.json, tradeoff.csv, PSNR-vs-MACs and PSNR-vs-latency SVGs, index.html).

    srlab tradeoff --model arm_fsrcnn --checkpoint ../shared/official-weights/arm/arm-fsrcnn.pth \\
        --data ../shared/benchmarks/Set14 --scale 4 --out runs/tradeoff_arm --threads 1

    srlab tradeoff --model pcsr_carn --checkpoint carn-pcsr-phase1_iter_last.pth --data Set5 --scale 4 \\
        --knobs 4,2,1,0 --static carn_m:carn_m.pth --out runs/tradeoff_pcsr

Each point is one knob value (the method's sweep unless ``--knobs``), plus the same weights' full path and
each ``--static`` network as reference points; latencies are timed side by side in the same run (see
:mod:`srlab.report.tradeoff`). ``srlab benchmark`` compares static networks; this compares an adaptive one
against them at the same scale on the same machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab.adaptive import adaptive_for, list_adaptive
from srlab.cli.common import add_model_flags, flag, load_model_from_flags, non_negative_int, positive_int
from srlab.errors import SrlabError
from srlab.models.registry import spec_of
from srlab.report.tradeoff import load_static, run_tradeoff

def knob_list(text: str) -> list[float]:
    """argparse type of ``--knobs 0.1,1,10``; each value is checked against the method's range later."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers (e.g. 0.1,1,10), got {text!r}")
    return values


HELP = "sweep an adaptive model's knob: PSNR against MACs and CPU latency, with its full path and static networks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser, tiles=False)
    flag(parser, "adaptive", metavar="METHOD", choices=list_adaptive(),
         help=f"the adaptive method that runs the model (default: the model's own; `static` runs any model "
              f"through the patch engine); one of {', '.join(list_adaptive())}")
    flag(parser, "data", action="append", required=True, metavar="DIR",
         help="HR-only folder (LR made with MATLAB bicubic) or benchmark/DIV2K layout; repeatable")
    flag(parser, "out", required=True, metavar="DIR", help="report folder (created; index.html inside)")
    flag(parser, "knobs", type=knob_list, metavar="V1,V2,...",
         help="the knob values to sweep, cheap to expensive (default: the method's sweep)")
    flag(parser, "static", action="append", default=[], metavar="NAME[:CHECKPOINT]",
         help="a static network of the same family as a reference point (default weights: srlab's); repeatable")
    flag(parser, "threads", type=positive_int, metavar="N",
         help="CPU threads for everything, the timings included (default: torch's setting); stated in the report")
    flag(parser, "repeats", type=positive_int, default=5, metavar="R", help="timed rounds per image (default 5)")
    flag(parser, "warmup", type=non_negative_int, default=1, metavar="W", help="untimed rounds first (default 1)")
    flag(parser, "latency_images", type=positive_int, metavar="N",
         help="time the first N images of each data set (default: all)")
    flag(parser, "quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SrlabError(f"--out '{out}' is a file: give a folder for the report")
    model, _ = load_model_from_flags(args)
    method = adaptive_for(model, method=args.adaptive, checkpoint=args.checkpoint)
    statics = [load_static(text, spec_of(model).scale) for text in args.static]
    run_tradeoff(
        model, method, args.data, out, knobs=args.knobs, statics=statics, threads=args.threads, repeats=args.repeats,
        warmup=args.warmup, latency_images=args.latency_images, weights=args.checkpoint or "",
        progress=not args.quiet,
    )
    print(f"wrote {out / 'tradeoff.json'} and {out / 'index.html'}")
    return 0
