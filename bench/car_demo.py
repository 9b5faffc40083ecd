"""CAR x4 against the same upscaler trained on bicubic LR images, on a CPU-sized budget.

Trains ``configs/car_x4.yaml`` with ``srlab train``, jointly with the resampler (``--downscaler car``:
``step: car``) or on MATLAB bicubic LR images (``--downscaler bicubic``: ``step: supervised``, the same
model and recipe), then scores the run's best weights on the round trip with ``srlab car eval`` (PSNR-Y,
shave 4) on the given HR folders. Run it once per downscaler (the two can run side by side); the README's
CAR table comes from these two runs:

    PYTHONPATH=src nice -n 15 python bench/car_demo.py --downscaler car --train PHOTOS/train/HR \
        --val PHOTOS/val/HR --eval ../shared/benchmarks/Set5/HR ../shared/benchmarks/Set14/HR --out runs/car_demo

The README's figures (2026-12-07, AMD EPYC Zen 4, one thread per run, the two side by side: bicubic 15
min, CAR 51 min; 5,880 iterations) are the two runs this script makes at seed 0 (run as ``srlab train`` with
``--set`` overrides equal to the config as it now stands, then ``srlab car eval``), with the 13 photos of
``scripts/make_photo_test2k.sh`` as one more ``--eval`` folder; ``car eval`` scores the weights of the best
validation (``--weights last`` for the last).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab.cli.main import main as srlab

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "car_x4.yaml"
STEPS = {"car": "car", "bicubic": "supervised"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="folder of HR training images")
    parser.add_argument("--val", required=True, help="folder of HR validation images (best weights)")
    parser.add_argument("--eval", nargs="+", required=True, help="folders of HR evaluation images")
    parser.add_argument("--out", default="runs/car_demo")
    parser.add_argument("--downscaler", choices=tuple(STEPS), required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_dir = Path(args.out) / f"{args.downscaler}_seed{args.seed}"
    code = srlab(["train", "--config", str(CONFIG), "--train_dir", args.train, "--val_dir", args.val,
                  "--out", str(run_dir), "--set", f"step={STEPS[args.downscaler]}", "--set", f"seed={args.seed}"])
    if code == 0:
        code = srlab(["car", "eval", str(run_dir), args.val, *args.eval])
    raise SystemExit(code)


if __name__ == "__main__":
    main()
