"""Blur kernels of the degradation D(y; δ): each is a function of its explicit parameters, normalised to sum 1.

A kernel is described in δ by a plain mapping, ``{"type": "gaussian", "size": 21, "sigma_x": 2.0, ...}``,
and :func:`make_kernel` builds it. Coordinates are ``(x, y)`` = (column, row) offsets from the kernel's
centre, and an anisotropic kernel's covariance is ``R(theta) diag(sigma_x², sigma_y²) R(theta)ᵀ``, the
convention of BasicSR's ``basicsr/data/degradations.py`` (XPixelGroup/BasicSR@8d56e3a) that Real-ESRGAN
samples from. With ``q = (x, y) Σ⁻¹ (x, y)ᵀ``:

- ``gaussian``: ``exp(-q / 2)`` (isotropic when ``sigma_y == sigma_x``);
- ``generalized_gaussian``: ``exp(-q**beta / 2)`` (BasicSR's form: ``beta = 1`` is the Gaussian);
- ``plateau``: ``1 / (1 + q**beta)``;
- ``sinc``: the circular low-pass filter ``cutoff J1(cutoff r) / (2 pi r)`` (its limit ``cutoff² / (4 pi)``
  at the centre), ``cutoff`` in radians per pixel (pi: no filtering);
- ``file``: a kernel read from a ``.npy`` or text file (whitespace or comma separated rows).

``center`` (``[dx, dy]``, default ``[0, 0]``) moves a Gaussian's peak off the middle tap: BSRGAN's
"blur, then keep every s-th pixel" step uses a kernel centred on the s x s block it stands for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from srlab.errors import SrlabError

KERNEL_TYPES = ("gaussian", "generalized_gaussian", "plateau", "sinc", "file")


def _grid(size: int, center: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) offsets of every tap from the kernel's centre (plus ``center``), each (size, size)."""
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2
    x, y = np.meshgrid(axis - center[0], axis - center[1])
    return x, y


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float,
                    center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """``(x, y) Σ⁻¹ (x, y)ᵀ`` with ``Σ = R(theta) diag(sigma_x², sigma_y²) R(theta)ᵀ``."""
    x, y = _grid(size, center)
    along = math.cos(theta) * x + math.sin(theta) * y  # the coordinates in the rotated frame: Rᵀ (x, y)
    across = -math.sin(theta) * x + math.cos(theta) * y
    return (along / sigma_x) ** 2 + (across / sigma_y) ** 2


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                    center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    q = _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta, center)
    return _normalised(np.exp(-0.5 * q))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                                beta: float = 1.0) -> np.ndarray:
    q = _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalised(np.exp(-0.5 * q ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                   beta: float = 1.0) -> np.ndarray:
    q = _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalised(1.0 / (1.0 + q ** beta))


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1 by Bessel's integral ``J1(x) = (1/2pi) ∫ cos(t - x sin t) dt`` over one period, with the
    trapezoidal rule: exact to rounding for a periodic analytic integrand once the points outnumber
    ``|x|`` by a few dozen. (SciPy is not a dependency; torch's ``bessel_j1`` is off by up to 5e-7.)"""
    points = int(np.abs(x).max(initial=0.0)) + 64
    t = np.arange(points) * (2 * math.pi / points)
    return np.cos(t - x[..., None] * np.sin(t)).mean(axis=-1)


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    x, y = _grid(size)
    r = np.hypot(x, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = cutoff * bessel_j1(cutoff * r) / (2 * math.pi * r)
    kernel[r == 0] = cutoff ** 2 / (4 * math.pi)
    return _normalised(kernel)


def read_kernel_file(path: str | Path) -> np.ndarray:
    """A user kernel: a 2-D ``.npy`` array or a text file of rows; odd sides, finite, positive sum."""
    path = Path(path)
    try:
        kernel = np.load(path, allow_pickle=False) if path.suffix.lower() == ".npy" else \
            np.loadtxt(path, delimiter="," if "," in path.read_text() else None, ndmin=2)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise SrlabError(f"cannot read kernel file '{path}': {' '.join(str(e).split())} "
                         "(give a .npy array or a text file of numbers, one row per line)") from None
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise SrlabError(f"kernel file '{path}' holds a {'x'.join(map(str, kernel.shape))} array: "
                         "a kernel is 2-D with odd sides (its centre is the middle tap)")
    if not np.isfinite(kernel).all() or not kernel.sum() > 0:
        raise SrlabError(f"kernel file '{path}' must hold finite numbers with a positive sum")
    return _normalised(kernel)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(spec: dict[str, Any], key: str, default: float | None = None, *, positive: bool = False) -> float:
    value = spec.get(key, default)
    if not _finite(value):
        raise SrlabError(f"blur kernel {spec!r}: '{key}' must be a number, got {value!r}")
    if positive and not value > 0:
        raise SrlabError(f"blur kernel {spec!r}: '{key}' must be > 0, got {value!r}")
    return float(value)


def _size(spec: dict[str, Any]) -> int:
    size = spec.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise SrlabError(f"blur kernel {spec!r}: 'size' must be an odd integer >= 1, got {size!r}")
    return size


def make_kernel(spec: dict[str, Any]) -> np.ndarray:
    """The kernel a δ entry describes (see the module's docstring), float64, summing to 1."""
    kind = spec.get("type")
    if kind == "file":
        return read_kernel_file(spec.get("path", ""))
    if kind == "sinc":
        return sinc_kernel(_size(spec), _number(spec, "cutoff", positive=True))
    if kind not in KERNEL_TYPES:
        raise SrlabError(f"blur kernel {spec!r}: unknown type {kind!r}: use one of {', '.join(KERNEL_TYPES)}")
    size, sigma_x = _size(spec), _number(spec, "sigma_x", positive=True)
    sigma_y = _number(spec, "sigma_y", sigma_x, positive=True)
    theta = _number(spec, "theta", 0.0)
    if kind == "gaussian":
        center = spec.get("center", [0.0, 0.0])
        if not (isinstance(center, (list, tuple)) and len(center) == 2 and all(map(_finite, center))):
            raise SrlabError(f"blur kernel {spec!r}: 'center' must be [dx, dy], two numbers")
        return gaussian_kernel(size, sigma_x, sigma_y, theta, (float(center[0]), float(center[1])))
    beta = _number(spec, "beta", positive=True)
    maker = generalized_gaussian_kernel if kind == "generalized_gaussian" else plateau_kernel
    return maker(size, sigma_x, sigma_y, theta, beta)
