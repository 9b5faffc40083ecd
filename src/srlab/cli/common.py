"""Flags and helpers shared by several subcommands."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.inference.upscale import resolve_device
from srlab.models.create import create_model


def flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Add ``--snake_case`` with its ``--dashed-spelling`` as an alias."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, dest=name, **kwargs)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a bad value is reported as a flag error, before any work)."""
    value = int(text)  # a ValueError makes argparse say "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    flag(parser, "model", metavar="NAME", help="registered model name (see `srlab models`)")
    flag(parser, "checkpoint", metavar="FILE", help="weights: .safetensors from `srlab train`, or an official .pth")
    flag(parser, "scale", type=int, metavar="S", help="upscaling factor (read from the checkpoint if it records one)")
    flag(parser, "device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    flag(parser, "tile", type=positive_int, metavar="T", help="process the LR image in T x T tiles (bounds memory)")
    flag(parser, "tile_overlap", type=non_negative_int, metavar="O", help="tile context in LR pixels (default: the model's)")


def load_model_from_flags(args: argparse.Namespace) -> tuple[nn.Module, torch.device]:
    device = resolve_device(args.device)
    if args.checkpoint is None:
        if args.model is None:
            raise SrlabError("no model given: pass --checkpoint FILE (from `srlab train`) or --model bicubic")
        if args.scale is None:
            raise SrlabError("no scale given: pass --scale S")
        model = create_model(args.model, scale=args.scale)
        if next(model.parameters(), None) is not None:
            raise SrlabError(
                f"model {args.model!r} has no bundled weights yet: pass --checkpoint FILE "
                "(weights from `srlab train` or an official release)"
            )
    else:
        model = create_model(args.model, scale=args.scale, checkpoint=args.checkpoint)
    return model.to(device).eval(), device
