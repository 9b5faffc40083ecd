"""``srlab models``: the registry, with parameter counts and MACs per scale and the licence of each
architecture's official code."""

from __future__ import annotations

import argparse

import torch

from srlab.models import build_model, deploy, list_models, model_info, paper_parameter_count
from srlab.profile import macs_720p

HELP = "list the registered models with parameters and MACs (1280x720 output) per scale"
# Counted as the papers count: the inference (deploy) form, trainable parameters, less what a paper excludes.
NOTE = (
    "params: as the papers count them (inference form, trainable, see ModelInfo.uncounted_parameters); "
    "GMACs: multiply-accumulates for a 1280x720 output"
)
SCALES = (2, 3, 4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no flags


def run(args: argparse.Namespace) -> int:
    del args
    header = " ".join(f"{'params x' + str(s):>11}" for s in SCALES) + " " + " ".join(
        f"{'GMACs x' + str(s):>9}" for s in SCALES
    )
    print(f"{'model':<18} {header}  {'licence':<12} paper")
    for name in list_models():
        info = model_info(name)
        params, macs = [], []
        for scale in SCALES:
            if scale in info.scales:
                with torch.device("meta"):  # shapes only: no memory, no initialisation
                    model = build_model(name, scale=scale)
                params.append(f"{paper_parameter_count(model):>11,}")
                macs.append(f"{macs_720p(deploy(model)) / 1e9:>9.2f}")
            else:
                params.append(f"{'-':>11}")
                macs.append(f"{'-':>9}")
        print(f"{name:<18} {' '.join(params)} {' '.join(macs)}  {info.licence:<12} {info.paper}")
    print(NOTE)
    return 0
