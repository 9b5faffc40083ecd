"""Flags and helpers shared by several subcommands."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.inference.upscale import resolve_device
from srlab.models.create import DEFAULT_MODEL, create_model


def flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Add ``--snake_case`` with its ``--dashed-spelling`` as an alias."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, dest=name, **kwargs)


def _number(text: str, kind: type, ok, wanted: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):  # `not ok` also refuses nan
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


# argparse types: a bad value is reported as a flag error (one line, exit 2) before any work starts.
def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number")


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    flag(parser, "model", metavar="NAME", help=f"registered model name (default {DEFAULT_MODEL} with its bundled weights)")
    flag(parser, "checkpoint", metavar="FILE", help="weights: .safetensors from `srlab train`, or an official .pth")
    flag(parser, "scale", type=int, metavar="S", help="upscaling factor (read from the checkpoint if it records one)")
    flag(parser, "device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    flag(parser, "tile", type=positive_int, metavar="T", help="process the LR image in T x T tiles (bounds memory)")
    flag(parser, "tile_overlap", type=non_negative_int, metavar="O", help="tile context in LR pixels (default: the model's)")


def load_model_from_flags(args: argparse.Namespace) -> tuple[nn.Module, torch.device]:
    device = resolve_device(args.device)
    if args.checkpoint is None:
        name = args.model or DEFAULT_MODEL
        if args.scale is None:
            raise SrlabError("no scale given: pass --scale S (or a --checkpoint that records it)")
        model = create_model(name, scale=args.scale)
        if next(model.parameters(), None) is not None:  # a network: it needs weights
            model = create_model(name, scale=args.scale, pretrained=True)
    else:
        model = create_model(args.model, scale=args.scale, checkpoint=args.checkpoint)
    return model.to(device).eval(), device
