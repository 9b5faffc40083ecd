"""The machine srlab runs on: the CPU a timing was taken on (printed and recorded beside every latency
figure, since timings mean little without it, and machines change between sessions), its feature flags
(which inference paths have native units), and OpenMP's wait policy.

OpenMP reads its wait policy once, when torch loads it: idle threads that sleep instead of spinning keep
a shared machine from collapsing (:mod:`srlab.inference.threads` measured it). ``import srlab`` imports
this module before torch, so the policy is set in time unless torch came first; a user's setting stays.
"""

from __future__ import annotations

import os
import platform
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Whether torch's OpenMP threads sleep when idle: only if torch was loaded after the policy was set.
OPENMP_PASSIVE = "torch" not in sys.modules and os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what ``platform`` knows, or "unknown CPU")."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux: /proc/cpuinfo's ``flags`` line, e.g. avx512_bf16, amx_bf16); empty
    where they cannot be read, so that nothing is assumed about an unknown CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    return frozenset()
