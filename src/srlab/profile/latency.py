"""Inference latency: the median and inter-quartile range of repeated timed runs after warm-up.

Each run is timed with ``time.perf_counter``; on CUDA the device is synchronised before the clock starts
and before it stops, so the time is that of the kernels, not of their launch. The number of CPU threads
torch uses is set for the measurement (and restored after) and reported with the figures, since CPU
timings mean little without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from srlab.errors import SrlabError


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    q1_ms: float
    q3_ms: float
    iqr_ms: float
    min_ms: float
    mean_ms: float
    repeats: int
    warmup: int
    threads: int
    device: str

    def to_json(self) -> dict:
        return asdict(self)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op CPU threads (None: as they are); yields the number used."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise SrlabError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    run: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> LatencyStats:
    """Time ``run()`` ``repeats`` times after ``warmup`` untimed calls."""
    return measure_interleaved([run], device=device, repeats=repeats, warmup=warmup, threads=threads)[0]


def measure_interleaved(
    runs: Sequence[Callable[[], object]],
    *,
    device: torch.device | str = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> list[LatencyStats]:
    """Time several ``runs`` side by side: ``warmup`` untimed rounds, then ``repeats`` timed rounds, each
    calling every run once in turn (A, B, A, B, ...). A change in the machine's load (a shared CPU, a clock
    boost ending) then falls on all of them alike, and their ratios stay meaningful where a run after run
    measurement would compare different machines. One :class:`LatencyStats` per run, in order."""
    device = torch.device(device)
    if repeats < 1:
        raise SrlabError(f"--repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise SrlabError(f"--warmup must be >= 0, got {warmup}")
    times: list[list[float]] = [[] for _ in runs]
    with torch_threads(threads) as used, torch.inference_mode():
        for _ in range(warmup):
            for run in runs:
                run()
        _synchronize(device)
        for _ in range(repeats):
            for run, run_times in zip(runs, times):
                _synchronize(device)
                start = time.perf_counter()
                run()
                _synchronize(device)
                run_times.append((time.perf_counter() - start) * 1000)
    return [_stats(run_times, warmup=warmup, threads=used, device=device) for run_times in times]


def _stats(times: list[float], *, warmup: int, threads: int, device: torch.device) -> LatencyStats:
    q1, median, q3 = (float(v) for v in np.percentile(times, [25, 50, 75]))
    return LatencyStats(
        median_ms=median, q1_ms=q1, q3_ms=q3, iqr_ms=q3 - q1, min_ms=float(min(times)),
        mean_ms=float(np.mean(times)), repeats=len(times), warmup=warmup, threads=threads, device=str(device),
    )


def model_latency(
    model: nn.Module,
    lr_size: tuple[int, int],
    *,
    device: torch.device | str = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> LatencyStats:
    """Latency of super-resolving one random 1x3xHxW image (``lr_size`` = (H, W)) with ``model`` already
    on ``device``, through the generic inference path (``upscale_tensor``: padding to the model's size
    multiple, cropping)."""
    from srlab.inference.upscale import upscale_tensor

    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, *lr_size, generator=generator).to(device)
    return measure_latency(
        lambda: upscale_tensor(model, x), device=device, repeats=repeats, warmup=warmup, threads=threads
    )
