"""``srlab degrade``: LR images from HR images with a degradation D(y; δ) (:mod:`srlab.data.degrade`).

``srlab degrade IN... -o OUT --scale S [--preset NAME | --steps FILE.yaml | --noise-sigma SIGMA] --seed N``
writes ``OUT/<name>.png`` and ``OUT/<name>.json`` (the δ that made it, the seed, srlab's version), byte
for byte the same for the same seed. An image that cannot be read or written is reported and the others
are still processed (exit status 1); inputs are never overwritten.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab import __version__
from srlab.cli.common import flag, images_of, non_negative_int, positive_float, process_each, results_folder
from srlab.data.degrade import PRESETS, parse_degradation
from srlab.data.degrade.files import degrade_file, read_steps_file
from srlab.errors import SrlabError

HELP = "make LR images from HR images with a degradation (bicubic, Real-ESRGAN, BSRGAN, or your steps)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="HR image files or folders")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="folder for the LR images and their δ")
    flag(parser, "scale", type=positive_float, required=True, metavar="S", help="downscaling factor (e.g. 4)")
    choice = parser.add_mutually_exclusive_group()
    flag(choice, "preset", choices=sorted(PRESETS), metavar="NAME",
         help=f"a published pipeline: {', '.join(sorted(PRESETS))} (default bicubic: MATLAB bicubic, srlab's D)")
    flag(choice, "steps", metavar="FILE",
         help="a YAML list of steps, e.g. [{step: blur, kernel: iso, sigma: 2}, {step: downscale}, {step: noise, "
              "sigma: 15}] (see the README, Degradations)")
    flag(choice, "noise_sigma", type=positive_float, metavar="SIGMA",
         help="srlab's bicubic D (the benchmarks' LR images) then Gaussian noise of this sigma (8-bit units), e.g. 15")
    flag(parser, "seed", type=non_negative_int, default=0, help="the seed of every image's δ (default 0)")


def _degradation_spec(args: argparse.Namespace):
    if args.steps:
        return read_steps_file(args.steps)
    if args.noise_sigma:
        return [{"step": "downscale", "method": "bicubic", "uint8": True}, {"step": "noise", "sigma": args.noise_sigma}]
    return {"preset": args.preset or "bicubic"}


def run(args: argparse.Namespace) -> int:
    degradation = parse_degradation(_degradation_spec(args), args.scale)
    out_dir = Path(args.out)
    for item in map(Path, args.inputs):
        if item.is_dir() and out_dir.resolve() == item.resolve():
            raise SrlabError(f"-o '{out_dir}' is the input folder '{item}': give another folder (inputs are never overwritten)")
    images = images_of(args.inputs)
    out_dir = results_folder(out_dir, "the LR images")
    written: set[str] = set()

    def degrade(image: Path) -> None:
        if image.stem in written:
            raise SrlabError(f"another input already wrote '{out_dir / image.stem}.png': rename one of the inputs")
        if (out_dir / f"{image.stem}.png").resolve() == image.resolve():
            raise SrlabError(f"refusing to overwrite input file '{image}': choose another -o folder")
        png, record = degrade_file(image, out_dir, degradation, seed=args.seed, version=__version__)
        written.add(image.stem)
        print(f"{image} -> {png} (+ {record.name})")

    return process_each(images, degrade)
