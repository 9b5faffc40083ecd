"""``srlab nas``: search a space of architectures under a MAC budget (srlab.nas; needs Optuna).

Rerunning the same command continues the study until it holds ``--trials`` complete trials; several
machines search together by running the same command with one ``--storage postgresql://...`` URL.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab.cli.common import flag, positive_int
from srlab.cli.profile import lr_size
from srlab.models.complexity import lr_size_for_720p
from srlab.nas.search import SAMPLERS, SearchSettings, format_table, parse_macs, search
from srlab.nas.space import list_spaces
from srlab.inference.threads import usable_cpus
from srlab.train.config import load_yaml, merge_overrides, parse_set

HELP = ("architecture search under a MAC budget (Optuna: TPE / NSGA-II / random baseline; short proxy training "
        "per trial; Pareto front PSNR-Y vs MACs vs CPU latency; resumable, parallel, multi-machine)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "space", required=True, metavar="NAME", help=f"search space ({', '.join(list_spaces())})")
    flag(parser, "budget_macs", required=True, metavar="MACS", help="MAC budget per LR image of --lr_size, e.g. 2G, 800M")
    flag(parser, "scale", type=positive_int, required=True, metavar="S", help="upscaling factor")
    flag(parser, "trials", type=positive_int, required=True, metavar="N", help="complete (trained) trials to reach")
    flag(parser, "train_dir", required=True, metavar="DIR", help="training HR images of the proxy runs")
    flag(parser, "val_dir", required=True, metavar="DIR", help="validation images (the trials' PSNR-Y)")
    flag(parser, "out", required=True, metavar="DIR",
         help="writes DIR/pareto.json, DIR/best.yaml, DIR/trials/<number>/ and (by default) DIR/study.db")
    flag(parser, "storage", default="", metavar="URL",
         help="Optuna RDB storage (default sqlite:///DIR/study.db; postgresql://... to search on many machines)")
    flag(parser, "study", default="", metavar="NAME", help="study name in the storage (default <space>_x<scale>)")
    flag(parser, "sampler", default="tpe", choices=SAMPLERS, help="tpe (default), nsga2, or random: the baseline")
    flag(parser, "startup_trials", type=positive_int, default=4, metavar="K",
         help="random trials before TPE models the results; NSGA-II's population size (default 4)")
    flag(parser, "jobs", type=positive_int, default=1, metavar="K", help="trials in parallel processes (default 1)")
    flag(parser, "threads", type=positive_int, metavar="T",
         help="CPU threads of each trial, training and latency (default: the usable CPUs / --jobs)")
    flag(parser, "lr_size", type=lr_size, metavar="HxW",
         help="LR image the MACs and latency are measured on (default: the one whose output is 1280x720)")
    flag(parser, "latency_repeats", type=positive_int, default=5, metavar="R", help="timed runs per trial (default 5)")
    flag(parser, "seed", type=int, default=0, help="seed of the sampler and the proxy training (default 0)")
    flag(parser, "epochs", type=positive_int, metavar="N", help="proxy training epochs (default 10)")
    flag(parser, "patch_size", type=positive_int, metavar="P", help="proxy HR patch side (default 96)")
    flag(parser, "batch_size", type=positive_int, metavar="B", help="proxy batch size (default 8)")
    flag(parser, "proxy_config", metavar="FILE.yaml", help="YAML overrides of the proxy's `srlab train` config")
    flag(parser, "set", action="append", default=[], metavar="KEY=VALUE",
         help="override one key of the proxy's training config, e.g. data.repeat=4")


def _proxy(args: argparse.Namespace) -> dict:
    data = {key: value for key, value in (("patch_size", args.patch_size), ("batch_size", args.batch_size))
            if value is not None}
    flags = {**({"epochs": args.epochs} if args.epochs is not None else {}), **({"data": data} if data else {})}
    proxy = load_yaml(args.proxy_config) if args.proxy_config else {}
    return merge_overrides(merge_overrides(proxy, flags), parse_set(args.set))


def run(args: argparse.Namespace) -> int:
    settings = SearchSettings(
        space=args.space, budget_macs=parse_macs(args.budget_macs), scale=args.scale, trials=args.trials,
        train_dir=args.train_dir, val_dir=args.val_dir, out=Path(args.out),
        lr_size=args.lr_size or lr_size_for_720p(args.scale), storage=args.storage, study_name=args.study,
        sampler=args.sampler, jobs=args.jobs, threads=args.threads or max(1, usable_cpus() // args.jobs),
        seed=args.seed, startup_trials=args.startup_trials, latency_repeats=args.latency_repeats,
        proxy=_proxy(args),
    )
    result = search(settings)
    print(format_table(result, settings))
    print(f"Pareto front in {settings.out / 'pareto.json'}; best architecture in {settings.out / 'best.yaml'}")
    return 0
