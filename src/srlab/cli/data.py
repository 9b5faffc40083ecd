"""``srlab data``: the standard SR data sets: list them, verify a data root, download them.

- ``srlab data list [--root DIR]``: the catalog (what each set is, its source), with each set's status
  under DIR: present / partial / missing, and its image counts.
- ``srlab data verify --root DIR [NAME...]``: layout, counts, names, LR size = HR size // scale,
  checksums when a download recorded them; one line per problem, exit status 1 if there is any.
- ``srlab data download NAME... --root DIR``: download, check and unpack (all or nothing per set).
- ``srlab data subimages --hr DIR --out DIR``: crop HR images into overlapping sub-images (128 / step 64).
- ``srlab data classsr-split --hr DIR --out DIR --scale S --model NAME [--checkpoint FILE]``: divide
  sub-images into ClassSR's three difficulty classes by the model's PSNR on them (srlab.data.subimages).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srlab.cli.common import flag, non_negative_int, positive_int
from srlab.data import catalog
from srlab.data.download import download, status, verify
from srlab.data.subimages import CLASSSR_THRESHOLDS, extract_subimages, split_by_difficulty
from srlab.errors import SrlabError
from srlab.models.create import create_model

HELP = "list, verify and download the standard data sets (DIV2K, Flickr2K, Set5, Set14, B100, Urban100, Manga109)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    p = sub.add_parser("list", help="the data sets and their status under --root",
                       description="The data sets srlab knows, and their status under --root.")
    flag(p, "root", metavar="DIR", help="data root to report on (default: only the catalog)")
    flag(p, "details", action="store_true", help="also print each set's paper, licence and download URLs")

    p = sub.add_parser("verify", help="check the layout, counts, sizes and checksums under --root",
                       description="Check the data sets under --root; exit status 1 when something is wrong.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="data sets to check (default: every set found under the root)")
    flag(p, "root", required=True, metavar="DIR", help="data root")
    flag(p, "scale", type=positive_int, action="append", default=[], metavar="S",
         help="require the x S LR images (repeatable; default: check the LR folders that exist)")
    flag(p, "skip_checksums", action="store_true", help="do not hash the files against the download manifest")

    p = sub.add_parser("download", help="download, check and unpack data sets into --root",
                       description="Download, check (size, checksum, layout) and unpack data sets into --root.")
    p.add_argument("names", nargs="+", metavar="NAME", help=f"one or more of {', '.join(catalog.names())}")
    flag(p, "root", required=True, metavar="DIR", help="data root")
    flag(p, "scale", type=positive_int, action="append", default=[], metavar="S",
         help="LR scale to fetch (repeatable; default: every scale the set has)")
    flag(p, "keep_archives", action="store_true", help="keep the archives in ROOT/.srlab/downloads")
    flag(p, "force", action="store_true", help="download again even when the set is complete")
    flag(p, "quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("subimages", help="crop HR images into overlapping sub-images (ClassSR / BasicSR protocol)",
                       description="Crop every image of --hr into crop x crop sub-images <stem>_sNNN.png in --out.")
    flag(p, "hr", required=True, metavar="DIR", help="folder of HR images")
    flag(p, "out", required=True, metavar="DIR", help="folder for the sub-images")
    flag(p, "crop", type=positive_int, default=128, metavar="N", help="sub-image side (default 128)")
    flag(p, "step", type=positive_int, default=64, metavar="N", help="distance between crops (default 64)")
    flag(p, "min_rest", type=non_negative_int, default=48, metavar="N",
         help="add a crop flush with the border when more than N pixels remain (default 48)")

    p = sub.add_parser("classsr-split", help="divide sub-images into ClassSR's difficulty classes by a model's PSNR",
                       description="Copy every image of --hr into --out/class1 (simple), class2 or class3 (hard) by "
                                   "the PSNR the --model reaches on it (RGB, 8-bit, border = scale); --out/psnr.csv "
                                   "lists them.")
    flag(p, "hr", required=True, metavar="DIR", help="folder of HR sub-images")
    flag(p, "out", required=True, metavar="DIR", help="folder for class1/, class2/, class3/ and psnr.csv")
    flag(p, "scale", type=positive_int, required=True, metavar="S", help="SR scale")
    flag(p, "model", required=True, metavar="NAME", help="the reference SR network (officially MSRResNet)")
    flag(p, "checkpoint", metavar="FILE", help="its weights")
    flag(p, "thresholds", type=float, nargs=2, default=list(CLASSSR_THRESHOLDS), metavar=("HARD", "SIMPLE"),
         help=f"PSNR below HARD: class 3, from SIMPLE on: class 1 (default: the official "
              f"{CLASSSR_THRESHOLDS[0]} {CLASSSR_THRESHOLDS[1]} dB)")


def run(args: argparse.Namespace) -> int:
    commands = {"list": _list, "verify": _verify, "download": _download, "subimages": _subimages,
                "classsr-split": _classsr_split}
    return commands[args.data_command](args)


def _root(args: argparse.Namespace) -> Path:
    root = Path(args.root)
    if root.exists() and not root.is_dir():
        raise SrlabError(f"--root '{root}' is a file: give the folder that holds the data sets")
    return root


def _list(args: argparse.Namespace) -> int:
    root = _root(args) if args.root else None
    print(f"{'name':<9} {'role':<5} {'images':>6} {'status':<8}  {'counts' if root else 'source'}")
    for info in catalog.DATASETS:
        if root is None:
            source = info.archives[0].url if info.archives else "manual: " + info.homepage
            print(f"{info.name:<9} {info.role:<5} {info.hr_count:>6} {'-':<8}  {source}")
        else:
            st = status(info, root)
            print(f"{info.name:<9} {info.role:<5} {info.hr_count:>6} {st.state:<8}  {st.describe()}")
        if args.details:
            print(f"    {info.description}")
            print(f"    paper: {info.paper}")
            print(f"    licence: {info.licence}; home: {info.homepage}")
            for archive in info.archives:
                checksum = f"sha256 {archive.sha256}" if archive.sha256 else (
                    f"md5 {archive.md5} (sha256 unknown)" if archive.md5 else "no checksum known")
                print(f"    {archive.url}  {checksum}")
            if info.manual:
                print(f"    {info.manual}")
    if root is not None:
        print(f"(under {root}; `srlab data verify --root {root}` checks sizes and checksums)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    root = _root(args)
    if not root.is_dir():
        raise SrlabError(f"--root '{root}' does not exist: give the folder that holds the data sets")
    if args.names:
        infos = [catalog.get(n) for n in dict.fromkeys(args.names)]
    else:
        infos = [i for i in catalog.DATASETS if status(i, root).state != "missing"]
        if not infos:
            raise SrlabError(f"no known data set under '{root}' (see `srlab data list --root {root}`)")
    failed = 0
    for info in infos:
        scales = [s for s in args.scale if s in info.scales]
        if len(scales) != len(args.scale) and args.names:
            bad = sorted(set(args.scale) - set(info.scales))
            raise SrlabError(f"{info.name} has no x{bad[0]} LR images: use --scale among "
                             f"{', '.join(map(str, info.scales))}")
        problems = verify(info, root, scales=scales, checksums=not args.skip_checksums)
        if problems:
            failed += 1
            for line in problems:
                print(f"{info.name}: {line}")
            print(f"{info.name:<9} FAIL  {len(problems)} problem(s)")
        else:
            print(f"{info.name:<9} OK    {status(info, root).describe()}")
    return 1 if failed else 0


def _download(args: argparse.Namespace) -> int:
    root = _root(args)
    download(args.names, root, scales=tuple(args.scale), keep_archives=args.keep_archives, force=args.force,
             progress=not args.quiet and sys.stderr.isatty())
    return 0


def _subimages(args: argparse.Namespace) -> int:
    report = extract_subimages(args.hr, args.out, crop=args.crop, step=args.step, min_rest=args.min_rest)
    print(f"wrote {report.written} sub-images to {args.out}")
    for name in report.skipped:
        print(f"skipped {name}: smaller than {args.crop}x{args.crop}")
    return _report_failures(report.failed)


def _classsr_split(args: argparse.Namespace) -> int:
    model = create_model(args.model, scale=args.scale, checkpoint=args.checkpoint).eval()
    report = split_by_difficulty(args.hr, args.out, model=model, scale=args.scale, thresholds=tuple(args.thresholds))
    simple, medium, hard = report.counts
    print(f"class1 (simple) {simple}  class2 {medium}  class3 (hard) {hard}  -> {args.out}")
    return _report_failures(report.failed)


def _report_failures(failed: tuple[tuple[str, str], ...]) -> int:
    """One line per image that could not be read; exit status 1 if any."""
    for _, reason in failed:
        print(f"srlab: error: {reason}", file=sys.stderr)
    return 1 if failed else 0
