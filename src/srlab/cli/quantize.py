"""``srlab quantize``: int8 post-training quantisation of a float32 ONNX file from ``srlab export``
(:func:`srlab.export.int8.quantize_int8`); run the result with ``srlab upscale --onnx``."""

from __future__ import annotations

import argparse

from srlab.cli.common import finite_float, flag
from srlab.export.int8 import MIN_FIDELITY_DB, calibration_images, quantize_int8

HELP = "quantise an exported ONNX model to int8 (onnxruntime, calibrated on a few LR images)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="MODEL.onnx", help="a float32 file from `srlab export`")
    parser.add_argument("-o", "--out", required=True, metavar="FILE.onnx", help="the int8 file to write")
    flag(parser, "calibration", required=True, metavar="DIR",
         help="LR images to calibrate on (a few photos; never the images the model will be scored on)")
    flag(parser, "min_fidelity", type=finite_float, default=MIN_FIDELITY_DB, metavar="DB",
         help=f"PSNR of the int8 output against the float output on the calibration images that the Convs kept "
              f"in float must reach (default {MIN_FIDELITY_DB:g}); lower keeps fewer in float (faster, less "
              f"accurate; the README's int8 section has the figures)")


def run(args: argparse.Namespace) -> int:
    images = calibration_images(args.calibration)
    report = quantize_int8(args.source, args.out, images, min_fidelity_db=args.min_fidelity)
    print(f"{report.path}: {report.int8_convs} of {report.convs} convolutions in int8 ({len(report.float_convs)} kept "
          f"float), {report.fidelity_db:.1f} dB from the float output on {report.calibration_images} calibration images")
    return 0
