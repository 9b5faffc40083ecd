"""``srlab weights``: the official checkpoints srlab loads (``srlab.models.official``).

- ``srlab weights list [--details]``: every release with its model, scale, size, licence, the input range
  of the official code, and whether srlab bundles it or the cache ($SRLAB_HOME/weights) holds it.
- ``srlab weights download NAME... [--from DIR]``: into the cache, checked (size and SHA-256); NAME is a
  release (``bsrn_x4``) or a model (``bsrn``: all its scales); ``--from DIR`` copies from a local mirror
  instead of downloading. Then ``create_model(NAME, scale=S, pretrained="official")`` loads it offline.
- ``srlab weights verify [NAME...]``: the files in the cache against the registry; exit status 1 if any
  is missing or differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srlab.cli.common import flag
from srlab.errors import SrlabError
from srlab.models import official

HELP = "list, download and verify the official checkpoints srlab loads (URL, SHA-256, licence)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="weights_command", required=True, metavar="ACTION")

    p = sub.add_parser("list", help="the official releases, their licences and where they are",
                       description="The official checkpoints srlab loads; status: bundled (shipped with srlab, "
                                   "pretrained=True), cached (in $SRLAB_HOME/weights, pretrained='official') or -.")
    flag(p, "details", action="store_true", help="also print each release's URL, SHA-256 and notes")

    p = sub.add_parser("download", help="download (or copy --from a mirror) releases into the cache, checked",
                       description="Put releases into $SRLAB_HOME/weights (default ~/.cache/srlab), each checked "
                                   "against its size and SHA-256.")
    p.add_argument("names", nargs="+", metavar="NAME", help="a release (bsrn_x4) or a model (bsrn: all its scales)")
    p.add_argument("--from", dest="mirror", metavar="DIR",
         help="copy from this folder (laid out as <folder>/<file>, or holding the files) instead of downloading")

    p = sub.add_parser("verify", help="check the cached files against their SHA-256",
                       description="Check the releases in the cache; exit status 1 when one is missing or differs.")
    p.add_argument("names", nargs="*", metavar="NAME", help="releases or models (default: every cached release)")


def run(args: argparse.Namespace) -> int:
    commands = {"list": _list, "download": _download, "verify": _verify}
    return commands[args.weights_command](args)


def _status(entry: official.OfficialWeights) -> str:
    if entry.bundled:
        return "bundled"
    return "cached" if official.cache_path(entry).is_file() else "-"


def _list(args: argparse.Namespace) -> int:
    print(f"{'name':<24} {'model':<12} {'scale':>5} {'MB':>5} {'input':<9} {'status':<8} licence")
    for e in official.entries():
        input_range = e.input_range.split(" (")[0]
        print(f"{e.key:<24} {e.model:<12} {'x' + str(e.scale):>5} {e.size / 1e6:>5.2f} {input_range:<9} "
              f"{_status(e):<8} {e.licence}")
        if args.details:
            print(f"    {e.url}")
            print(f"    sha256 {e.sha256}; args {dict(e.args) or 'defaults'}; {e.notes}")
    print(f"(cache: {official.srlab_home() / 'weights'}; set SRLAB_HOME to move it)")
    return 0


def _download(args: argparse.Namespace) -> int:
    chosen = official.select(args.names)
    if args.mirror is not None and not Path(args.mirror).is_dir():
        raise SrlabError(f"--from '{args.mirror}' is not a folder: give the folder that holds the official weights")
    failed = 0
    for entry in chosen:
        try:
            path = official.fetch(entry, mirror=args.mirror, log=print)
        except SrlabError as e:
            failed += 1
            print(f"srlab: error: {e}", file=sys.stderr)
            continue
        print(f"{entry.key:<24} OK  {path} ({entry.licence})")
    return 1 if failed else 0


def _verify(args: argparse.Namespace) -> int:
    if args.names:
        chosen = official.select(args.names)
    else:
        chosen = [e for e in official.entries() if official.cache_path(e).is_file()]
        if not chosen:
            raise SrlabError(f"no official weights in {official.srlab_home() / 'weights'}: "
                             "run `srlab weights download NAME` first")
    failed = 0
    for entry in chosen:
        path = official.cache_path(entry)
        wrong = "missing" if not path.is_file() else official.problem(entry, path)
        if wrong:
            failed += 1
            print(f"{entry.key:<24} FAIL {path}: {wrong} (run `srlab weights download {entry.key}`)")
        else:
            print(f"{entry.key:<24} OK   {path}")
    return 1 if failed else 0
