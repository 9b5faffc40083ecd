"""Plain eager forward against the path srlab chooses (``--path auto``, srlab.inference.paths), side by side.

Usage: python bench/bench_latency.py [--models imdn rlfn ...] [--scale 4] [--lr_size 180x320]
                                     [--threads 1 2] [--repeats 5] [--precision auto|fp32] [--psnr]
                                     [--compile_from SECONDS]

For each thread count (1 first) and model: the path choice (made once and cached in $SRLAB_HOME, its
first-call and compile time reported apart), then eager and the chosen path timed interleaved (A, B, A,
B, ...) so that load from other jobs on a shared machine falls on both alike; the table gives both
medians, their ratio (chosen / eager) and each one's share of the CPU's measured fp32 peak (MACs x 2 /
time / peak, the peak timed here on a large float32 matmul at the same thread count). The CPU model and
its vector/matrix flags head the output: machines change between sessions.

Weights: the official ones where ../shared has them (the bf16 check depends on them), else srlab's
bundled ones, else a random initialisation (speed does not depend on the weights).
``--compile_from S``: ``auto`` tries the compiled paths (``compile``, ``bf16_compile``) where one eager
forward takes S seconds or more (srlab's default, 2 s, spares a single image the compile; 0: as for a run
of many inputs of one size, where the compile is paid once). The ``compile s`` column: the first call of
each compiled path tried (building its package, or loading it where $SRLAB_HOME/compiled holds it:
srlab.inference.aot).
``--psnr``: also the PSNR-Y drop of each reduced-precision path against fp32 eager on Set5 and Set14.

``--contention``: the thread policy (srlab.inference.threads) on a shared machine instead. A busy-loop
process keeps one core busy while fresh processes time the first model's eager forward with OpenMP's
default wait policy (torch imported before srlab) at 1 and 2 threads, then with srlab's (PASSIVE, and
the thread count srlab picks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from machine import cpu_flags, cpu_model, median_ms  # bench/machine.py: scripts run as python bench/<name>.py
from srlab.cli.profile import lr_size
from srlab.inference.path_cache import PathCache
from srlab.inference.paths import COMPILE_MIN_EAGER_S, PATHS, OnPath, PathModel, build_path
from srlab.models.complexity import count_macs
from srlab.models.create import model_with_weights
from srlab.models.reparam import deploy

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONVOLUTIONAL = ["imdn", "rfdn", "rlfn", "bsrn", "span", "rdsr_s"]
ATTENTION = ["safmn", "swinir_light", "omnisr", "elan_light"]
OFFICIAL_X4 = {
    "imdn": "imdn/IMDN_x4.pth",
    "rlfn": "rlfn/rlfn_x4.pth",
    "bsrn": "bsrn/net_g_BSRN_x4.pth",
    "span_ch28": "span/team38_span_ch28_slim.pth",
}
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx512_fp16")


def load(name: str, scale: int) -> tuple[nn.Module, str]:
    official = SHARED / "official-weights" / OFFICIAL_X4.get(name, "-")
    checkpoint = official if scale == 4 and official.is_file() else None
    model, weights = model_with_weights(name, scale=scale, checkpoint=checkpoint, fresh=True)
    return deploy(model).eval(), "official" if checkpoint else weights.split()[0]  # "random initialisation"


PEAK_N = 1024  # the fp32 peak: an n x n float32 matmul (2 n^3 FLOPs), timed interleaved with the models


# One timing in a fresh process: argv = policy ("default" or "srlab"), threads ("auto": srlab's choice),
# model, scale, H, W, repeats.
_CHILD = """
import json, statistics, sys, time
policy, threads, name, scale, h, w, repeats = sys.argv[1:]
if policy == "default":
    import torch  # OpenMP loads with its own default wait policy, before srlab could set one
from srlab.inference.threads import policy_threads
from srlab.models.create import create_model
import os, torch
torch.set_num_threads(policy_threads() if threads == "auto" else int(threads))
model = create_model(name, scale=int(scale)).eval()
x = torch.rand(1, 3, int(h), int(w))
times = []
with torch.inference_mode():
    model(x)
    for _ in range(int(repeats)):
        started = time.perf_counter()
        model(x)
        times.append(1e3 * (time.perf_counter() - started))
print(json.dumps({"threads": torch.get_num_threads(), "wait": os.environ.get("OMP_WAIT_POLICY", "unset"),
                  "ms": statistics.median(times)}))
"""


def contention(name: str, scale: int, size: tuple[int, int], repeats: int) -> None:
    configs = [("default", "1"), ("default", "2"), ("srlab", "2"), ("srlab", "auto")]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1)
        print(f"{name} x{scale} eager forward, LR {size[0]}x{size[1]}, a busy-loop process beside it "
              f"(median of {repeats}, each configuration twice, interleaved)")
        for round_ in range(2):
            for policy, threads in configs:
                done = subprocess.run([sys.executable, "-c", _CHILD, policy, threads, name, str(scale), *map(str, size),
                                       str(repeats)], capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                wait = "OpenMP default" if policy == "default" else f"OMP_WAIT_POLICY={result['wait']}"
                asked = "srlab's choice" if threads == "auto" else f"{threads} asked"
                print(f"  round {round_ + 1}: {wait:<24} {asked:<15} -> {result['threads']} thread(s): "
                      f"{result['ms']:8.1f} ms", flush=True)
    finally:
        busy.kill()
        busy.wait()


def psnr_drops(model: nn.Module, scale: int) -> dict[str, dict[str, float]]:
    """PSNR-Y drop of every reduced-precision path the hardware runs natively, on Set5 and Set14 (the compiled
    ones left out: a compile per image size, and srlab judges them by their dtype's drop)."""
    from srlab.data.datasets import discover_pairs
    from srlab.inference.evaluate import evaluate_folder
    from srlab.inference.paths import unavailable_reason

    drops = {}
    for name, path in PATHS.items():
        if path.exact or path.compiled or unavailable_reason(path, model, torch.device("cpu"), "auto"):
            continue
        on_path = OnPath(model, build_path(path, model))
        for data in ("Set5", "Set14"):
            folder = discover_pairs(SHARED / "benchmarks" / data, scale)
            eager, reduced = (evaluate_folder(m, folder, progress=False).scores["psnr_y"] for m in (model, on_path))
            drops.setdefault(name, {})[data] = eager - reduced
    return drops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=CONVOLUTIONAL + ATTENTION)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--lr_size", type=lr_size, default=(180, 320), help="HxW (default 180x320: 1280x720 at x4)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32"])
    parser.add_argument("--compile_from", type=float, default=COMPILE_MIN_EAGER_S,
                        help="auto tries compiling where eager takes this many seconds (0: always)")
    parser.add_argument("--psnr", action="store_true", help="PSNR-Y drops of reduced-precision paths on Set5/Set14")
    parser.add_argument("--contention", action="store_true", help="the thread policy beside a busy-loop process")
    args = parser.parse_args()
    if args.contention:
        print(f"CPU: {cpu_model()}; usable CPUs: {len(os.sched_getaffinity(0))}")
        contention(args.models[0], args.scale, args.lr_size, args.repeats)
        return

    flags = cpu_flags()
    print(f"CPU: {cpu_model()}; flags: {' '.join(f for f in FLAGS if f in flags) or 'none of ' + ', '.join(FLAGS)}")
    print(f"torch {torch.__version__}; LR {args.lr_size[0]}x{args.lr_size[1]} x{args.scale}; "
          f"{args.repeats} interleaved runs per path; precision {args.precision}; compiling from {args.compile_from:g} s "
          f"of eager; SRLAB_HOME cache {PathCache().file}")
    shape = (1, 3, *args.lr_size)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    a, b = torch.rand(PEAK_N, PEAK_N), torch.rand(PEAK_N, PEAK_N)
    for threads in args.threads:
        print(f"\n{threads} thread(s); peak: fp32 {PEAK_N}x{PEAK_N} matmul timed between the model runs")
        print(f"{'model':<13} {'weights':<9} {'GMACs':>6} {'peak GF/s':>9} {'eager ms':>9} {'path':<14} {'path ms':>9} "
              f"{'ratio':>6} {'eager%pk':>8} {'path%pk':>8} {'choice s':>8} {'compile s':>9}  skipped")
        for name in args.models:
            model, weights = load(name, args.scale)
            macs = count_macs(model, args.lr_size)
            torch.set_num_threads(threads)
            on_path = PathModel(model, precision=args.precision, cache=PathCache(), compile_from=args.compile_from)
            started = time.perf_counter()
            with torch.inference_mode():
                selection = on_path.selection(shape)
                choice_s = time.perf_counter() - started
                chosen = on_path.callable_for(selection.path)
                ms = median_ms({"eager": lambda: model(x), "path": lambda: chosen(x), "peak": lambda: a @ b},
                               runs=args.repeats, warmup=1)
            peak = 2 * PEAK_N**3 / (ms.pop("peak") / 1e3)
            share = {k: 2 * macs / (v / 1e3) / peak for k, v in ms.items()}
            skipped = "; ".join(f"{c.path}: {c.skipped}" for c in selection.candidates if c.skipped)
            cached = " (cached)" if selection.cached else ""
            compiled = "/".join(f"{c.first_call_s:.0f}" for c in selection.candidates
                                if PATHS[c.path].compiled and c.first_call_s is not None) or "-"
            print(f"{name:<13} {weights:<9} {macs / 1e9:6.2f} {peak / 1e9:9.0f} {ms['eager']:9.1f} {selection.path:<14} "
                  f"{ms['path']:9.1f} {ms['path'] / ms['eager']:6.2f} {share['eager']:8.1%} {share['path']:8.1%} "
                  f"{choice_s:8.1f} {compiled:>9}{cached}  {skipped}", flush=True)
            if args.psnr and threads == args.threads[0]:
                for path, drops in psnr_drops(model, args.scale).items():
                    print(f"{'':<13} {path} PSNR-Y drop: " + ", ".join(f"{k} {v:.4f} dB" for k, v in drops.items()))


if __name__ == "__main__":
    main()
