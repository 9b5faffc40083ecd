"""Deep Image Prior on benchmark images: PSNR/SSIM (Y, shave = scale, MATLAB-exact: srlab's evaluation
protocol) of the fit's output every ``--every`` steps and of the final result, with bicubic on the same
image beside it, and the time per step.

    PYTHONPATH=src python bench/dip_benchmarks.py ../shared/benchmarks/Set5 --iterations 2000   # the paper's
    PYTHONPATH=src nice -n 15 python bench/dip_benchmarks.py ../shared/benchmarks/Set5 --images butterfly \\
        --iterations 500 --threads 1                                                     # a reduced CPU run

The intermediate rows score the output that gave that step's loss (the notebook's ``PSNR_HR`` history:
the perturbed input, before the step's update); the final row scores what ``srlab dip`` writes.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from machine import cpu_model
from srlab.data.datasets import discover_pairs, load_pair
from srlab.data.resize import imresize
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.unsupervised.dip import DipSettings, DipStep, super_resolve


def score(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> dict[str, float]:
    quantised = sr.mul(255).round().clamp(0, 255).div(255)  # as the written PNG
    return ScoreAccumulator().update(quantised, hr, scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a benchmark folder (HR/, LR_bicubic/X4/)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--images", nargs="*", help="names to run (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_model()}, {threads} threads"
    print(f"# {what}, torch {torch.__version__}", flush=True)
    folder = discover_pairs(args.folder, args.scale)
    settings = DipSettings(scale=args.scale, iterations=args.iterations, seed=args.seed)
    for pair in folder.pairs:
        if args.images and pair.name not in args.images:
            continue
        lr, hr = load_pair(pair, args.scale)
        bicubic = imresize(lr, scale=args.scale, quantize=True)
        rows = {"image": pair.name, "bicubic": score(bicubic, hr, args.scale), "curve": []}
        started = time.perf_counter()

        def on_step(step: DipStep) -> None:
            if step.step % args.every == 0:
                scores = score(step.output[0].cpu(), hr, args.scale)
                rows["curve"].append({"step": step.step, "seconds": round(time.perf_counter() - started, 1), **scores})
                print(json.dumps({"image": pair.name, **rows["curve"][-1]}), flush=True)

        result = super_resolve(lr.to(device), settings, on_step=on_step)
        rows.update(final=score(result.sr.cpu(), hr, args.scale), steps=result.iterations,
                    seconds_per_step=result.seconds / result.iterations, lr_mse=result.lr_losses[-1])
        print(json.dumps(rows), flush=True)


if __name__ == "__main__":
    main()
