"""Which bundled model is the default of `srlab upscale` / `eval`: CPU latency of the candidates.

Usage: python bench/bench_default_model.py [--size 96] [--runs 5] [--scale 4]

Times one forward pass of each candidate on an LR image of size x size (x4 by default), one torch
thread, runs interleaved (bench/machine.py) so that load from other jobs on a shared machine falls on
all of them alike: compare the ratios to rdsr_s, not the milliseconds. Weights do not change the time,
so the models are built without them (re-parameterisable ones in the fused form their official weights
hold). PSNR comes from `srlab eval` on Set5 / Set14 (README, "Which model is the default").
"""

from __future__ import annotations

import argparse

import torch

import srlab
from srlab.models import paper_parameter_count
from srlab.models.complexity import count_macs
from srlab.models.reparam import has_deploy_form

from machine import cpu_model, median_ms

CANDIDATES = ("rdsr_s", "etds_l", "bsrn_s", "bsrn", "rlfn", "rlfn_s", "rfdn_aim", "carn_m", "camixersr_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="LR side in pixels (default 96)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(CANDIDATES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.rand(1, 3, args.size, args.size)
    models = {}
    for name in args.models:
        model = srlab.create_model(name, scale=args.scale).eval()
        models[name] = srlab.deploy(model) if has_deploy_form(model) else model
    fns = {name: (lambda m=m: _forward(m, x)) for name, m in models.items()}
    times = median_ms(fns, runs=args.runs, warmup=1)
    base = times.get("rdsr_s", next(iter(times.values())))
    print(f"{cpu_model()}, 1 thread, LR {args.size}x{args.size} x{args.scale}, median of {args.runs} interleaved runs")
    print(f"{'model':<12} {'params':>9} {'GMACs':>7} {'ms':>8} {'x rdsr_s':>8}")
    for name, model in models.items():
        macs = count_macs(model, (args.size, args.size)) / 1e9
        print(f"{name:<12} {paper_parameter_count(model):>9,} {macs:>7.2f} {times[name]:>8.1f} {times[name] / base:>8.2f}")


def _forward(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        model(x)


if __name__ == "__main__":
    main()
