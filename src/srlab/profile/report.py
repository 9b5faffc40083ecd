"""The efficiency profile of one model: parameters, MACs, activations, latency and peak memory.

Two input conventions are reported side by side, each named in the field:
- ``*_720p``: the LR input whose output is 1280x720 (640x360 at x2, 427x240 at x3, 320x180 at x4), the
  convention of the papers' "Multi-Adds"/"FLOPs" and "#Acts" columns (IMDN, CARN, SAFMN, ...);
- ``*_256``: a 256x256 LR input, the NTIRE efficient-SR challenges' convention.

Everything is measured on the inference ("deploy") form of the model (``srlab.deploy``), which is what
``srlab upscale`` and ``srlab eval`` run. Latency and memory use ``lr_size`` (default: the 720p
convention's LR size for the model's scale).
"""

from __future__ import annotations

import copy
import platform
from dataclasses import asdict, dataclass

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.models.complexity import count_macs, lr_size_for_720p, paper_parameter_count
from srlab.models.registry import count_parameters, spec_of
from srlab.models.reparam import deploy, is_deployed
from srlab.profile.latency import LatencyStats, model_latency, torch_threads
from srlab.profile.memory import MIB, count_activations, cpu_peak_memory, cuda_peak_memory

NTIRE_LR_SIZE = (256, 256)


@dataclass
class ModelProfile:
    model: str
    scale: int
    form: str  # "deploy" when the model has a fused inference form, else "plain"
    params: int  # as the papers count them (srlab.models.paper_parameter_count)
    params_total: int  # all parameters of the model as given (training form for re-parameterisable ones)
    params_trainable: int
    params_deploy: int  # all parameters of the inference form
    macs_720p: int
    macs_256: int
    acts_720p: int
    acts_256: int
    lr_size_720p: tuple[int, int]  # (H, W)
    lr_size: tuple[int, int]  # (H, W) of the latency and memory runs
    latency_ms: float | None  # median
    latency_iqr_ms: float | None
    latency: LatencyStats | None
    peak_memory_mb: float | None  # MiB (2**20 bytes)
    peak_memory_method: str | None
    device: str
    threads: int
    torch_version: str
    machine: str
    path: str = "eager"  # the inference path the latency was measured on (srlab.inference.paths)
    path_selection: dict | None = None  # how ``--path auto`` chose it: every candidate's check and time

    def to_json(self) -> dict:
        data = asdict(self)
        data["lr_size_720p"] = list(self.lr_size_720p)
        data["lr_size"] = list(self.lr_size)
        return data

    def table(self) -> str:
        """A human-readable summary, one quantity per line."""
        h7, w7 = self.lr_size_720p
        h, w = self.lr_size
        lines = [
            f"model            {self.model} x{self.scale} ({self.form} form), device {self.device}, "
            f"{self.threads} CPU thread(s), torch {self.torch_version}",
            f"parameters       {self.params:,} as papers count them (inference form, trainable)",
            f"                 {self.params_total:,} total, {self.params_trainable:,} trainable (as built), "
            f"{self.params_deploy:,} in the inference form",
            f"MACs             {self.macs_720p / 1e9:.3f} G for a 1280x720 output (LR {h7}x{w7} HxW, papers' convention)",
            f"                 {self.macs_256 / 1e9:.3f} G for a 256x256 LR input (NTIRE ESR convention)",
            f"activations      {self.acts_720p / 1e6:.2f} M for a 1280x720 output, "
            f"{self.acts_256 / 1e6:.2f} M for a 256x256 LR input (#Acts: elements of all conv outputs)",
        ]
        if self.latency is not None:
            lat = self.latency
            lines.append(
                f"latency          median {lat.median_ms:.2f} ms, IQR {lat.iqr_ms:.2f} ms "
                f"(q1 {lat.q1_ms:.2f}, q3 {lat.q3_ms:.2f}, min {lat.min_ms:.2f}) over {lat.repeats} runs after "
                f"{lat.warmup} warm-up, LR {h}x{w} HxW, {lat.device}, {lat.threads} thread(s)"
            )
            lines.append(f"inference path   {self.path}{_path_note(self.path_selection)}")
        if self.peak_memory_mb is not None:
            lines.append(f"peak memory      {self.peak_memory_mb:.1f} MiB, LR {h}x{w} HxW: {self.peak_memory_method}")
        return "\n".join(lines)


def _check_size(lr_size: tuple[int, int]) -> tuple[int, int]:
    if len(lr_size) != 2 or any(int(v) != v or v < 1 for v in lr_size):
        raise SrlabError(f"LR size must be two positive integers (height, width), got {lr_size}")
    return int(lr_size[0]), int(lr_size[1])


def profile_model(
    model: nn.Module,
    *,
    device: torch.device | str = "cpu",
    threads: int | None = None,
    repeats: int = 20,
    warmup: int = 3,
    lr_size: tuple[int, int] | None = None,
    latency: bool = True,
    memory: bool = True,
    path: str = "eager",
    precision: str = "auto",
    compile_from: float | None = None,
) -> ModelProfile:
    """Profile ``model`` (a registered model; left untouched: a copy runs on ``device``).

    ``threads``: CPU threads for the latency and memory runs (default: torch's current setting).
    ``latency=False`` / ``memory=False`` skip those measurements (their fields are then None).
    ``path``/``precision``: the inference path the latency is measured on (``auto``: the one ``srlab
    upscale`` chooses, :mod:`srlab.inference.paths`; ``compile_from``: its compile threshold, None for the
    default); memory is the eager path's.
    """
    spec = spec_of(model)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SrlabError("device cuda was asked for but no CUDA GPU is available: use --device cpu")
    fused = deploy(model)
    size_720p = lr_size_for_720p(spec.scale)
    size = size_720p if lr_size is None else _check_size(lr_size)
    if threads is not None and threads < 1:
        raise SrlabError(f"--threads must be >= 1, got {threads}")
    used_threads = torch.get_num_threads() if threads is None else threads

    stats = peak_mb = method = selection = None
    if latency or memory:
        runner = copy.deepcopy(fused).to(device).eval()
        if latency:
            timed, selection = _on_path(runner, path, precision, size, used_threads, compile_from)
            stats = model_latency(timed, size, device=device, repeats=repeats, warmup=warmup, threads=used_threads)
        if memory:
            if device.type == "cuda":
                from srlab.inference.upscale import upscale_tensor

                x = torch.rand(1, 3, *size, device=device)
                with torch.inference_mode():
                    upscale_tensor(runner, x)  # warm-up (cuDNN workspaces, lazy initialisation)
                    peak = cuda_peak_memory(lambda: upscale_tensor(runner, x), device)
                method = "torch.cuda.max_memory_allocated (weights, input, activations, output)"
            else:
                peak, method = cpu_peak_memory(runner, size, threads=used_threads)
            peak_mb = peak / MIB
        del runner

    return ModelProfile(
        model=spec.name,
        scale=spec.scale,
        form="deploy" if is_deployed(fused) else "plain",
        params=paper_parameter_count(model),
        params_total=count_parameters(model),
        params_trainable=count_parameters(model, trainable_only=True),
        params_deploy=count_parameters(fused),
        macs_720p=count_macs(fused, size_720p),
        macs_256=count_macs(fused, NTIRE_LR_SIZE),
        acts_720p=count_activations(fused, size_720p),
        acts_256=count_activations(fused, NTIRE_LR_SIZE),
        lr_size_720p=size_720p,
        lr_size=size,
        latency_ms=None if stats is None else stats.median_ms,
        latency_iqr_ms=None if stats is None else stats.iqr_ms,
        latency=stats,
        peak_memory_mb=peak_mb,
        peak_memory_method=method,
        device=str(device),
        threads=used_threads,
        torch_version=torch.__version__,
        machine=platform.machine(),
        path="eager" if selection is None else selection.path,
        path_selection=None if selection is None else selection.to_json(),
    )


def _on_path(model: nn.Module, path: str, precision: str, lr_size: tuple[int, int], threads: int,
             compile_from: float | None):
    """(``model`` on ``path``, how the path was chosen (None for eager)); the choice is made here, untimed."""
    if path == "eager":
        return model, None
    from srlab.inference.path_cache import PathCache
    from srlab.inference.paths import PathModel

    runner = PathModel(model, path=path, precision=precision, cache=PathCache(), compile_from=compile_from)
    with torch_threads(threads):
        selection = runner.selection((1, 3, *lr_size))
    return runner, selection


def _path_note(selection: dict | None) -> str:
    if selection is None:
        return ""
    timed = [f"{c['path']} {c['latency_ms']:.1f} ms" for c in selection["candidates"] if c["latency_ms"] is not None]
    skipped = [f"{c['path']} ({c['skipped']})" for c in selection["candidates"] if c["skipped"]]
    parts = [", ".join(timed)] if timed else []
    if skipped:
        parts.append("skipped: " + "; ".join(skipped))
    return f" ({'; '.join(parts)}{', cached choice' if selection['cached'] else ''})" if parts else ""
