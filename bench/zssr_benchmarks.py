"""ZSSR (srlab.unsupervised.zssr) on the benchmark sets: PSNR/SSIM on Y (shave = scale, MATLAB-exact
protocol) and the seconds per image, beside bicubic upscaling of the same LR images.

Usage: python bench/zssr_benchmarks.py [--sets Set5 Set14] [--scales 2 4] [--max_seconds T]
                                       [--iterations N] [--config default] [--device cpu] [--images bird ...]

A full run trains up to 3000 iterations per image and scale (hours per set on a laptop CPU); --max_seconds
bounds each image's training time and the table says how many iterations each image got. Prints one line
per image and a summary line per set and scale.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from machine import cpu_model  # bench/machine.py: scripts run as python bench/<name>.py
from srlab.data.datasets import discover_pairs, load_pair
from srlab.data.resize import bicubic_upscale
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.unsupervised.zssr import config_for, zssr

BENCHMARKS = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["Set5"])
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--max_seconds", type=float)
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--config", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", nargs="+", metavar="NAME", help="only these images of each set (e.g. bird)")
    parser.add_argument("--root", type=Path, default=BENCHMARKS)
    args = parser.parse_args()
    print(f"device {args.device}, CPU {cpu_model()}, {torch.get_num_threads()} threads")
    for name in args.sets:
        for scale in args.scales:
            config = config_for(args.config, scale)
            if args.iterations is not None:
                config.max_iters = args.iterations
            zssr_scores, bicubic_scores = ScoreAccumulator(), ScoreAccumulator()
            seconds, iterations = [], []
            for pair in discover_pairs(args.root / name, scale).pairs:
                if args.images and pair.name not in args.images:
                    continue
                lr, hr = load_pair(pair, scale)
                started = time.perf_counter()
                result = zssr(lr, config, seed=0, device=args.device, max_seconds=args.max_seconds)
                seconds.append(time.perf_counter() - started)
                iterations.append(sum(result.iterations))
                score = zssr_scores.update(result.image, hr, scale)
                bicubic = bicubic_scores.update(bicubic_upscale(lr, scale).clamp(0, 1), hr, scale)
                print(f"{name} x{scale} {pair.name}: ZSSR {score['psnr_y']:.2f} dB / {score['ssim_y']:.4f} (bicubic {bicubic['psnr_y']:.2f}), "
                      f"{iterations[-1]} iterations ({', '.join(result.stopped_by)}), {seconds[-1]:.1f} s", flush=True)
            z, b = zssr_scores.compute(), bicubic_scores.compute()
            print(f"== {name} x{scale}: ZSSR PSNR-Y {z['psnr_y']:.2f} SSIM-Y {z['ssim_y']:.4f} | bicubic "
                  f"{b['psnr_y']:.2f} / {b['ssim_y']:.4f} | iterations median {statistics.median(iterations):g} | "
                  f"{statistics.mean(seconds):.1f} s per image", flush=True)


if __name__ == "__main__":
    main()
