"""CAR x4 against the same upscaler trained on bicubic LR images, on a CPU-sized budget.

Trains one pair with the recipe below (srlab.train.car), jointly with the resampler (``--downscaler car``)
or on MATLAB bicubic LR images (``--downscaler bicubic``), then scores its round trip on the given HR
folders (PSNR-Y, shave 4). Run it once per downscaler (the two can run side by side); the README's CAR
table comes from these two runs:

    PYTHONPATH=src nice -n 15 python bench/car_demo.py --downscaler car --train PHOTOS/train/HR \
        --eval PHOTOS/val/HR ../shared/benchmarks/Set5/HR ../shared/benchmarks/Set14/HR --out runs/car_demo
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from srlab.train.car import CarTrainConfig, evaluate_round_trip, train_car

RECIPE = CarTrainConfig(scale=4, iterations=1500, patch_size=48, batch_size=8, lr=5e-4, resampler_channels=64,
                        upscaler_channels=32, upscaler_blocks=8, log_every=50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="folder of HR training images")
    parser.add_argument("--eval", nargs="+", required=True, help="folders of HR evaluation images")
    parser.add_argument("--out", default="runs/car_demo")
    parser.add_argument("--iterations", type=int, default=RECIPE.iterations)
    parser.add_argument("--downscaler", choices=("car", "bicubic"), required=True)
    parser.add_argument("--seed", type=int, default=RECIPE.seed)
    args = parser.parse_args()
    config = dataclasses.replace(RECIPE, iterations=args.iterations, downscaler=args.downscaler, seed=args.seed)
    out = Path(args.out) / f"{args.downscaler}_seed{args.seed}.pt"
    pair = train_car(config, args.train, out, log=lambda line: print(args.downscaler, line, flush=True))
    for folder in args.eval:
        scores = evaluate_round_trip(pair, folder, args.downscaler)
        name = Path(folder).parent.name if Path(folder).name == "HR" else Path(folder).name
        print(f"{args.downscaler} {name} mean_psnr_y {scores['mean']:.3f} " + " ".join(
            f"{name} {value:.2f}" for name, value in scores.items() if name != "mean"), flush=True)


if __name__ == "__main__":
    main()
