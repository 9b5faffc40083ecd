"""Inference paths: the same model run the fastest correct way for the machine it is on.

A path turns a model into a callable with the model's contract, float32 ``(N, 3, H, W)`` in and float32
out, so that :func:`srlab.inference.upscale.upscale_tensor` pads, tiles and crops for every path alike:

- ``eager``: the model as it is (the reference every other path is checked against);
- ``channels_last``: weights and activations in NHWC, which oneDNN's convolutions prefer;
- ``compile``: inductor with freezing (weights folded into the graph as constants, prepacked for oneDNN)
  and srlab's fusion pass (:mod:`srlab.inference.fusion`); needs a C++ compiler on CPU and compiles once per
  input shape: on the CPU into a package kept in ``$SRLAB_HOME/compiled`` that later processes load
  (:mod:`srlab.inference.aot`), elsewhere with ``torch.compile`` in the process; skipped, with the reason
  recorded, wherever it is unavailable or fails;
- ``onnxruntime``: the model exported to ONNX (:func:`srlab.export.onnx.export_onnx`, dynamic shapes,
  once per model and process: a second to a few seconds for the convolutional networks) and run by
  onnxruntime on the CPU (:class:`srlab.export.runtime.OnnxModel`); needs the ``onnxruntime`` and
  ``onnx`` packages (``srlab[deploy]``); a model that does not export is skipped with the reason;
- ``bf16`` / ``fp16``: weights and activations in bfloat16 / float16 (bf16 in channels_last: in NCHW it
  was measured no faster), the input and output cast at the boundary; offered only where the hardware
  has native units (AVX-512 BF16 or AMX, as oneDNN reports; a CUDA GPU) and ``ModelInfo.half_precision_safe``;
  the modules ``ModelInfo.float32_modules`` names stay in float32
  (:func:`srlab.inference.precision.to_reduced_precision`);
- ``bf16_compile``: ``bf16`` compiled as ``compile`` is: inductor fuses the elementwise work (activations,
  normalisations, attention gates) that bf16 alone leaves at memory speed (2026-12-06, AMD EPYC Zen 4,
  AVX512-BF16 without AMX, 1 thread, LR 90x160 x4, chosen / eager: IMDN bf16 0.52 -> 0.38, SAFMN 0.63 ->
  0.42, SPAN-ch28 0.60 -> 0.41, BSRN 0.57 -> 0.43, SwinIR-light 0.76 -> 0.62; ``bench/bench_latency.py``).

:class:`PathModel` (``--path auto``) chooses per input shape, once: every available path runs the same
probe image, is checked against fp32 eager (fp32 paths: largest absolute difference <= 1e-4, or, in an
ill-conditioned network whose eager float32 output is itself that far from exact, no further from a
float64 run than :data:`srlab.inference.rounding.ROUNDING_FACTOR` times eager's output is;
reduced-precision paths: PSNR of their output against eager's >= :data:`REDUCED_MIN_PSNR`, and a PSNR-Y
drop within :data:`REDUCED_MAX_DROP_DB`, measured on Set5/Set14 or on srlab's sample photo), and the
fastest that passes is kept, timed interleaved with the others. ``auto`` tries the compiled paths
(``compile``, ``bf16_compile``) only where an eager forward takes :data:`COMPILE_MIN_EAGER_S` or more
(``compile_from`` sets another threshold: 0 for a run of many inputs of one size) or where their package
for the input shape is on disk already, ``onnxruntime`` only from
:data:`EXPORT_MIN_EAGER_S`. The choice is cached on disk per
(model, weights, input size, threads, CPU/GPU model, torch version) by :mod:`srlab.inference.path_cache`.
A forced path (``--path compile``) is checked the same way and falls back to eager, with a warning, if
it fails. ``--precision fp32`` leaves the reduced-precision paths out.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from srlab.errors import SrlabError, SrlabWarning
from srlab.models.registry import spec_of
from srlab.inference.aot import AotCompiled, cache_limit_bytes, package_file
from srlab.inference.cache_keys import weights_fingerprint
from srlab.inference.precision import cpu_has_bf16, to_reduced_precision
from srlab.inference.rounding import float32_rounding, float64_reference

PRECISIONS = ("auto", "fp32")
# An fp32 path may differ from eager only by the reordering of float sums.
FP32_MAX_ABS_DIFF = 1e-4
# A reduced-precision output must stay this close to eager's on the probe image (PSNR of one against the
# other, RGB in [0, 1]): a gate against broken casts (overflow, a float32-only op), not the accuracy
# guarantee. That is ModelInfo.half_precision_safe plus the drop measured on Set5/Set14 x4 (README): bf16
# cost RLFN, IMDN and BSRN 0.002-0.014 dB there while their probe PSNRs were 48-52 dB, so the probe figure
# does not rank models by their drop.
REDUCED_MIN_PSNR = 40.0
# The accuracy budget of a reduced-precision path: PSNR-Y (paper protocol) lost against fp32 eager.
REDUCED_MAX_DROP_DB = 0.02
# bf16's drop on (Set5, Set14) x4 in dB, measured with official weights (bench/bench_latency.py --psnr),
# with the modules ModelInfo.float32_modules names kept in float32: these architectures are judged by it. Others are judged by the drop on srlab's sample photo (downscaled
# by MATLAB bicubic), once per model and weights: a noisier proxy (RLFN 0.004, SPAN-ch28 0.009, BSRN
# 0.024 dB there against the Set5/Set14 figures below).
BF16_MEASURED_DROP = {
    "imdn": (0.0047, 0.0045),
    "rfdn_aim": (0.0068, 0.0041),
    "rlfn": (0.0031, 0.0021),
    "bsrn": (0.0089, 0.0138),
    # SPAN-ch28's weights (the same blocks for span), its attention and conv_cat's sum in float32 (AMD EPYC Zen 4;
    # the Xeon's AMX 0.0172 / 0.0107; 0.0166 / 0.0126 there with the attention's earlier tanh form, 0.0361 / 0.0158
    # all in bf16)
    "span": (0.0172, 0.0111),
    "span_ch28": (0.0172, 0.0111),
    "safmn_pp": (0.0115, 0.0051),
    "rdsr_s": (0.0083, 0.0042),
}
# ``auto`` compiles only where one eager forward takes this long. Compiling costs about a minute per input
# shape, and every new process traces again even when inductor's disk cache holds the kernels (IMDN x4 at
# LR 90x160, 1 thread: 65 s cold, 20 s warm, for a 1985 -> 1325 ms forward): small inputs never win it back.
COMPILE_MIN_EAGER_S = 2.0
# ``auto`` exports to ONNX only where one eager forward takes this long: an export with its checks costs
# about a second for the small convolutional networks, more for the deep ones.
EXPORT_MIN_EAGER_S = 1.0


@dataclass(frozen=True)
class InferencePath:
    name: str
    dtype: torch.dtype  # what the weights and activations are computed in
    channels_last: bool
    compiled: bool = False
    runtime: str = "torch"  # or "onnxruntime": the model exported and run outside PyTorch

    @property
    def exact(self) -> bool:
        return self.dtype == torch.float32


PATHS = {
    path.name: path
    for path in (
        InferencePath("eager", torch.float32, channels_last=False),
        InferencePath("channels_last", torch.float32, channels_last=True),
        InferencePath("compile", torch.float32, channels_last=False, compiled=True),
        InferencePath("onnxruntime", torch.float32, channels_last=False, runtime="onnxruntime"),
        InferencePath("bf16", torch.bfloat16, channels_last=True),
        InferencePath("fp16", torch.float16, channels_last=True),
        InferencePath("bf16_compile", torch.bfloat16, channels_last=True, compiled=True),
    )
}


def unavailable_reason(path: InferencePath, model: nn.Module, device: torch.device, precision: str) -> str | None:
    """Why ``path`` cannot run ``model`` on ``device`` (None: it can)."""
    spec = spec_of(model)
    if path.name != "eager" and spec.info.arbitrary_scale:
        return "arbitrary-scale models run eager (their forward takes an output size)"
    if not path.exact:
        if precision == "fp32":
            return "--precision fp32"
        if not spec.info.half_precision_safe:
            return f"{spec.name} is not marked half-precision safe (ModelInfo.half_precision_safe)"
        if path.dtype == torch.bfloat16 and max(BF16_MEASURED_DROP.get(spec.name, (0,))) > REDUCED_MAX_DROP_DB:
            set5, set14 = BF16_MEASURED_DROP[spec.name]
            return f"bf16 lost {set5:.4f} / {set14:.4f} dB on Set5 / Set14 x4 (limit {REDUCED_MAX_DROP_DB:g})"
        if not _native_units(path.dtype, device):
            return f"no native {_DTYPE_NAMES[path.dtype]} units on this {'GPU' if device.type == 'cuda' else 'CPU'}"
    if path.runtime == "onnxruntime":
        if device.type != "cpu":
            return "onnxruntime runs on the CPU here"
        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs the {' and '.join(missing)} package (pip install 'srlab[deploy]')"
    if path.compiled and device.type == "cpu" and not _cpp_compiler():
        return "torch.compile on CPU needs a C++ compiler (g++, c++ or clang++ on PATH)"
    return None


_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def _native_units(dtype: torch.dtype, device: torch.device) -> bool:
    if device.type == "cuda":
        return dtype == torch.float16 or torch.cuda.is_bf16_supported()
    return dtype == torch.bfloat16 and cpu_has_bf16()


def _cpp_compiler() -> str | None:
    return next((found for name in ("g++", "c++", "clang++") if (found := shutil.which(name))), None)


def build_path(path: InferencePath, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` (left untouched) as a float32-in, float32-out callable on ``path``."""
    if path.name == "eager":
        return model
    if path.runtime == "onnxruntime":
        return _on_onnxruntime(model)
    net = copy.deepcopy(model)
    net = net if path.exact else to_reduced_precision(net, path.dtype)
    if path.channels_last:
        net = net.to(memory_format=torch.channels_last)
    layout = torch.channels_last if path.channels_last else torch.contiguous_format
    if not path.compiled:
        def forward(x: torch.Tensor, **kwargs) -> torch.Tensor:
            return _at_boundary(net, x, path.dtype, layout, **kwargs)

        return forward
    # Compiled, the boundary's casts run inside the graph, fused into its first and last kernels: outside,
    # the output's change of layout (a 3-channel channels_last image to NCHW) was a copy of its own (SPAN-ch28
    # x4, LR 180x320, 1 thread, AMD EPYC Zen 4: 10 ms of a 105 ms bf16_compile forward).
    bounded = _AtBoundary(net, path.dtype, layout)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    # on the CPU, packages kept on disk (srlab.inference.aot); elsewhere compiled in this process
    run = AotCompiled(bounded, model, path.name) if on_cpu else torch.compile(bounded, dynamic=False)

    def compiled_forward(x: torch.Tensor, **kwargs) -> torch.Tensor:
        from srlab.inference.fusion import compile_settings  # imports inductor: paid only where a path compiles

        with compile_settings():
            return run(x.to(torch.float32), **kwargs)

    return compiled_forward


def _at_boundary(net: nn.Module, x: torch.Tensor, dtype: torch.dtype, layout: torch.memory_format,
                 **kwargs) -> torch.Tensor:
    """``net`` on ``x`` cast to ``dtype`` and ``layout`` (one copy: a cast, then a layout, would be two),
    its output cast back to float32 NCHW."""
    out = net(x.to(dtype=dtype, memory_format=layout), **kwargs)
    return out.to(dtype=torch.float32, memory_format=torch.contiguous_format)


class _AtBoundary(nn.Module):
    """``net`` with the path's casts at its boundary (:func:`_at_boundary`), as one module to compile."""

    def __init__(self, net: nn.Module, dtype: torch.dtype, layout: torch.memory_format) -> None:
        super().__init__()
        self.net, self.dtype, self.layout = net, dtype, layout

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return _at_boundary(self.net, x, self.dtype, self.layout, **kwargs)


def _on_onnxruntime(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` exported to ONNX (no check here: the path's check against eager is the caller's) and
    loaded into onnxruntime with torch's thread count; the file is read whole, then deleted."""
    from srlab.export.onnx import export_onnx
    from srlab.export.runtime import OnnxModel

    with tempfile.TemporaryDirectory(prefix="srlab-onnx-") as folder:
        exported = OnnxModel(export_onnx(model, Path(folder) / "model.onnx", check=False),
                             threads=torch.get_num_threads())

    def forward(x: torch.Tensor, **kwargs) -> torch.Tensor:
        return exported(x)

    return forward


@dataclass
class Candidate:
    """One path tried for one input shape: its check against eager and its time (or why it was left out)."""

    path: str
    skipped: str | None = None  # why the path was not used
    check: str | None = None  # e.g. "max |diff| 2.1e-06" or "53.2 dB vs fp32 eager"
    first_call_s: float | None = None  # includes compilation for ``compile``
    latency_ms: float | None = None


@dataclass
class Selection:
    path: str
    shape: tuple[int, ...]
    candidates: list[Candidate] = field(default_factory=list)
    cached: bool = False

    def to_json(self) -> dict:
        return {"path": self.path, "shape": list(self.shape), "cached": self.cached,
                "candidates": [asdict(c) for c in self.candidates]}

    @classmethod
    def from_json(cls, data: dict) -> Selection:
        return cls(path=data["path"], shape=tuple(data["shape"]), cached=True,
                   candidates=[Candidate(**c) for c in data["candidates"]])


def probe_image(shape: tuple[int, ...]) -> torch.Tensor:
    """A deterministic image-like input (smooth shading, edges, fine texture) of ``shape`` (N, C, H, W):
    checks on it behave like checks on photos, where uniform noise would exaggerate rounding errors."""
    n, c, h, w = shape
    y = torch.linspace(0, 1, h).view(h, 1)
    x = torch.linspace(0, 1, w).view(1, w)
    channels = []
    for k in range(c):
        shading = 0.5 + 0.3 * torch.sin(2 * math.pi * (1.3 * x + 0.7 * y + k / 3))
        edges = 0.15 * ((torch.floor(8 * x) + torch.floor(6 * y) + k) % 2)
        texture = 0.05 * torch.sin(2 * math.pi * (37 * x * (k + 1) + 29 * y))
        channels.append(shading + edges + texture)
    image = torch.stack(channels).clamp(0, 1)
    return image.unsqueeze(0).expand(n, c, h, w).contiguous()


def psnr_against(out: torch.Tensor, ref: torch.Tensor) -> float:
    mse = (out.clamp(0, 1) - ref.clamp(0, 1)).double().pow(2).mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


def check_path(path: InferencePath, out: torch.Tensor, ref: torch.Tensor) -> tuple[bool, str]:
    """Whether ``out`` (a path's output) is close enough to ``ref`` (fp32 eager's), and the figure."""
    if out.shape != ref.shape or not torch.isfinite(out).all():
        return False, f"output of shape {tuple(out.shape)} with non-finite values or the wrong shape"
    if path.exact:
        diff = (out - ref).abs().max().item()
        return diff <= FP32_MAX_ABS_DIFF, f"max |diff| {diff:.1e} (limit {FP32_MAX_ABS_DIFF:g})"
    psnr = psnr_against(out, ref)
    return psnr >= REDUCED_MIN_PSNR, f"{psnr:.1f} dB vs fp32 eager (limit {REDUCED_MIN_PSNR:g} dB)"


class OnPath(nn.Module):
    """A path's callable with its model's spec and parameters, for :func:`upscale_tensor`."""

    def __init__(self, model: nn.Module, run: Callable) -> None:
        super().__init__()
        self.model, self.srlab_spec, self._call = model, spec_of(model), run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(x)


def photo_drop_db(model: nn.Module, run: Callable) -> float:
    """PSNR-Y (paper protocol) that ``run`` (a path of ``model``) loses against eager ``model`` on srlab's
    sample photo, downscaled by MATLAB bicubic: the photo stands in for Set5/Set14, which srlab does not ship."""
    from srlab.data.datasets import modcrop
    from srlab.data.resize import bicubic_downscale
    from srlab.data.io import sample_photo
    from srlab.inference.upscale import upscale_tensor
    from srlab.metrics.protocol import PAPER_PROTOCOL

    scale = spec_of(model).scale
    hr = modcrop(sample_photo(), scale)
    lr = bicubic_downscale(hr, scale, quantize=True)
    scores = [PAPER_PROTOCOL.score(upscale_tensor(m, lr).clamp(0, 1).cpu(), hr, scale)["psnr_y"]
              for m in (model, OnPath(model, run))]
    return scores[0] - scores[1]


def _first_call(run: Callable, x: torch.Tensor) -> tuple[torch.Tensor | None, float, str | None]:
    started = time.perf_counter()
    try:
        out = run(x)
    except Exception as e:  # noqa: BLE001 - a path that cannot run this model is skipped, never an error
        return None, time.perf_counter() - started, f"failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return out, time.perf_counter() - started, None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_interleaved(runs: dict[str, Callable], x: torch.Tensor, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            _synchronize(x.device)
            started = time.perf_counter()
            run(x)
            _synchronize(x.device)
            times[name].append(1e3 * (time.perf_counter() - started))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


class PathModel(nn.Module):
    """``model`` on the path ``path`` asks for (``auto``: the fastest correct one, chosen per input shape).

    The model stays a submodule (float32, on its device), so its parameters, spec and device are what
    callers see; the paths' copies are built once, when first chosen.
    """

    def __init__(self, model: nn.Module, *, path: str = "auto", precision: str = "auto",
                 cache=None, repeats: int = 3, compile_from: float | None = None) -> None:
        super().__init__()
        if path != "auto" and path not in PATHS:
            raise SrlabError(f"--path {path!r} is not a path: use auto, {', '.join(PATHS)}")
        if precision not in PRECISIONS:
            raise SrlabError(f"--precision {precision!r}: use {' or '.join(PRECISIONS)}")
        if path != "auto" and precision == "fp32" and not PATHS[path].exact:
            raise SrlabError(f"--path {path} computes in reduced precision: drop --precision fp32")
        if path == "auto" or PATHS[path].compiled:
            cache_limit_bytes()  # a bad SRLAB_COMPILED_CACHE_GB: the user's one-line error, not a path skipped
        self.model = model
        self.srlab_spec = spec_of(model)
        self.path, self.precision, self.repeats = path, precision, repeats
        # auto compiles where one eager forward takes this many seconds (None: COMPILE_MIN_EAGER_S)
        self.compile_from = COMPILE_MIN_EAGER_S if compile_from is None else compile_from
        self._cache = cache
        self._built: dict[str, Callable] = {"eager": model}
        self._chosen: dict[tuple[int, ...], Selection] = {}
        self._drops: dict[str, float] = {}
        self._ran: set[str] = set()  # paths that have run in this process
        self._weights: str | None = None  # the model's weights_fingerprint, once a package is looked for
        self._exact: tuple[torch.Tensor, torch.Tensor] | None = None  # (probe, its float64 output)

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return torch.device("cpu") if param is None else param.device

    def selection(self, shape: tuple[int, ...]) -> Selection:
        """The path used for inputs of ``shape`` (N, C, H, W), chosen (and cached) on the first call."""
        shape = tuple(shape)
        if shape not in self._chosen:
            self._chosen[shape] = self._select(shape)
        return self._chosen[shape]

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        selection = self.selection(tuple(x.shape))
        if selection.path == "eager" or selection.path in self._ran:
            return self.callable_for(selection.path)(x, **kwargs)
        try:  # a choice read from the cache runs here first in this process (a compiler since removed, ...)
            out = self.callable_for(selection.path)(x, **kwargs)
        except Exception as e:  # noqa: BLE001 - a path that fails is left for eager, never an error
            warnings.warn(f"the {selection.path} path failed ({type(e).__name__}: {e}): running eager",
                          SrlabWarning, stacklevel=2)
            self._chosen[tuple(x.shape)] = Selection("eager", selection.shape, selection.candidates)
            return self.model(x, **kwargs)
        self._ran.add(selection.path)
        return out

    def callable_for(self, name: str) -> Callable:
        """The path ``name`` of this model (built once)."""
        if name not in self._built:
            self._built[name] = build_path(PATHS[name], self.model)
        return self._built[name]

    def _select(self, shape: tuple[int, ...]) -> Selection:
        names = list(PATHS) if self.path == "auto" else list(dict.fromkeys(["eager", self.path]))
        key = None
        if self._cache is not None and self.path == "auto":
            gate = None if self.compile_from == COMPILE_MIN_EAGER_S else self.compile_from
            key = self._cache.key(self.model, shape, self.precision, self.device, compile_from=gate)
            cached = self._cache.get(key)
            if cached is not None and self._still_available(cached.path):
                return cached
        with torch.inference_mode():
            selection = self._measure(names, shape)
        if self.path != "auto" and selection.path != self.path:
            reason = next(c.skipped for c in selection.candidates if c.path == self.path)
            warnings.warn(f"--path {self.path} is not used for {shape[-2]}x{shape[-1]} inputs ({reason}): "
                          "running eager", SrlabWarning, stacklevel=2)
        if key is not None:
            self._cache.put(key, selection)
        return selection

    def _accuracy(self, path: InferencePath) -> tuple[bool, str]:
        """Whether the reduced-precision ``path`` keeps within the PSNR budget, and the figure it was judged by."""
        measured = BF16_MEASURED_DROP.get(self.srlab_spec.name) if path.dtype == torch.bfloat16 else None
        if measured is not None:  # an architecture over budget never gets here (unavailable_reason)
            return True, f"Set5 / Set14 x4 drop {measured[0]:.4f} / {measured[1]:.4f} dB measured"
        # A compiled path is judged by its dtype's uncompiled path: the same operations in the same dtype
        # (inductor's fused elementwise work computes in float32 between its loads and stores), and no compile
        # for the sample photo's size.
        basis = next(name for name, other in PATHS.items() if other.dtype == path.dtype and not other.compiled)
        if basis not in self._drops:
            self._drops[basis] = photo_drop_db(self.model, self.callable_for(basis))
        drop = self._drops[basis]
        return drop <= REDUCED_MAX_DROP_DB, f"sample photo PSNR-Y drop {drop:.4f} dB (limit {REDUCED_MAX_DROP_DB:g})"

    def _float64(self, x: torch.Tensor) -> torch.Tensor:
        """Eager's output on the probe ``x`` in float64, computed once per probe (a float64 forward)."""
        if self._exact is None or self._exact[0] is not x:
            self._exact = (x, float64_reference(self.model, x))
        return self._exact[1]

    def _packaged(self, name: str, shape: tuple[int, ...]) -> bool:
        """Whether a compiled path's package for ``shape`` is on disk already (loading it costs seconds, not a
        compile), so that ``auto`` tries it whatever the threshold."""
        if self.device.type != "cpu":
            return False
        if self._weights is None:
            self._weights = weights_fingerprint(self.model)
        return package_file(self.model, name, shape, weights=self._weights).is_file()

    def _still_available(self, name: str) -> bool:
        return name in PATHS and unavailable_reason(PATHS[name], self.model, self.device, self.precision) is None

    def _measure(self, names: list[str], shape: tuple[int, ...]) -> Selection:
        x = probe_image(shape).to(self.device)
        ref, eager_s, _ = _first_call(self.model, x)
        if ref is None:  # the model itself cannot take this input: let the caller's own call raise the error
            return Selection("eager", shape, [Candidate("eager", first_call_s=eager_s)])
        candidates, runs = [], {}
        for name in names:
            candidate = Candidate(name)
            candidates.append(candidate)
            if name == "eager":
                candidate.first_call_s, runs[name] = eager_s, self.model
                continue
            path = PATHS[name]
            candidate.skipped = unavailable_reason(path, self.model, self.device, self.precision)
            if (path.compiled and self.path == "auto" and eager_s < self.compile_from
                    and not self._packaged(name, shape)):
                candidate.skipped = (f"eager takes {1e3 * eager_s:.0f} ms at this size: compiling pays off from "
                                     f"{self.compile_from:g} s (--path {name} forces it)")
            if path.runtime == "onnxruntime" and self.path == "auto" and eager_s < EXPORT_MIN_EAGER_S:
                candidate.skipped = (f"eager takes {1e3 * eager_s:.0f} ms at this size: exporting pays off from "
                                     f"{EXPORT_MIN_EAGER_S:g} s (--path onnxruntime forces it)")
            if candidate.skipped:
                continue
            try:
                run = self.callable_for(name)
            except Exception as e:  # noqa: BLE001 - e.g. a module that cannot be copied or cast
                candidate.skipped = f"failed to build: {type(e).__name__}: {e}"
                continue
            out, candidate.first_call_s, candidate.skipped = _first_call(run, x)
            if out is None:
                continue
            ok, candidate.check = check_path(path, out, ref)
            if not ok and path.exact and torch.isfinite(out).all() and out.shape == ref.shape:
                ok, note = float32_rounding(self.model, x, ref, out, reference=lambda: self._float64(x))
                candidate.check += f"; {note}"
            if ok and not path.exact:
                ok, note = self._accuracy(path)
                candidate.check += f"; {note}"
            if not ok:
                candidate.skipped = f"check against fp32 eager failed: {candidate.check}"
                continue
            runs[name] = run
            self._ran.add(name)
        if self.path != "auto":  # forced: no timing, the path is used if it passed its check
            chosen = self.path if self.path in runs else "eager"
            return Selection(chosen, shape, candidates)
        if len(runs) > 1:
            for name, ms in _time_interleaved(runs, x, self.repeats).items():
                next(c for c in candidates if c.path == name).latency_ms = ms
        chosen = min(runs, key=lambda name: next(c.latency_ms or 0.0 for c in candidates if c.path == name))
        return Selection(chosen, shape, candidates)
