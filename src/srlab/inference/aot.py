"""Compiled paths paid once: ahead-of-time packages on disk (``torch.export`` + AOTInductor, freezing on).

``torch.compile`` traces the model again in every process, even with inductor's kernels in its disk cache
(IMDN x4, LR 90x160, 1 thread: 65 s cold, 20 s warm), so a compiled path could pay off only within one long
process. On the CPU the compiled paths (``compile``, ``bf16_compile``) instead build, per input shape, a
package with AOTInductor and keep it in ``$SRLAB_HOME/compiled/<name>-<path>-<digest>.pt2``; a later process
loads it without tracing (2026-12-06, AMD EPYC Zen 4, 1 thread, rdsr_s bf16 at LR 180x320: built in 14 s,
loaded in 0.2 s where ``torch.compile`` took 6.8 s with its cache warm, 103 ms a forward against
``torch.compile``'s 110 and eager's 294). The digest covers what the compiled code depends on: the
architecture and its hyper-parameters, the weights (frozen into the package as constants), the path, the
input shape, the thread count (written into the kernels), the CPU model, the torch version and srlab's own
source (a changed forward is traced again). A package is written atomically, so a killed build leaves none.

A model that ``torch.export`` cannot capture, a package that does not build or load, and a call with keyword
arguments run on ``torch.compile`` in the process instead (the reason kept in :attr:`AotCompiled.fallback`):
the path's check against fp32 eager judges whichever ran. Packages are machine code that loading runs:
srlab loads them only from its own cache folder, which only srlab writes.

A package holds its frozen constants, which for some models grow with the input size (SwinIR-light's bf16
package: 289 MB at LR 90x160, 1.1 GB at 180x320, each block's position bias expanded over the windows), and
one is built per input size: after each build the folder is trimmed to ``SRLAB_COMPILED_CACHE_GB`` (default
:data:`DEFAULT_CACHE_GB`) by removing the packages used least recently (a load marks a package used).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.cache_keys import code_fingerprint, device_model, srlab_home, weights_fingerprint
from srlab.models.registry import spec_of

DEFAULT_CACHE_GB = 8.0


def package_file(model: nn.Module, path_name: str, shape: tuple[int, ...], *, weights: str | None = None) -> Path:
    """Where the package of ``model`` (float32, as the caller holds it) on ``path_name`` for inputs of
    ``shape`` lives (present or not); ``weights``: the model's ``weights_fingerprint`` where the caller
    has it already (hashing every weight takes a while for the large models)."""
    spec = spec_of(model)
    fields = {
        "model": spec.name, "form": spec.form, "scale": spec.scale, "args": dict(spec.args),
        "weights": weights or weights_fingerprint(model), "path": path_name, "shape": list(shape),
        "cpu": device_model(torch.device("cpu")), "torch": torch.__version__, "srlab": code_fingerprint(),
        # inductor writes the thread count into the kernels (#pragma omp parallel num_threads(T))
        "threads": torch.get_num_threads(),
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return srlab_home() / "compiled" / f"{spec.name}-{path_name}-{digest}.pt2"


class AotCompiled:
    """``net`` (the path's copy of ``model``: cast and laid out) compiled per input shape: its package loaded
    from the cache, else built and saved, else ``torch.compile`` in this process."""

    def __init__(self, net: nn.Module, model: nn.Module, path_name: str) -> None:
        self.net, self.model, self.path_name = net, model, path_name
        self._runners: dict[tuple[int, ...], Callable] = {}
        self._in_process: Callable | None = None
        self._weights: str | None = None  # the model's weights_fingerprint, once known
        self.fallback: str | None = None  # why the last shape runs on torch.compile instead of a package

    def __call__(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if kwargs:  # a package takes the one input it was exported with
            return self._compiled_in_process()(x, **kwargs)
        shape = tuple(x.shape)
        if shape not in self._runners:
            self._runners[shape] = self._package_runner(x)
        return self._runners[shape](x)

    def _compiled_in_process(self) -> Callable:
        if self._in_process is None:
            self._in_process = torch.compile(self.net, dynamic=False)
        return self._in_process

    def _package_runner(self, x: torch.Tensor) -> Callable:
        if self._weights is None:
            self._weights = weights_fingerprint(self.model)
        file = package_file(self.model, self.path_name, tuple(x.shape), weights=self._weights)
        limit = cache_limit_bytes()  # a bad setting is the user's one-line error, not a silent fallback
        try:
            if file.is_file():
                try:
                    runner = torch._inductor.aoti_load_package(str(file))
                    os.utime(file)  # used now: the last to go when the folder is trimmed
                    return runner
                except Exception:  # noqa: BLE001 - damaged, or built against another runtime: build it again
                    pass
            _build(self.net, x, file)
            trim_packages(keep=file, limit=limit)
            return torch._inductor.aoti_load_package(str(file))
        except Exception as e:  # noqa: BLE001 - any failure leaves the in-process compile, never an error
            self.fallback = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            return self._compiled_in_process()


def _build(net: nn.Module, x: torch.Tensor, file: Path) -> None:
    """Export ``net`` for inputs like ``x`` and compile it into the package ``file`` (weights frozen in)."""
    from srlab.inference.fusion import compile_settings  # imports inductor: 0.8 s, paid only to compile

    with torch.no_grad():
        exported = torch.export.export(net, (x,))
        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as temporary, compile_settings():
            torch._inductor.aoti_compile_and_package(exported, package_path=str(temporary))


def cache_limit_bytes() -> int:
    """The compiled packages' folder's size limit: ``SRLAB_COMPILED_CACHE_GB`` (GB, > 0), else the default."""
    text = os.environ.get("SRLAB_COMPILED_CACHE_GB")
    if text is None:
        return int(DEFAULT_CACHE_GB * 1e9)
    try:
        limit = float(text)
    except ValueError:
        limit = -1.0
    if not limit > 0:
        raise SrlabError(f"SRLAB_COMPILED_CACHE_GB={text!r} is not a size: give the compiled packages' limit in GB, e.g. 8")
    return int(limit * 1e9)


def trim_packages(*, keep: Path, limit: int) -> list[Path]:
    """Remove the least recently used packages (by modification time, which a load refreshes) from ``keep``'s
    folder until the folder holds at most ``limit`` bytes; ``keep`` (the one just built) stays whatever its
    size. Returns the packages removed."""
    stats = {}
    for package in keep.parent.glob("*.pt2"):
        try:
            stats[package] = package.stat()
        except FileNotFoundError:  # another process removed it meanwhile
            continue
    total = sum(stat.st_size for stat in stats.values())
    removed = []
    for package in sorted(stats, key=lambda p: stats[p].st_mtime):
        if total <= limit:
            break
        if package == keep:
            continue
        package.unlink(missing_ok=True)
        total -= stats[package].st_size
        removed.append(package)
    return removed
