"""Speed of srlab's MATLAB-exact bicubic downscaling against PIL, and why PIL is not the protocol.

Usage: python bench/bench_resize.py [--runs N] [--warmup N]

Times x2/x3/x4 downscaling of a 2040x1356 RGB image (DIV2K-sized) with torch limited to 1 and to
2 threads. srlab runs on a float tensor already in memory (a data pipeline's situation); PIL runs
on the uint8 image. PIL does not use torch's threads, so its column is the same work measured
again under each setting. On a shared machine, read the ratios rather than the absolute times.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image
from skimage import data

from srlab.data.resize import bicubic_downscale
from machine import median_ms  # bench/machine.py: scripts run as python bench/<name>.py

SCALES = (2, 3, 4)
THREADS = (1, 2)


def make_image() -> Image.Image:
    # A natural photo at DIV2K size (divisible by 2, 3 and 4, so no mod-crop is needed).
    return Image.fromarray(data.astronaut()).resize((2040, 1356), Image.BICUBIC)


def pil_downscale(img: Image.Image, scale: int) -> Image.Image:
    size = (img.width // scale, img.height // scale)
    return img.resize(size, Image.BICUBIC, reducing_gap=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per cell (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    args = parser.parse_args()

    img = make_image()
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous().float() / 255

    print(f"torch {torch.__version__}, Pillow {PIL.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (shared machine: other jobs skew timings)")
    print(f"image {img.width}x{img.height} RGB, median of {args.runs} runs after "
          f"{args.warmup} warm-up, milliseconds; ratio = srlab time / PIL time in the same setting\n")

    methods = {
        "srlab quantize": lambda s: bicubic_downscale(x, s, quantize=True),
        "srlab float": lambda s: bicubic_downscale(x, s),
        "PIL bicubic": lambda s: pil_downscale(img, s),
    }
    header = f"{'scale':<6}{'method':<16}" + "".join(f"{f'{t} thread(s)':>13}" for t in THREADS)
    header += "".join(f"{f'ratio {t}t':>10}" for t in THREADS)
    print(header)
    print("-" * len(header))
    previous = torch.get_num_threads()
    for scale in SCALES:
        times = {name: [] for name in methods}
        for threads in THREADS:
            torch.set_num_threads(threads)
            calls = {name: (lambda fn=fn: fn(scale)) for name, fn in methods.items()}
            for name, ms in median_ms(calls, args.runs, args.warmup).items():
                times[name].append(ms)
        for name in methods:
            ratios = [t / p for t, p in zip(times[name], times["PIL bicubic"])]
            row = f"x{scale:<5}{name:<16}" + "".join(f"{t:>13.1f}" for t in times[name])
            print(row + "".join(f"{r:>9.2f}x" for r in ratios))
    torch.set_num_threads(previous)

    print("\nDifference from the MATLAB-exact result (srlab quantize), in 8-bit levels")
    header = f"{'scale':<6}{'method':<16}{'max':>6}{'mean':>8}{'values differing':>19}"
    print(header)
    print("-" * len(header))
    for scale in SCALES:
        exact = (bicubic_downscale(x, scale, quantize=True) * 255).round().permute(1, 2, 0)
        others = {
            "PIL bicubic": torch.from_numpy(np.asarray(pil_downscale(img, scale)).astype(np.float64)),
            "srlab float": (bicubic_downscale(x, scale).clamp(0, 1) * 255).round().permute(1, 2, 0),
        }
        for name, out in others.items():
            diff = (out.double() - exact.double()).abs()
            print(f"x{scale:<5}{name:<16}{diff.max():>6.0f}{diff.mean():>8.3f}"
                  f"{100 * (diff > 0).double().mean():>18.1f}%")
    compare_with_matlab_files()


def compare_with_matlab_files() -> None:
    """PIL against the MATLAB-made LR files themselves, where the benchmark folder is present."""
    root = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
    print(f"\nPIL bicubic against the MATLAB-made LR files of Set5 + Set14 ({root})")
    for scale in SCALES:
        worst, differing, total = 0, 0, 0
        for hr_path in sorted(root.glob("*/HR/*.png")):
            hr = Image.open(hr_path).convert("RGB")
            hr = hr.crop((0, 0, hr.width - hr.width % scale, hr.height - hr.height % scale))
            lr_path = hr_path.parents[1] / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
            lr = np.asarray(Image.open(lr_path).convert("RGB"), dtype=np.int64)
            diff = np.abs(np.asarray(pil_downscale(hr, scale), dtype=np.int64) - lr)
            worst, differing, total = max(worst, diff.max()), differing + (diff > 0).sum(), total + diff.size
        if total:
            print(f"x{scale}: max {worst} levels, {100 * differing / total:.1f}% of values differ")
        else:
            print("benchmark images not found")
            return


if __name__ == "__main__":
    main()
