"""Entry point of the ``srlab`` command.

Exit status, one contract for every subcommand (README, "Exit codes"):

- 0: everything asked for was done (or the reader of stdout left early: ``srlab models | head``).
- 1: a batch ran and some of its inputs failed; each failure is one ``srlab: error: ...`` line on stderr,
  the other inputs were processed and their outputs written (``upscale``: an unreadable image; ``eval``:
  a data set with a corrupt image, which gets no score; ``data verify``: a data set with problems).
- 2: srlab refused: a usage error (a bad flag or value, a missing, corrupt or incompatible file: config,
  checkpoint, run directory, data folder, weights of a metric), or the file system refusing a path. One
  line, ``srlab: error: <what, and how to fix it>``, no traceback. Commands check their inputs before
  the long work wherever they can, so this usually means nothing was written; an error that a command
  cannot continue past (a corrupt image in ``benchmark``, whose report needs every number) exits 2 too.
- 130: interrupted (Ctrl-C).

The library raises :class:`~srlab.errors.SrlabError` for user mistakes and this function prints it. A
traceback is a bug in srlab, never the user's mistake. The library's :class:`~srlab.errors.SrlabWarning`
(only an animation's first frame is used, ...) is printed as one line too, ``srlab: warning: ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from srlab import __version__
from srlab.cli import (
    arm_router, arm_table, benchmark, car, data, degrade, demo, dip, eval as eval_cmd, export, export_weights, lut,
    models, mos, nas, plot, profile, quantize, rdsr_router, tradeoff, train, upscale, weights, zssr,
)
from srlab.errors import SrlabError, SrlabWarning
from srlab.inference.threads import policy_threads
from srlab.profile.latency import torch_threads

COMMANDS = {
    "train": train, "eval": eval_cmd, "upscale": upscale, "models": models, "demo": demo, "data": data,
    "profile": profile, "benchmark": benchmark, "tradeoff": tradeoff, "arm-table": arm_table, "arm-router": arm_router, "lut": lut,
    "rdsr-router": rdsr_router, "weights": weights, "plot": plot, "export": export,
    "export-weights": export_weights, "quantize": quantize, "degrade": degrade, "dip": dip, "zssr": zssr,
    "car": car, "mos": mos, "nas": nas,
}


class _Parser(argparse.ArgumentParser):
    """Flag mistakes (unknown flag, bad value, missing argument) in the same one-line form as the rest."""

    def error(self, message: str):  # noqa: ANN201 - argparse's signature (NoReturn)
        message = " ".join(message.split())
        print(f"srlab: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    # Sub-parsers inherit the class, so every subcommand reports flag errors in one line too.
    parser = _Parser(prog="srlab", description="Efficient single-image super-resolution.")
    parser.add_argument("--version", action="version", version=f"srlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Threads for the command (srlab.inference.threads): what --threads asks, else torch's setting, capped
        # at the usable CPUs; restored after, for callers that run commands in-process.
        with warnings.catch_warnings(), torch_threads(policy_threads(getattr(args, "threads", None))):
            warnings.showwarning = _show_warning(warnings.showwarning)
            return int(args.run(args) or 0)
    except SrlabError as e:
        print(f"srlab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`srlab models | head`): nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit; the pipe is gone
        return 0
    except OSError as e:  # the file system refused (permissions, disk full, a file where a folder goes)
        print(f"srlab: error: {' '.join(str(e).split())} (check the path and its permissions)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srlab: interrupted", file=sys.stderr)
        return 130


def _show_warning(fallback):  # noqa: ANN001, ANN202 - warnings.showwarning's signature
    """srlab's own warnings as one line, like its errors; other libraries' warnings as they are."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, SrlabWarning):
            print(f"srlab: warning: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


if __name__ == "__main__":
    raise SystemExit(main())
