"""How many CPU threads inference uses, and how idle OpenMP threads wait: a policy that does not
collapse on a shared machine.

Measured on a 2-core Xeon shared with other jobs (IMDN x4 forward, 64x64 LR, README "Inference paths
and threads"): with OpenMP's default wait policy (idle threads spin before they sleep), 2 threads beside
a busy process ran 7-20x slower than 1 thread in 3 of 6 runs, because each parallel region waits for a
thread that the kernel has descheduled while its partner spins. With ``OMP_WAIT_POLICY=PASSIVE`` (idle
threads sleep at once) 2 threads never collapsed in 6 runs: 0.2-1.2x the 1-thread time, faster when the
machine was oversubscribed (the kernel shares CPU time per thread). GNU and Intel OpenMP read
the policy once, when torch loads them, so ``srlab/__init__.py`` sets it (unless the user did) before
the first ``import torch``.

The thread count: what the user asks for, capped at the CPUs this process may run on; by default torch's
setting (OMP_NUM_THREADS, ``torch.set_num_threads``) capped the same way. Only where OpenMP threads
spin (a user's OMP_WAIT_POLICY, or torch loaded before srlab) does the default also leave out the CPUs
other processes keep busy (the 1-minute load average): spinning threads must not share a CPU.
"""

from __future__ import annotations

import math
import os

import torch

from srlab.machine import OPENMP_PASSIVE


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def busy_cpus() -> float:
    """How many CPUs other processes keep busy: the 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return 0.0


def choose_threads(requested: int | None, *, cpus: int, busy: float, ceiling: int, passive: bool) -> int:
    """The thread count for ``requested`` threads (None: srlab's default) on ``cpus`` usable CPUs of which
    ``busy`` are kept busy by other processes, torch being set to ``ceiling`` threads and OpenMP's idle
    threads sleeping (``passive``) or spinning. More threads than CPUs always oversubscribes, so a request
    is capped at ``cpus``; the default is ``ceiling`` capped so, and with spinning threads only the idle
    CPUs (a CPU counts as busy from a load of 0.5)."""
    if requested is not None:
        return max(1, min(requested, cpus))
    threads = min(ceiling, cpus)
    if not passive:
        threads = min(threads, cpus - math.floor(busy + 0.5))
    return max(1, threads)


def policy_threads(requested: int | None = None) -> int:
    """:func:`choose_threads` for this machine, now."""
    return choose_threads(requested, cpus=usable_cpus(), busy=busy_cpus(), ceiling=torch.get_num_threads(),
                          passive=OPENMP_PASSIVE)
