"""``srlab lut export``: turn a trained SR-Net or MuLUT network (or fine-tuned tables) into look-up table files."""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab.cli.common import flag, parse_model_args, positive_int
from srlab.errors import SrlabError
from srlab.fileio import check_not_overwriting
from srlab.lut.files import write_mulut_folder, write_npy_table
from srlab.models.create import create_model
from srlab.models.lut import SRLUT, MuLUT
from srlab.models.mulut_net import MuLUTNet, to_mulut
from srlab.models.sr_net import SRNet, to_lut
from srlab.models.weights import save_weights

HELP = ("look-up-table SR: `srlab lut export` samples a trained sr_net (mulut_net) into an sr_lut table (mulut "
        "tables), or writes fine-tuned tables")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="write the table(s) of an sr_net or mulut_net checkpoint (or of a fine-tuned sr_lut / mulut)",
        description="Sample a trained sr_net at every LUT input (its receptive field and scale come from the "
                    "checkpoint) and write the sr_lut table: FILE.lut (safetensors, records the model: "
                    "`srlab upscale --checkpoint FILE.lut`) or FILE.npy (SR-LUT's released int8 layout). A "
                    "fine-tuned sr_lut is written the same way. A trained mulut_net is sampled into MuLUT's tables, "
                    "written, like a fine-tuned mulut, as a folder of MuLUT's .npy tables (-o DIR).",
    )
    flag(export, "checkpoint", required=True, metavar="FILE", help="an sr_net, mulut_net, sr_lut or mulut checkpoint from `srlab train`")
    flag(export, "model_arg", action="append", default=[], metavar="KEY=VALUE", help="a hyper-parameter, repeatable")
    flag(export, "levels", type=positive_int, default=17, metavar="L",
         help="samples per input pixel: 2**b + 1 (default 17: 4-bit sampling, 17**4 entries for 2x2 fields)")
    export.add_argument("-o", "--out", required=True, metavar="FILE", help="FILE.lut or FILE.npy (mulut: a folder)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    model = create_model(checkpoint=args.checkpoint, args=parse_model_args(args.model_arg))
    if isinstance(model, MuLUTNet):
        if out.suffix:  # checked before the sampling, which takes a while
            raise SrlabError(_MULUT_FOLDER.format(out=out))
        try:
            tables = to_mulut(model, levels=args.levels)
        except SrlabError as e:
            raise SrlabError(f"--levels {args.levels}: {e}") from None
        return _export_mulut(tables, out, prefix="LUT")  # the name MuLUT's transfer gives them
    if isinstance(model, MuLUT):
        return _export_mulut(model, out, prefix="LUT_ft")
    if out.suffix not in (".lut", ".npy"):
        raise SrlabError(f"-o '{out}' must end in .lut (safetensors, what srlab reads back) or .npy (SR-LUT's layout)")
    check_not_overwriting(out, [args.checkpoint])
    if isinstance(model, SRNet):
        try:
            lut = to_lut(model, levels=args.levels)
        except SrlabError as e:
            raise SrlabError(f"--levels {args.levels}: {e}") from None
    elif isinstance(model, SRLUT):
        lut = model
    else:
        raise SrlabError(
            f"checkpoint '{args.checkpoint}' holds a {type(model).__name__}, not an sr_net, mulut_net, sr_lut or mulut: "
            "train one with `srlab train --model sr_net`"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        write_npy_table(out, lut.lut, (lut.lut.shape[0], 1, lut.scale, lut.scale))
    else:
        with_int8_values = lut.lut.detach().round().clamp(-128, 127)
        lut.lut.data.copy_(with_int8_values)
        save_weights(out, lut)
    print(f"{lut.field.name} table x{lut.scale}: {lut.lut.shape[0]} entries x {lut.lut.shape[1]} -> wrote {out}")
    return 0


_MULUT_FOLDER = "-o '{out}': a mulut is written as a folder of tables, give a folder name (no suffix)"


def _export_mulut(model: MuLUT, out: Path, *, prefix: str) -> int:
    if out.suffix:
        raise SrlabError(_MULUT_FOLDER.format(out=out))
    write_mulut_folder(out, dict(model.luts.items()), model.scale, 2 ** (8 - model.interval) + 1, prefix=prefix)
    print(f"mulut x{model.scale}: {len(model.luts)} tables -> wrote {out}")
    return 0
