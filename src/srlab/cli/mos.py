"""``srlab mos``: Mean Opinion Score studies (:mod:`srlab.mos`).

- ``srlab mos create STUDY_DIR --method NAME=FOLDER ... [--reference FOLDER] [--design acr|dcr|pair]
  [--repeats K] [--attention_checks N] [--seed S]``: a study folder from folders of SR outputs whose
  images share names (a name missing from a folder is reported and left out); or ``--from_benchmark
  REPORT_DIR``: from the crops of a ``srlab benchmark`` report (its models, and HR as the reference).
- ``srlab mos serve STUDY_DIR [--host 127.0.0.1] [--port 8000] [--db URL]``: the rating web app; prints
  the raters' URL and the admin token.
- ``srlab mos report STUDY_DIR [--json OUT] [--html OUT] [--csv OUT] [--db URL] [--metrics FILE
  [--metrics_dataset NAME] [--metrics_scale S]]``: the ratings as MOS tables, correlated with the
  objective scores of ``--metrics`` when given (:mod:`srlab.mos.report`).

The web app's libraries are the optional extra ``srlab[mos]``; without them ``serve`` and ``report`` say so.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from srlab.cli.common import flag, non_negative_int, positive_int
from srlab.errors import SrlabError
from srlab.mos.create import benchmark_sources, create_study
from srlab.mos.records import DESIGNS

HELP = "MOS rating studies: create a study from SR outputs, serve the rating web app, report the scores"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mos_command", required=True, metavar="ACTION")

    p = sub.add_parser("create", help="a study folder from folders of SR outputs with matching image names",
                       description="Make a MOS study: images matched by name across the --method folders are "
                                   "copied into STUDY_DIR with study.json (the trials).")
    p.add_argument("study_dir", metavar="STUDY_DIR", help="a new folder for the study")
    flag(p, "method", action="append", metavar="NAME=FOLDER",
         help="a method's SR outputs (repeat the flag for each method)")
    flag(p, "reference", metavar="FOLDER", help="the reference (HR) images; needed by --design dcr")
    flag(p, "from_benchmark", metavar="REPORT_DIR",
         help="instead of --method/--reference: the crops of a `srlab benchmark` report folder (its models, HR)")
    flag(p, "design", choices=DESIGNS, default="acr",
         help="acr: rate each image 1-5; dcr: rate 1-5 against the reference; pair: choose the better of two")
    flag(p, "repeats", type=positive_int, default=1, metavar="K", help="show every trial K times (default 1)")
    flag(p, "attention_checks", type=non_negative_int, default=0, metavar="N",
         help="hidden checks: alternately a repeated trial and a deliberately degraded image (default 0)")
    flag(p, "seed", type=non_negative_int, default=0, help="the seed that draws the checks (default 0)")

    p = sub.add_parser("serve", help="the rating web app over a study",
                       description="Serve the raters' page and the JSON API; prints the admin token.")
    p.add_argument("study_dir", metavar="STUDY_DIR")
    flag(p, "host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    flag(p, "port", type=positive_int, default=8000, help="port (default 8000)")
    _db_flag(p)

    p = sub.add_parser("report", help="MOS with confidence intervals, rater screening, plots, CSV",
                       description="Analyse the study's ratings.")
    p.add_argument("study_dir", metavar="STUDY_DIR")
    flag(p, "json", metavar="OUT", help="write the report as JSON here")
    flag(p, "html", metavar="OUT", help="write the report as an HTML page here")
    flag(p, "csv", metavar="OUT", help="write the ratings' table as CSV here")
    flag(p, "metrics", metavar="FILE",
         help="objective scores to correlate with the MOS: `srlab eval --json` output or a benchmark's results.json")
    flag(p, "metrics_dataset", metavar="NAME", help="the data set of --metrics to use (when it holds several)")
    flag(p, "metrics_scale", type=positive_int, metavar="S", help="the scale of --metrics to use (when it holds several)")
    _db_flag(p)


def _db_flag(p: argparse.ArgumentParser) -> None:
    flag(p, "db", metavar="URL",
         help="the database (default: ratings.sqlite in STUDY_DIR); e.g. postgresql+psycopg://user@host/db")


def run(args: argparse.Namespace) -> int:
    commands = {"create": _create, "serve": _serve, "report": _report}
    return commands[args.mos_command](args)


def _mos(module: str):  # noqa: ANN202 - a module
    """Import an app module; its libraries are the optional extra ``srlab[mos]``."""
    try:
        return importlib.import_module(f"srlab.mos.{module}")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("srlab"):
            raise
        raise SrlabError(f"`srlab mos` needs {e.name}: pip install 'srlab[mos]'") from None


def _parse_methods(values: list[str]) -> dict[str, str]:
    methods: dict[str, str] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise SrlabError(f"--method expects NAME=FOLDER (e.g. --method bsrn=out/bsrn), got {value!r}")
        if name in methods:
            raise SrlabError(f"--method {name} is given twice: give each method once")
        methods[name] = folder
    return methods


def _create(args: argparse.Namespace) -> int:
    if args.from_benchmark and (args.method or args.reference):
        raise SrlabError("--from_benchmark takes the methods and the reference from the report: drop --method/--reference")
    if args.from_benchmark:
        methods, reference = benchmark_sources(args.from_benchmark)
    elif args.method:
        methods, reference = _parse_methods(args.method), args.reference
    else:
        raise SrlabError("srlab mos create needs --method NAME=FOLDER (one per method) or --from_benchmark REPORT_DIR")
    made = create_study(args.study_dir, methods, reference=reference, design=args.design,
                        repeats=args.repeats, attention_checks=args.attention_checks, seed=args.seed)
    for image, missing in sorted(made.left_out.items()):
        print(f"srlab: warning: image '{image}' is missing from {', '.join(missing)}: left out", file=sys.stderr)
    print(f"{made.path}: {args.design} study, {len(made.images)} images, {made.trials} trials")
    return 0


def _serve(args: argparse.Namespace) -> int:
    _mos("app").serve(args.study_dir, host=args.host, port=args.port, db_url=args.db,
                      admin_token=os.environ.get("SRLAB_MOS_ADMIN_TOKEN"))
    return 0


def _report(args: argparse.Namespace) -> int:
    if not (args.json or args.html or args.csv):
        raise SrlabError("srlab mos report: give at least one of --json OUT, --html OUT, --csv OUT")
    report = _mos("report")
    metrics = None
    if args.metrics:
        metrics = report.read_metric_results(Path(args.metrics), dataset=args.metrics_dataset, scale=args.metrics_scale)
    trials, ratings = _mos("db").load_records(args.study_dir, args.db)
    design = _mos("study").load_study(args.study_dir).design
    report.write_report(
        Path(args.study_dir), trials, ratings, design=design, json_out=_path(args.json), html_out=_path(args.html),
        csv_out=_path(args.csv), metrics=metrics,
    )
    for out in (args.json, args.html, args.csv):
        if out:
            print(f"wrote {out}")
    return 0


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)
