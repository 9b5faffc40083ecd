"""``srlab export-weights``: write weights as the plain ``.pth`` state dict the official code loads strictly.

srlab's checkpoints lack the buffers some official models derive from their configuration (SwinIR's
``attn_mask``); this command adds them (:func:`srlab.export.official_state.save_official_weights`).
"""

from __future__ import annotations

import argparse

from srlab.cli.common import flag, parse_model_args, positive_int, scale_factor
from srlab.data.io import check_not_overwriting
from srlab.models.create import model_with_weights
from srlab.export.official_state import OFFICIAL_IMG_SIZE, save_official_weights

HELP = "write weights as the .pth state dict the official code loads strictly (derived buffers included)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", required=True, metavar="FILE.pth", help="the .pth file to write")
    flag(parser, "checkpoint", metavar="FILE", help="weights: .safetensors from `srlab train`, or an official .pth")
    flag(parser, "model", metavar="NAME", help="registered model name (read from the checkpoint if it records one)")
    flag(parser, "scale", type=scale_factor, metavar="S", help="upscaling factor (read from the checkpoint if it records one)")
    flag(parser, "model_arg", action="append", default=[], metavar="KEY=VALUE",
         help="a hyper-parameter of the model, repeatable")
    flag(parser, "img_size", type=positive_int, default=OFFICIAL_IMG_SIZE, metavar="N",
         help=f"the official constructor's img_size (training patch size), which sizes SwinIR's and Swin2SR's "
              f"attn_mask buffers (default {OFFICIAL_IMG_SIZE}; 48 for the DIV2K classical SwinIR models)")


def run(args: argparse.Namespace) -> int:
    model, _ = model_with_weights(
        args.model, scale=args.scale, checkpoint=args.checkpoint, args=parse_model_args(args.model_arg)
    )
    if args.checkpoint:
        check_not_overwriting(args.out, [args.checkpoint])
    written = save_official_weights(args.out, model, img_size=args.img_size)
    derived = len(written) - len(model.state_dict())
    print(f"wrote {args.out}: {len(written)} tensors, {derived} of them buffers the official code derives")
    return 0
