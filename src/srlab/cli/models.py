"""``srlab models``: the registry, with parameter counts per scale."""

from __future__ import annotations

import argparse

from srlab.models import build_model, count_parameters, list_models, model_info

HELP = "list the registered models and their parameter counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no flags


def run(args: argparse.Namespace) -> int:
    del args
    scales = (2, 3, 4)
    print(f"{'model':<12} " + " ".join(f"{'params x' + str(s):>11}" for s in scales) + "  paper")
    for name in list_models():
        info = model_info(name)
        counts = [
            f"{count_parameters(build_model(name, scale=s)):>11,}" if s in info.scales else f"{'-':>11}"
            for s in scales
        ]
        print(f"{name:<12} " + " ".join(counts) + f"  {info.paper}")
    return 0
