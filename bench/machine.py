"""What every benchmark shares: the CPU model and flags printed beside its figures (machines change
between sessions) and the interleaved timer."""

import statistics
import time

from srlab.machine import cpu_flags, cpu_model

__all__ = ["cpu_flags", "cpu_model", "median_ms"]


def median_ms(fns: dict, runs: int, warmup: int) -> dict[str, float]:
    """Median time of each function in ms; runs are interleaved so that load from other jobs on a
    shared machine falls on all of them alike and the ratios stay meaningful."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}
