"""Memory figures of an SR model: activation counts ("#Acts") and peak memory during inference.

``count_activations``: the "#Acts" column of RFDN's, IMDN's and the NTIRE efficient-SR tables: the
number of elements of the outputs of every convolution (plain, grouped, depth-wise, transposed) in one
forward pass. It is counted as operations reach ATen on PyTorch's ``meta`` device, like
``srlab.models.complexity``, so functional convolutions count too and nothing is computed.

Peak memory of one inference (``upscale_tensor``, the generic path) after a warm-up run:

- on CUDA, ``torch.cuda.max_memory_allocated`` (the NTIRE ESR "GPU memory" figure: weights, input,
  activations and output, as allocated by PyTorch);
- on CPU, the growth of the process's peak resident set size during the inference, measured in a fresh
  subprocess so that nothing of the caller's history counts. tracemalloc would not see PyTorch's
  allocations (they do not go through Python's allocator), and ``ru_maxrss`` alone is a high-water mark
  of the whole process life. On Linux the peak is reset right before the measured run (writing ``5``
  to ``/proc/self/clear_refs`` sets ``VmHWM`` to the current ``VmRSS``), so the figure is
  ``VmHWM`` after the run minus ``VmRSS`` before it: activations, output and allocator overhead, not the
  weights. Where that file cannot be written, the fallback is ``ru_maxrss`` after minus ``VmRSS`` (or
  ``ru_maxrss``) before, which over-states the growth when an earlier, larger peak exists.
  The child runs with a fixed glibc mmap threshold (``_CHILD_ENV``) so that memory freed after the
  warm-up run goes back to the system instead of being reused, unseen, by the measured run.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from srlab.errors import SrlabError

MIB = 2**20
# glibc malloc: a fixed mmap threshold (which turns off its dynamic raising) makes every block of 128 KiB
# or more a mapping of its own, returned to the system when freed; so memory freed during the warm-up
# run is not kept resident and reused unseen by the measured run.
_CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class _ConvOutputs(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket is torch.ops.aten.convolution:
            self.total += out.numel()
        return out


def count_activations(model: nn.Module, lr_size: tuple[int, int]) -> int:
    """Elements of all convolution outputs in one eval-mode forward pass of a 1x3xHxW input."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    counter = _ConvOutputs()
    with torch.no_grad(), counter:
        meta_model(torch.empty(1, 3, *lr_size, device="meta"))
    return counter.total


def cuda_peak_memory(run: Callable[[], object], device: torch.device) -> int:
    """Bytes of ``torch.cuda.max_memory_allocated`` during one call of ``run`` (everything allocated
    on the device at the time counts, the model's weights included)."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


# ----------------------------------------------------------------------------- CPU, in a fresh process


def _status_bytes(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return None


def _maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, kB on Linux


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def measure_rss_growth(run: Callable[[], object]) -> tuple[int, str]:
    """(bytes, method): growth of the peak RSS of *this* process during one call of ``run``."""
    import gc

    gc.collect()
    before = _status_bytes("VmRSS")
    if _reset_peak() and before is not None:
        run()
        peak = _status_bytes("VmHWM")
        if peak is not None:
            return max(0, peak - before), "peak RSS growth (VmHWM after reset - VmRSS before), fresh process"
    if before is None:
        before = _maxrss_bytes()
    run()
    return max(0, _maxrss_bytes() - before), "peak RSS growth (ru_maxrss after - RSS before), fresh process"


def cpu_peak_memory(model: nn.Module, lr_size: tuple[int, int], *, threads: int, warmup: int = 1) -> tuple[int, str]:
    """(bytes, method): peak RSS growth of one CPU inference of a 1x3xHxW input, in a fresh subprocess.

    The model is handed over as a pickled module (``torch.save``), so it must be importable by class.
    """
    with tempfile.TemporaryDirectory(prefix="srlab-mem-") as tmp:
        model_file = Path(tmp) / "model.pt"
        try:
            torch.save(copy.deepcopy(model).cpu().eval(), model_file)
        except Exception as e:  # noqa: BLE001 - pickling fails in many ways (local classes, lambdas)
            raise SrlabError(f"cannot measure CPU memory of this model in a subprocess: {e}") from None
        request = {"model": str(model_file), "lr_size": list(lr_size), "threads": threads, "warmup": warmup}
        done = subprocess.run(
            [sys.executable, "-m", "srlab.profile.memory", json.dumps(request)],
            capture_output=True, text=True, timeout=3600,
            env={**os.environ, **_CHILD_ENV, "OMP_NUM_THREADS": str(threads)},
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SrlabError(f"the memory-measuring subprocess failed: {last}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return int(result["bytes"]), str(result["method"])


def _child(request: dict) -> dict:
    from srlab.inference.upscale import upscale_tensor

    torch.set_num_threads(int(request["threads"]))
    model = torch.load(request["model"], weights_only=False)  # our own file, written just now
    x = torch.rand(1, 3, *request["lr_size"])
    for _ in range(int(request["warmup"])):
        upscale_tensor(model, x)
    growth, method = measure_rss_growth(lambda: upscale_tensor(model, x))
    return {"bytes": growth, "method": method}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
