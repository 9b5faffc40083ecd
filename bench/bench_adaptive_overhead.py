"""Overhead of the adaptive engine with one route: whole-image forward vs the ClassSR/ARM patch protocol.

Usage: python bench/bench_adaptive_overhead.py [--model fsrcnn_etds] [--scale 4] [--size 512]
                                               [--batch 64 324] [--repeats 5] [--threads 2]

Runs, interleaved in every repeat (medians reported), a zoo network (fresh weights, eval mode, float32)
on a size x size LR image: (a) the static forward on the whole image, in the default and in the
channels-last memory order, (b) ``adaptive_upscale`` with that network as the only route (32x32
patches, stride 28) at each ``--batch`` size, (c) the engine's own work alone: splitting the image and
merging the patch outputs, with no network, and (d) the upscaling region mode
(``adaptive_upscale_regions``: 32x32 blocks routed, one route here, run as ``--region``-pixel regions
with 4 pixels of context, channels-last, no overlap).

The patch protocol computes more than the whole image: patches overlap (32/28 per axis) and each is
zero-padded at its own border, so the engine runs about (32/28)^2 times the pixels. The MAC ratio
printed beside the time ratio is that inherent cost; the time ratio divided by it is the engine's
overhead beyond the protocol's extra arithmetic. The region mode computes only the margins twice
(its MAC ratio is printed too).

Measured 2026-12-05 (Intel Xeon AVX-512/AMX, 2 cores, nearly idle; defaults, ``--repeats 5 --region
128 512``; seconds, median): static whole image 0.527 / 0.339 (1 / 2 threads), channels-last 0.391 /
0.202; protocol engine, batch 64: 0.554 / 0.296 (1.42x / 1.47x the channels-last static forward);
region mode 128: 0.414 / 0.200 (1.06x / 0.99x, MACs 1.096x), region mode 512 (one window): 0.381 /
0.211 (0.97x / 1.04x). With one route the region mode is within the 10 % the issue allows of the
fastest static forward; the 32/28 protocol is not (27 % more MACs by itself).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from srlab.adaptive import adaptive_upscale, adaptive_upscale_regions, blend_patches, split_patches
from srlab.adaptive.reference import StaticRoutes
from srlab.models.complexity import count_macs
from srlab.models.registry import build_model
from machine import cpu_model  # bench/machine.py: scripts run as python bench/<name>.py


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fsrcnn_etds")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 324])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--region", type=int, nargs="+", default=[128, 512], help="region-mode region sizes (LR pixels)")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    model = build_model(opts.model, scale=opts.scale).eval()
    method = StaticRoutes(model)
    lr = torch.rand(1, 3, opts.size, opts.size)
    patches, grid = split_patches(lr, 32, 28)
    with torch.no_grad():
        outputs = model(patches[:1]).expand(grid.count, -1, -1, -1).contiguous()

    def static() -> None:
        with torch.no_grad():
            model(lr)

    lr_cl = lr.contiguous(memory_format=torch.channels_last)

    def static_cl() -> None:
        with torch.no_grad():
            model(lr_cl)

    cases = {"static whole image": static, "static whole image, channels-last": static_cl}
    for batch in opts.batch:
        cases[f"engine, 1 route, batch {batch}"] = lambda b=batch: adaptive_upscale(method, lr, batch_size=b)
    for region in opts.region:
        cases[f"engine, region mode {region}, 1 route"] = lambda r=region: adaptive_upscale_regions(method, lr, region=r)
    cases["engine: split alone"] = lambda: split_patches(lr, 32, 28)
    cases["engine: merge alone"] = lambda: blend_patches(outputs, grid, opts.scale)
    for fn in cases.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(opts.repeats):
        for name, fn in cases.items():
            times[name].append(seconds(fn))

    _, stats = adaptive_upscale(method, lr)
    region_macs = {region: adaptive_upscale_regions(method, lr, region=region)[1].macs_spent for region in opts.region}
    macs_static = count_macs(model, (opts.size, opts.size))
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(os.cpu_count() = {os.cpu_count()})")
    print(f"{opts.model} x{opts.scale}, LR {opts.size}x{opts.size}; patches {grid.count} "
          f"({grid.rows}x{grid.cols} of 32x32, stride 28), output {stats.out_hw[0]}x{stats.out_hw[1]}")
    print(f"MACs: static {macs_static / 1e9:.2f} G, engine {stats.macs_spent / 1e9:.2f} G "
          f"(ratio {stats.macs_spent / macs_static:.3f}, the protocol's overlap and per-patch borders), "
          + ", ".join(f"region mode {r}: {m / 1e9:.2f} G (ratio {m / macs_static:.3f})" for r, m in region_macs.items()))
    base = statistics.median(times["static whole image"])
    print(f"{'case':40s} {'median s':>9s} {'vs static':>9s} {'per MAC':>8s}   ({opts.repeats} interleaved repeats)")
    for name, values in times.items():
        med = statistics.median(values)
        spent = next((m for r, m in region_macs.items() if f"region mode {r}," in name), stats.macs_spent)
        per_mac = med / base / (spent / macs_static) if name.startswith("engine,") else float("nan")
        print(f"{name:40s} {med:9.3f} {med / base:9.3f} {per_mac:8.3f}")


if __name__ == "__main__":
    main()
