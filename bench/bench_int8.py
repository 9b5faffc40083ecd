"""int8 against float32 onnxruntime for the official x4 releases: PSNR-Y on Set5 / Set14 and latency.

Usage: python bench/bench_int8.py [--models imdn rlfn bsrn] [--size 128] [--runs 7] [--workdir DIR]
                                  [--no-psnr]

Each model's official x4 weights (../shared/official-weights) are exported to float32 ONNX
(``srlab export``'s :func:`export_onnx`) and quantised (``srlab quantize``'s :func:`quantize_int8`, default
fidelity target) on eight scikit-image photos at half size, none of them in Set5 or Set14. Both files
are scored with srlab's evaluation protocol (:func:`srlab.inference.evaluate.evaluate_folder`: MATLAB
bicubic LR, PSNR on Y, ``scale`` pixels shaved) and timed on one thread, interleaved (``median_ms``), on a
``size`` x ``size`` LR input. Files are kept in the work folder between runs. On a shared machine the
latencies are noisy: compare the ratio, from runs interleaved in one process.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from machine import cpu_model, median_ms  # bench/machine.py: scripts run as python bench/<name>.py
from srlab.data.datasets import discover_pairs
from srlab.export.int8 import calibration_images, quantize_int8
from srlab.export.onnx import export_onnx
from srlab.export.runtime import OnnxModel
from srlab.inference.evaluate import evaluate_folder
from srlab.models.create import create_model

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = {"imdn": "imdn/IMDN_x4.pth", "rlfn": "rlfn/rlfn_x4.pth", "bsrn": "bsrn/net_g_BSRN_x4.pth"}
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "cat", "immunohistochemistry", "hubble_deep_field", "retina")


def calibration_folder(workdir: Path) -> Path:
    folder = workdir / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        path = folder / f"{name}.png"
        if not path.exists():
            image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
            image.resize((image.width // 2, image.height // 2), Image.BICUBIC).save(path)
    return folder


def model_files(name: str, workdir: Path) -> tuple[Path, Path, str]:
    fp32, int8 = workdir / f"{name}_x4.onnx", workdir / f"{name}_x4_int8.onnx"
    if not fp32.exists():
        export_onnx(create_model(name, scale=4, checkpoint=SHARED / "official-weights" / WEIGHTS[name]), fp32)
    note = "(cached)"
    if not int8.exists():
        report = quantize_int8(fp32, int8, calibration_images(calibration_folder(workdir)))
        note = f"{report.int8_convs} of {report.convs} Convs int8, fidelity {report.fidelity_db:.1f} dB"
    return fp32, int8, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(WEIGHTS), choices=list(WEIGHTS))
    parser.add_argument("--size", type=int, default=128, help="LR side of the timed input")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "srlab-bench-int8")
    parser.add_argument("--no-psnr", dest="psnr", action="store_false", help="latency only")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()}; onnxruntime, 1 thread, {args.size}x{args.size} LR, median of {args.runs} interleaved")
    print("| model | Set5 fp32 / int8 (drop) | Set14 fp32 / int8 (drop) | fp32 ms | int8 ms | speed-up | int8 file |")
    print("|---|---|---|---|---|---|---|")
    lr = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
    for name in args.models:
        fp32, int8, note = model_files(name, args.workdir)
        scores = []
        for dataset in ("Set5", "Set14") if args.psnr else ():
            pairs = discover_pairs(SHARED / "benchmarks" / dataset, 4)
            full, low = (evaluate_folder(OnnxModel(path), pairs).psnr_y for path in (fp32, int8))
            scores.append(f"{full:.4f} / {low:.4f} ({full - low:+.4f})")
        sessions = {kind: OnnxModel(path, threads=1).session for kind, path in (("fp32", fp32), ("int8", int8))}
        times = median_ms({kind: (lambda s=s: s.run(None, {"lr": lr})) for kind, s in sessions.items()},
                          runs=args.runs, warmup=1)
        cells = scores or ["-", "-"]
        print(f"| {name} | {cells[0]} | {cells[1]} | {times['fp32']:.0f} | {times['int8']:.0f} | "
              f"{times['fp32'] / times['int8']:.2f}x | {note} |", flush=True)


if __name__ == "__main__":
    main()
