"""Steps: the building blocks a user lists (``--steps FILE.yaml``, ``degradation: {steps: [...]}``).

A step samples its parameters from the pipeline's random generator and adds the δ entries it chose
(:mod:`srlab.data.degrade.ops`) to a :class:`Builder`. Every parameter is a number or a ``[low, high]``
range drawn uniformly (JPEG qualities: integers, both ends included; kernel sizes: the odd ones); every step takes
``prob`` (default 1), the chance that it runs at all. A new step is one function plus one line in
``STEPS``. The steps, with their parameters and defaults::

    - {step: blur, kernel: iso, sigma: [0.2, 3], size: 21}   # iso, aniso, generalized_iso, generalized_aniso,
      # plateau_iso, plateau_aniso (sigma, sigma_y (default: sigma's range), theta (default [-pi, pi]), beta),
      # sinc (cutoff, radians), file (path)
    - {step: downscale, method: bicubic}       # to the LR size (scale: default the pipeline's); a method or a
      # list to pick from: bicubic (MATLAB), bicubic_pytorch, bilinear, area, nearest; uint8: true rounds
      # as MATLAB does on 8-bit images (bicubic only; first step: the benchmarks' LR images exactly)
    - {step: noise, sigma: 15}                 # Gaussian, sigma in 8-bit units; gray: a probability (or bool)
    - {step: noise, kind: poisson, scale: 1}   # Poisson (Real-ESRGAN's), gray as above
    - {step: jpeg, quality: [30, 95]}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from srlab.data.degrade.ops import RESIZE_METHODS
from srlab.data.resize import downscaled_size
from srlab.errors import SrlabError


class Builder:
    """The δ being sampled: its entries, the image size they lead to, the pipeline's scale and generator."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], scale: float) -> None:
        self.rng, self.size, self.scale = rng, size, scale
        self.ops: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any]) -> None:
        if entry["op"] == "resize":
            self.size = tuple(entry["size"])
        elif entry["op"] == "subsample":
            self.size = tuple(-(-n // entry["step"]) for n in self.size)
        self.ops.append(entry)

    def resize(self, size: tuple[float, float], method: str) -> None:
        """Resize to ``size`` (rounded down, at least one pixel)."""
        self.add({"op": "resize", "size": [max(1, int(n)) for n in size], "method": method})

    def seed(self) -> int:
        """A seed for one entry's noise, recorded in the entry."""
        return int(self.rng.integers(2**63))

    def chance(self, probability: float) -> bool:
        return bool(self.rng.random() < probability)


def draw(rng: np.random.Generator, value: Any, where: str, *, integer: bool = False) -> float | int:
    """A number as given, or a uniform draw from a ``[low, high]`` range."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
        low, high = sorted(value)
        return int(rng.integers(int(low), int(high) + 1)) if integer else float(rng.uniform(low, high))
    if _is_number(value):
        return int(value) if integer else float(value)
    raise SrlabError(f"degradation step {where}: expected a number or a [low, high] range, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _probability(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if not (_is_number(value) and 0 <= value <= 1):
        raise SrlabError(f"degradation step {where}: a probability in [0, 1] (or true/false), got {value!r}")
    return float(value)


_BLUR_KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
                 "sinc", "file")


def _blur(b: Builder, step: dict[str, Any]) -> None:
    kind, where = step.get("kernel", "iso"), f"{step!r}"
    if kind not in _BLUR_KERNELS:
        raise SrlabError(f"degradation step {where}: unknown kernel {kind!r}: use one of {', '.join(_BLUR_KERNELS)}")
    if kind == "file":
        b.add({"op": "blur", "kernel": {"type": "file", "path": str(step.get("path", ""))}})
        return
    size = _odd_size(b, step.get("size", 21), where)
    if kind == "sinc":
        b.add({"op": "blur", "kernel": {"type": "sinc", "size": size, "cutoff": draw(b.rng, step.get("cutoff", math.pi / 2), where)}})
        return
    sigma = step.get("sigma", [0.2, 3.0])
    kernel = {"type": {"generalized": "generalized_gaussian", "plateau": "plateau"}.get(kind.split("_")[0], "gaussian"),
              "size": size, "sigma_x": draw(b.rng, sigma, where)}
    if kind.endswith("aniso"):
        kernel["sigma_y"] = draw(b.rng, step.get("sigma_y", sigma), where)
        kernel["theta"] = draw(b.rng, step.get("theta", [-math.pi, math.pi]), where)
    if kernel["type"] != "gaussian":
        kernel["beta"] = draw(b.rng, step.get("beta", 1.0), where)
    b.add({"op": "blur", "kernel": kernel})


def _odd_size(b: Builder, value: Any, where: str) -> int:
    """A kernel side: the odd number given, or one of the odd numbers of a ``[low, high]`` range."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
        low, high = sorted(int(v) for v in value)
        sides = list(range(low | 1, high + 1, 2))
        if sides:
            return int(sides[int(b.rng.integers(len(sides)))])
    if _is_number(value) and int(value) == value and int(value) % 2 == 1 and value >= 1:
        return int(value)
    raise SrlabError(f"degradation step {where}: a kernel size is an odd integer or a range holding one, got {value!r}")


def _methods(value: Any, where: str) -> list[str]:
    methods = [value] if isinstance(value, str) else value
    if not (isinstance(methods, list) and methods and all(m in RESIZE_METHODS for m in methods)):
        raise SrlabError(f"degradation step {where}: method must be one of {', '.join(RESIZE_METHODS)} "
                         f"(or a list of them), got {value!r}")
    return methods


def _downscale(b: Builder, step: dict[str, Any]) -> None:
    where = f"{step!r}"
    scale = draw(b.rng, step.get("scale", b.scale), where)
    if not scale >= 1:
        raise SrlabError(f"degradation step {where}: a downscaling scale must be >= 1, got {scale}")
    methods = _methods(step.get("method", "bicubic"), where)
    method = methods[int(b.rng.integers(len(methods)))]
    entry = {"op": "resize", "size": list(downscaled_size(*b.size, scale)), "method": method}
    if step.get("uint8", False) and method == "bicubic":
        entry["uint8"] = True
    b.add(entry)


def _noise(b: Builder, step: dict[str, Any]) -> None:
    kind, where = step.get("kind", "gaussian"), f"{step!r}"
    gray = b.chance(_probability(step.get("gray", False), where))
    if kind == "gaussian":
        b.add({"op": "gaussian_noise", "sigma": draw(b.rng, step.get("sigma", 15), where), "gray": gray, "seed": b.seed()})
    elif kind == "poisson":
        b.add({"op": "poisson_noise", "scale": draw(b.rng, step.get("scale", 1.0), where), "gray": gray, "seed": b.seed()})
    else:
        raise SrlabError(f"degradation step {where}: unknown noise kind {kind!r}: use gaussian or poisson")


def _jpeg(b: Builder, step: dict[str, Any]) -> None:
    quality = draw(b.rng, step.get("quality", [30, 95]), f"{step!r}", integer=True)
    if not 1 <= quality <= 100:
        raise SrlabError(f"degradation step {step!r}: JPEG quality must be 1 to 100, got {quality}")
    b.add({"op": "jpeg", "quality": quality})


# step name -> (sampler, the parameters it reads besides `step` and `prob`).
STEPS: dict[str, tuple[Callable[[Builder, dict[str, Any]], None], tuple[str, ...]]] = {
    "blur": (_blur, ("kernel", "sigma", "sigma_y", "theta", "beta", "size", "cutoff", "path")),
    "downscale": (_downscale, ("scale", "method", "uint8")),
    "noise": (_noise, ("kind", "sigma", "scale", "gray")),
    "jpeg": (_jpeg, ("quality",)),
}


def check_steps(steps: Any) -> list[dict[str, Any]]:
    """Refuse unknown steps and parameters before any image is read."""
    if not isinstance(steps, list) or not steps:
        raise SrlabError(f"degradation steps must be a non-empty list of mappings, got {steps!r}")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("step") not in STEPS:
            name = step.get("step") if isinstance(step, dict) else step
            raise SrlabError(f"degradation step {i} ({name!r}) is not one of {', '.join(STEPS)}: "
                             "write each as a mapping, e.g. {step: noise, sigma: 15}")
        unknown = sorted(set(step) - {"step", "prob", *STEPS[step["step"]][1]})
        if unknown:
            raise SrlabError(f"degradation step {i} ({step['step']}): unknown parameter {unknown[0]!r}: valid are "
                             f"prob, {', '.join(STEPS[step['step']][1])}")
        _probability(step.get("prob", 1.0), f"{i} prob")
    return steps


def run_steps(b: Builder, steps: list[dict[str, Any]]) -> None:
    for step in steps:
        if b.chance(_probability(step.get("prob", 1.0), f"{step!r}")):
            STEPS[step["step"]][0](b, step)
