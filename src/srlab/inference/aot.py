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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from srlab.fileio import atomic_path
from srlab.inference.cache_keys import code_fingerprint, device_model, srlab_home, weights_fingerprint
from srlab.models.registry import spec_of


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
        try:
            if file.is_file():
                try:
                    return torch._inductor.aoti_load_package(str(file))
                except Exception:  # noqa: BLE001 - damaged, or built against another runtime: build it again
                    pass
            _build(self.net, x, file)
            return torch._inductor.aoti_load_package(str(file))
        except Exception as e:  # noqa: BLE001 - any failure leaves the in-process compile, never an error
            self.fallback = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            return self._compiled_in_process()


def _build(net: nn.Module, x: torch.Tensor, file: Path) -> None:
    """Export ``net`` for inputs like ``x`` and compile it into the package ``file`` (weights frozen in)."""
    import torch._inductor.config as inductor_config

    with torch.no_grad():
        exported = torch.export.export(net, (x,))
        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as temporary, inductor_config.patch(freezing=True):
            torch._inductor.aoti_compile_and_package(exported, package_path=str(temporary))
