"""Sampling time and peak memory of the diffusion SR models (every registered model with ``set_sampler``:
sr3, sr3_tiny, ...) against the number of sampler steps, for one LR image.

Usage: python bench/diffusion_sampling.py [--models sr3_tiny sr3] [--steps 1 4 16 50 250] [--lr_size 256]
                                          [--scale 4] [--threads 1] [--max_seconds 120]

Each (model, steps) runs in a fresh process: random weights (seeded; the time does not depend on them),
a random LR image of ``lr_size`` x ``lr_size``, one call of the model's forward (its sampler, with the
default sampler kind of the model and ``--steps``), timed with ``time.perf_counter``. Peak memory is that
process's peak resident set size (``ru_maxrss`` from ``os.wait4``) less its resident size just before
sampling (model, input, libraries loaded): what sampling itself adds. A sample whose time, estimated
from the one-step run, would exceed ``--max_seconds`` is not run: its time is given as the per-step time
(from the two largest step counts measured, so the fixed cost is left out) times the steps, marked
``est.``, and its memory as that of the largest run (sampling keeps no per-step state, so the peak does
not grow with the steps; the measured rows show it). One run per row: on a shared machine the times are
noisy; compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from machine import cpu_flags, cpu_model  # bench/machine.py: scripts run as python bench/<name>.py


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(model_name: str, scale: int, lr_size: int, steps: int, threads: int) -> None:
    """Sample once and print {"seconds", "rss_before_mib"} as JSON (the parent reads the peak)."""
    import torch

    import srlab

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = srlab.create_model(model_name, scale=scale).eval()
    model.set_sampler(steps=steps)
    lr = torch.rand(1, 3, lr_size, lr_size)
    before = _rss_mib()
    started = time.perf_counter()
    out = model(lr)
    seconds = time.perf_counter() - started
    assert out.shape[-1] == lr_size * scale
    print(json.dumps({"seconds": seconds, "rss_before_mib": before}))


def measure(model: str, args: argparse.Namespace, steps: int) -> dict:
    """Run :func:`child` in a fresh process: seconds, and the peak RSS it added while sampling."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    argv = [sys.executable, __file__, "--child", model, str(steps), "--scale", str(args.scale),
            "--lr_size", str(args.lr_size), "--threads", str(args.threads)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode:
        raise SystemExit(f"{model} with {steps} steps failed:\n{stderr[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": result["seconds"], "peak_mib": usage.ru_maxrss / 1024 - result["rss_before_mib"]}


def diffusion_models(scale: int) -> list[str]:
    """The registered models with a sampler (``set_sampler``) at ``scale``."""
    import srlab
    from srlab.models import list_models, model_info

    return [name for name in list_models() if scale in model_info(name).scales
            and hasattr(srlab.create_model(name, scale=scale), "set_sampler")]


def bench_model(model: str, args: argparse.Namespace) -> list[dict]:
    rows, measured = [], {}
    for steps in sorted(args.steps):
        per_step = None
        if len(measured) >= 2:
            (s1, a), (s2, b) = sorted(measured.items())[-2:]
            per_step = (b["seconds"] - a["seconds"]) / (s2 - s1)
        elif measured:
            per_step = next(iter(measured.values()))["seconds"] / next(iter(measured))
        if per_step is not None and per_step * steps > args.max_seconds:
            largest = measured[max(measured)]
            rows.append({"model": model, "steps": steps, "seconds": per_step * steps, "per_step": per_step,
                         "peak_mib": largest["peak_mib"], "estimated": True})
            continue
        measured[steps] = measure(model, args, steps)
        rows.append({"model": model, "steps": steps, **measured[steps],
                     "per_step": measured[steps]["seconds"] / steps, "estimated": False})
        print(f"  {model} {steps} steps: {measured[steps]['seconds']:.2f} s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="default: every registered diffusion model at --scale")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4, 16, 50, 250])
    parser.add_argument("--lr_size", type=int, default=256)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max_seconds", type=float, default=120.0,
                        help="estimate (per-step time x steps) a sample that would take longer than this")
    parser.add_argument("--json", metavar="OUT.json", help="also write the rows as JSON")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.scale, args.lr_size, int(args.child[1]), args.threads)
        return
    models = args.models or diffusion_models(args.scale)
    side = args.lr_size * args.scale
    units = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in cpu_flags()]
    print(f"CPU: {cpu_model()} ({', '.join(units) or 'no AVX-512'}), {os.cpu_count()} logical CPUs; "
          f"{args.threads} thread(s); LR {args.lr_size}x{args.lr_size} -> x{args.scale} "
          f"{side}x{side}; one run per row (noisy on a shared machine)")
    rows = [row for model in models for row in bench_model(model, args)]
    print("| model | steps | seconds | seconds per step | peak RSS added, MiB |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        mark = " (est.)" if row["estimated"] else ""
        memory = f"{row['peak_mib']:.0f}" + (" (largest run's)" if row["estimated"] else "")
        print(f"| {row['model']} | {row['steps']} | {row['seconds']:.1f}{mark} | {row['per_step']:.2f} | {memory} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "threads": args.threads, "lr_size": args.lr_size, "scale": args.scale,
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
