"""Peak memory of ``srlab upscale`` on images too large for memory, and over batches of small images.

Usage: python bench/bench_large_image.py [--sizes 2048x2048 16384x256] [--scale 4] [--model bicubic]
                                         [--threads 2] [--batch 100 1000] [--eval 100] [--workdir DIR]

Every measurement runs ``python -m srlab ...`` in a fresh process and reads that process's peak
resident set size from the kernel (``ru_maxrss`` of ``os.wait4``), so nothing else in this script
counts. Inputs are synthetic and photo-like (Perlin noise at two scales plus grain, made and written
as PNG by libvips without ever holding the image), cached in the work folder between runs.

Large images: each size is upscaled with ``--stream always`` (strips) and, where it fits in this
machine's memory, ``--stream never`` (the whole image in memory) for comparison. A strip holds about
the same number of output pixels whatever the image's width, so a short, full-width image (16384x256:
64k-pixel-wide output rows) measures the peak of a 16384x16384 one in a 64th of the time.
Batches: ``srlab upscale`` of N small images and ``srlab eval`` of N HR images; the peak RSS must
not grow with N (nothing is kept per image).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image

from srlab.data.stream import available_memory
from machine import cpu_model  # bench/machine.py: scripts run as python bench/<name>.py


def synthetic_photo(path: Path, width: int, height: int) -> Path:
    """A width x height RGB PNG of smooth structure, edges and grain, written by libvips strip by strip."""
    if path.exists():
        return path
    bands = []
    for seed in range(3):
        coarse = pyvips.Image.perlin(width, height, cell_size=max(8, min(width, height) // 16), seed=seed)
        fine = pyvips.Image.perlin(width, height, cell_size=16, seed=seed + 10)
        grain = pyvips.Image.gaussnoise(width, height, sigma=6, mean=0, seed=seed + 20)
        bands.append(coarse * 90 + fine * 40 + grain + 128)
    image = bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
    tmp = path.with_suffix(".part.png")
    image.pngsave(str(tmp), compression=1)
    tmp.rename(path)
    return path


def run_measured(argv: list[str], threads: int) -> tuple[float, float, float]:
    """Run ``python -m srlab argv`` in a fresh process; returns (seconds, CPU seconds, peak RSS in MiB)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), VIPS_CONCURRENCY=str(threads))
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "srlab", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; tell Popen
    if process.returncode != 0:
        raise SystemExit(f"srlab {' '.join(argv)} failed:\n{error}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports KiB


def bench_large(work: Path, sizes: list[str], scale: int, model: str, threads: int,
                png_compression: int) -> list[tuple]:
    rows = []
    for size in sizes:
        width, height = map(int, size.split("x"))
        source = synthetic_photo(work / f"synthetic_{size}.png", width, height)
        out_pixels = width * height * scale * scale
        modes = ["always"]
        if out_pixels * 96 < available_memory() / 2:  # the whole-image path's footprint, with margin
            modes.append("never")
        for mode in modes:
            out = work / f"out_{size}_{mode}"
            seconds, cpu, peak = run_measured(
                ["upscale", str(source), "-o", str(out), "--model", model, "--scale", str(scale),
                 "--device", "cpu", "--stream", mode, "--png_compression", str(png_compression)], threads)
            written = next(out.iterdir())
            rows.append((size, f"{width * scale}x{height * scale}", mode, seconds, cpu, peak,
                         written.stat().st_size / 2**20))
            written.unlink()
    return rows


def bench_batches(work: Path, counts: list[int], eval_count: int, model: str, threads: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    folder = work / f"small_{max(counts)}"
    if not folder.exists():
        folder.mkdir()
        base = np.asarray(Image.open(synthetic_photo(work / "synthetic_512x512.png", 512, 512)))
        for i in range(max(counts)):
            y, x = rng.integers(0, 512 - 96, 2)
            Image.fromarray(base[y : y + 96, x : x + 128]).save(folder / f"img{i:04d}.png")
    rows = []
    for count in counts:
        subset = work / f"subset_{count}"
        if not subset.exists():
            subset.mkdir()
            for p in sorted(folder.iterdir())[:count]:
                (subset / p.name).symlink_to(p)
        out = work / f"batch_out_{count}"
        seconds, cpu, peak = run_measured(["upscale", str(subset), "-o", str(out), "--model", model, "--scale", "2",
                                      "--device", "cpu"], threads)
        rows.append(("upscale", count, seconds, cpu, peak))
    if eval_count:
        subset = work / f"subset_{eval_count}"
        seconds, cpu, peak = run_measured(["eval", "--model", model, "--scale", "2", "--device", "cpu",
                                      "--data", str(subset), "--quiet"], threads)
        rows.append(("eval", eval_count, seconds, cpu, peak))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["2048x2048", "4096x4096", "16384x256"], help="WxH inputs")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--model", default="bicubic")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--png_compression", type=int, default=1, help="zlib level of the large outputs")
    parser.add_argument("--batch", type=int, nargs="*", default=[100, 1000], help="batch sizes for upscale")
    parser.add_argument("--eval", type=int, default=100, help="images for the eval run (0: none)")
    parser.add_argument("--workdir", type=Path, help="where inputs are cached and outputs written")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="srlab_bench_"))
    work.mkdir(parents=True, exist_ok=True)

    print(f"{cpu_model()}, {os.cpu_count()} CPUs, {args.threads} threads (torch and libvips), "
          f"{available_memory() / 2**30:.1f} GiB available, model {args.model}, PNG compression "
          f"{args.png_compression} for the large outputs")
    if args.sizes:
        print(f"\n{'input':>12} {'output':>12} {'--stream':>8} {'wall s':>7} {'CPU s':>7} {'peak RSS MiB':>13} "
              f"{'PNG MiB':>8}")
        for inp, out, mode, seconds, cpu, peak, size in bench_large(work, args.sizes, args.scale, args.model,
                                                                    args.threads, args.png_compression):
            print(f"{inp:>12} {out:>12} {mode:>8} {seconds:7.1f} {cpu:7.1f} {peak:13.0f} {size:8.0f}")
    if args.batch or args.eval:
        print(f"\n{'command':>8} {'images':>7} {'wall s':>7} {'CPU s':>7} {'peak RSS MiB':>13}   (128x96 inputs, x2)")
        for command, count, seconds, cpu, peak in bench_batches(work, args.batch or [args.eval], args.eval,
                                                                args.model, args.threads):
            print(f"{command:>8} {count:7d} {seconds:7.1f} {cpu:7.1f} {peak:13.0f}")


if __name__ == "__main__":
    main()
