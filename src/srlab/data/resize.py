"""MATLAB ``imresize(x, scale, 'bicubic')`` in torch, batched and device-agnostic.

The SR literature's LR inputs and its "Bicubic" baseline row were made by MATLAB. PIL, OpenCV,
torchvision and skimage all resize differently (no antialiasing, other kernels or other edges), and
even a one-level difference on an 8-bit LR image moves PSNR in the second decimal, so the quantised
mode here reproduces MATLAB bit-exactly: tests/data/test_resize.py compares every pixel of
Set5/Set14 at x2, x3 and x4 against the MATLAB-made files.

What MATLAB does, and therefore what this module does (all measured on those files):

* Keys cubic kernel, a = -0.5. When downscaling, the kernel is stretched by 1/scale (antialiasing).
* Output pixel x (1-based) samples input coordinate ``u = x/scale + 0.5 * (1 - 1/scale)``.
* Taps outside the image take the nearest edge pixel (replicate). Ports of MATLAB's
  contributions() often mirror the indices instead (``aux = [1:n, n:-1:1]``); on the benchmark
  files mirroring is off by up to 11 levels near the borders, while replicate matches every pixel.
* The two 1-D passes run in order of increasing scale, height first on ties; uint8 images are
  rounded back to uint8 after each pass, which is why ``quantize=True`` rounds twice.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from srlab.errors import SrlabError

__all__ = ["imresize", "bicubic_downscale", "bicubic_upscale", "downscaled_size"]


def _cubic(x: Tensor | np.ndarray) -> Tensor | np.ndarray:
    # Keys' cubic convolution kernel with a = -0.5, in the form MATLAB's cubic() writes it.
    ax = abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@dataclass(frozen=True)
class _Run:
    """Outputs ``first, first + period, ...`` (``count`` of them) whose taps all lie in the image.

    They share one set of weights and their taps advance by ``step`` pixels from one to the next,
    so each tap is one strided slice of the input: no gather and no edge-padded copy.
    """

    first: int
    count: int
    taps: tuple[tuple[int, float], ...]  # (input index for the first output, weight), in order


@dataclass(frozen=True)
class _AxisPlan:
    """How one axis of length ``in_len`` becomes ``out_len``; built once per shape and scale.

    ``weights``/``indices`` are the general form, valid for any scale: output j is
    ``sum_k weights[j, k] * x[indices[j, k]]``. For integer and 1/integer scales the weights repeat
    every ``period`` outputs, so all outputs away from the borders go through ``runs`` (strided
    slices) and only the few listed in ``edges`` take the general form.
    """

    in_len: int
    out_len: int
    weights: Tensor  # (out_len, P) float64, each row sums to 1
    indices: Tensor  # (out_len, P) int64, clamped into the image (edge replication)
    period: int = 1
    step: int = 1
    runs: tuple[_Run, ...] = ()
    edges: Tensor | None = None  # output indices not covered by runs


@functools.lru_cache(maxsize=256)
def _plan(in_len: int, out_len: int, scale: float) -> _AxisPlan:
    # MATLAB's contributions(), in float64 on the CPU; the result is small and cached.
    kernel_width = 4.0
    if scale < 1:  # antialiasing: stretch the kernel so it low-passes before subsampling
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    raw = left[:, None] + torch.arange(taps, dtype=torch.float64)
    dist = u[:, None] - raw
    weights = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Taps that are zero for every output cost time and change nothing; MATLAB drops them too.
    keep = (weights != 0).any(dim=0)
    weights, raw = weights[:, keep], raw[:, keep].long() - 1  # 0-based, may lie outside
    plan = _AxisPlan(in_len, out_len, weights, raw.clamp(0, in_len - 1))
    return _with_runs(plan, raw, scale)


def _with_runs(plan: _AxisPlan, raw: Tensor, scale: float) -> _AxisPlan:
    """Add the strided runs to ``plan`` when the scale is an integer or 1/integer.

    Runs are taken only where the weights really repeat bit for bit, so both forms give the same
    sums in the same order: the fast path cannot change a result.
    """
    if scale >= 1 and scale == round(scale):
        period, step = round(scale), 1
    elif scale < 1 and 1 / scale == round(1 / scale):
        period, step = 1, round(1 / scale)
    else:
        return plan
    runs, covered = [], torch.zeros(plan.out_len, dtype=torch.bool)
    for r in range(min(period, plan.out_len)):
        outs = torch.arange(r, plan.out_len, period)
        w, taps = plan.weights[outs], raw[outs]
        mid = len(outs) // 2  # the reference row: far from the borders if anything is
        live = w[mid] != 0  # zero taps are skipped, so they may point outside the image
        inside = ((taps >= 0) & (taps < plan.in_len))[:, live].all(dim=1)
        same_w = (w == w[mid]).all(dim=1)
        shift = step * (outs - outs[mid]) // period  # taps move by step per period outputs
        same_taps = (taps - taps[mid] == shift[:, None]).all(dim=1)
        good = inside & same_w & same_taps
        where = good.nonzero().flatten()
        if len(where) == 0:
            continue
        lo, hi = int(where[0]), int(where[-1]) + 1
        if not bool(good[lo:hi].all()):  # not expected (taps are affine in m), but stay exact
            return plan
        first = r + period * lo
        run_taps = zip(taps[lo][live].tolist(), w[mid][live].tolist())
        runs.append(_Run(first, hi - lo, tuple(run_taps)))
        covered[first::period][: hi - lo] = True
    edges = (~covered).nonzero().flatten()
    return dataclasses.replace(plan, period=period, step=step, runs=tuple(runs), edges=edges)


def _take(x: Tensor, dim: int, start: int, count: int, step: int) -> Tensor:
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, start + step * (count - 1) + 1, step)
    return x[tuple(index)]


def _gather(x: Tensor, dim: int, weights: Tensor, indices: Tensor) -> Tensor:
    # Each tap's source rows (or columns) gathered and accumulated tap by tap, in order: the order
    # MATLAB sums in, which keeps float64 results identical to it.
    shape = [1] * x.dim()
    shape[dim] = weights.shape[0]
    weights = weights.to(device=x.device, dtype=x.dtype)
    indices = indices.to(x.device)
    out = x.index_select(dim, indices[:, 0]) * weights[:, 0].view(shape)
    for k in range(1, weights.shape[1]):
        out.addcmul_(x.index_select(dim, indices[:, k]), weights[:, k].view(shape))
    return out


def _resize_axis(
    x: Tensor,
    dim: int,
    plan: _AxisPlan,
    lo: int = 0,
    hi: int | None = None,
    offset: int = 0,
    out: Tensor | None = None,
) -> Tensor:
    """Outputs ``lo:hi`` of one axis, from ``x`` whose first pixel along ``dim`` is ``offset``.

    The output range and offset let the caller work on a band of the image at a time.
    """
    hi = plan.out_len if hi is None else hi
    if not plan.runs:
        result = _gather(x, dim, plan.weights[lo:hi], plan.indices[lo:hi] - offset)
        return result if out is None else out.copy_(result)
    if out is None:
        shape = list(x.shape)
        shape[dim] = hi - lo
        out = x.new_empty(shape)
    for run in plan.runs:
        # The run's outputs first + period * m that fall in lo:hi, for m in m0:m1.
        m0 = max(0, -((run.first - lo) // plan.period))
        m1 = min(run.count, -((run.first - hi) // plan.period))
        if m1 <= m0:
            continue
        # Accumulated straight into the output's view: no temporaries the size of the band.
        acc = _take(out, dim, run.first + plan.period * m0 - lo, m1 - m0, plan.period)
        (start, weight), *rest = run.taps
        shift = plan.step * m0 - offset
        torch.mul(_take(x, dim, start + shift, m1 - m0, plan.step), weight, out=acc)
        for start, weight in rest:
            acc.add_(_take(x, dim, start + shift, m1 - m0, plan.step), alpha=weight)
    edges = plan.edges[(plan.edges >= lo) & (plan.edges < hi)]
    if len(edges):
        border = _gather(x, dim, plan.weights[edges], plan.indices[edges] - offset)
        out.index_copy_(dim % out.dim(), (edges - lo).to(x.device), border)
    return out


def _round_uint8(v: Tensor) -> Tensor:
    """MATLAB's double -> uint8 cast, in place: saturate, then round half away from zero.

    torch.round would round half to even, and ties are common (upscaling weights are dyadic).
    floor(v + 0.5) is exact here: for v >= 0.5 the sum cannot round across an integer, and below
    0.5 only the single float just under 0.5 would (it cannot come out of a weighted sum of
    integers in practice). In place, because these are the largest tensors of the quantised mode.
    """
    return v.clamp_(0, 255).add_(0.5).floor_()


def _check_image(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor):
        raise SrlabError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise SrlabError(
            f"{what}: expected an image tensor shaped (..., H, W), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise SrlabError(
            f"{what}: expected a float tensor with values in [0, 1], got dtype {x.dtype}; "
            "convert uint8 images with x.float() / 255"
        )
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise SrlabError(f"{what}: the image is empty (shape {tuple(x.shape)})")


# On the CPU the image goes through both passes a band of output rows at a time, so that the
# intermediate image and the rows each tap reads stay in cache and no image-sized temporaries are
# allocated: on a 2K image the quantised mode is about 3x faster than with two whole-image passes,
# the float mode about 1.2x. The sums are the same; only the order of the bands differs.
# 2**18 elements per band of the first pass's output measured best (2**17..2**19 are close).
_BAND_ELEMENTS = 1 << 18


def _resize(x: Tensor, size: tuple[int, int], scales: tuple[float, float], quantize: bool) -> Tensor:
    if scales[1] < scales[0]:
        # MATLAB resizes the most-shrunk dimension first (with rounding in between, the order
        # changes the result). The band loop below goes height first, so swap the axes instead.
        flipped = _resize(x.transpose(-1, -2), size[::-1], scales[::-1], quantize)
        return flipped.transpose(-1, -2).contiguous()
    # Images from numpy often arrive as permuted (channels-last) views; strided slices of those
    # are several times slower, so pay for one contiguous copy up front.
    x = x.contiguous()
    rows = _plan(x.shape[-2], size[0], scales[0])
    cols = _plan(x.shape[-1], size[1], scales[1])
    out = x.new_empty((*x.shape[:-2], *size))
    if out.numel() == 0:
        return out
    if quantize:
        x = x.detach()  # rounding has no useful gradient, and the fast path cannot record one
    elif x.requires_grad and torch.is_grad_enabled():
        # The fast path writes into views (out=...), which autograd refuses; gathers are plain ops.
        return _gather(_gather(x, -2, rows.weights, rows.indices), -1, cols.weights, cols.indices)
    leading = x.numel() // (x.shape[-2] * x.shape[-1])
    # A GPU wants few large kernels rather than cache-sized bands.
    band = max(1, _BAND_ELEMENTS // (leading * x.shape[-1])) if x.device.type == "cpu" else size[0]
    bands = []
    for lo in range(0, size[0], band):
        hi = min(lo + band, size[0])
        taps = rows.indices[lo:hi]
        bands.append((lo, hi, int(taps.min()), int(taps.max()) + 1))  # + the input rows it reads
    if quantize:
        # One float64 buffer for every band's input rows: a fresh multi-MB allocation is
        # page-faulted in again each time, which costs more than the arithmetic on it.
        most = max(last - first for _, _, first, last in bands)
        scratch = x.new_empty(leading * most * x.shape[-1], dtype=torch.float64)
    for lo, hi, first, last in bands:
        v = x[..., first:last, :]
        if not quantize:
            v = _resize_axis(v, -2, rows, lo, hi, offset=first)
            _resize_axis(v, -1, cols, out=out[..., lo:hi, :])
            continue
        levels = scratch[: v.numel()].view(v.shape).copy_(v)
        v = _round_uint8(levels.mul_(255))  # the uint8 image MATLAB is given
        v = _round_uint8(_resize_axis(v, -2, rows, lo, hi, offset=first))
        v = _round_uint8(_resize_axis(v, -1, cols))
        out[..., lo:hi, :] = v.div_(255)
    return out


def imresize(
    x: Tensor,
    *,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    quantize: bool = False,
) -> Tensor:
    """Resize the last two dims of ``x`` exactly as MATLAB ``imresize(x, ..., 'bicubic')`` would.

    Give either ``scale`` (output ``ceil(scale * H) x ceil(scale * W)``, MATLAB's rule) or ``size``
    ``(H_out, W_out)``. ``x`` is float in [0, 1], shaped (..., H, W) with any leading dims.

    ``quantize=True`` is for reproducing the published protocol: ``x`` is taken as the 8-bit image
    ``round(255 * x)``, computed in float64 and rounded to 8 bits after each pass, as MATLAB does
    with uint8 images; the result is still ``value / 255`` in ``x``'s dtype. ``quantize=False``
    skips all rounding and clamping and computes in ``x``'s dtype: use it in training pipelines,
    where the LR image stays in float and gradients may flow through.
    """
    _check_image(x, "imresize")
    height, width = x.shape[-2:]
    if (scale is None) == (size is None):
        raise SrlabError("imresize: give exactly one of scale= and size=")
    if scale is not None:
        number = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        if not (number and math.isfinite(scale) and scale > 0):
            raise SrlabError(f"imresize: scale must be a positive number, got {scale!r}")
        scale = float(scale)
        size = (math.ceil(scale * height), math.ceil(scale * width))
        scales = (scale, scale)
    else:
        pair = list(size) if isinstance(size, (tuple, list)) else []
        ints = [n for n in pair if isinstance(n, int) and not isinstance(n, bool) and n > 0]
        if len(pair) != 2 or len(ints) != 2:
            raise SrlabError(f"imresize: size must be two positive ints (H, W), got {size!r}")
        size = (int(size[0]), int(size[1]))
        scales = (size[0] / height, size[1] / width)
    return _resize(x, size, scales, quantize)


def _integer_scale(scale: int, what: str) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise SrlabError(f"{what}: scale must be an integer >= 1, got {scale!r}")
    return scale


def _real_scale(scale: float, what: str) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (1 <= scale < math.inf):
        raise SrlabError(f"{what}: scale must be a real number >= 1, got {scale!r}")
    return scale


def downscaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The size of MATLAB's ``imresize(hr, 1/scale)``: ``ceil((1/scale) * H) x ceil((1/scale) * W)``.

    For an integer ``scale`` this is computed in integers, ``ceil(H / s)``; otherwise it is MATLAB's
    own double arithmetic (``1/scale`` rounded to a double, times the size, then ``ceil``), so that a
    product a hair above an integer adds a row exactly when MATLAB's does.
    """
    if float(scale).is_integer():
        s = int(scale)
        return -(-height // s), -(-width // s)
    inverse = 1 / scale
    return math.ceil(inverse * height), math.ceil(inverse * width)


def bicubic_downscale(x: Tensor, scale: float, *, quantize: bool = False) -> Tensor:
    """The degradation D(y; s) of the SR benchmarks: HR ``x`` (..., H, W) -> LR of
    :func:`downscaled_size`, for any real ``scale`` >= 1.

    Mod-crop ``x`` first (:func:`srlab.data.datasets.modcrop`) if the LR image must pair with it pixel
    for pixel. With ``quantize=True`` the result is MATLAB's ``imresize(hr, 1/s, 'bicubic')`` on the
    uint8 image: bit for bit at x2, x3, x4 (tests/data/test_resize.py compares MATLAB's files); at
    non-integer scales by the same rules (kernel stretched by s, taps at ``x*s + 0.5*(1 - s)``),
    checked against hand-computed MATLAB arithmetic, with no MATLAB-made file to compare.
    """
    scale = _real_scale(scale, "bicubic_downscale")
    _check_image(x, "bicubic_downscale")
    size = downscaled_size(*x.shape[-2:], scale)
    return _resize(x, size, (1 / scale, 1 / scale), quantize)


def bicubic_upscale(x: Tensor, scale: int, *, quantize: bool = False) -> Tensor:
    """MATLAB's bicubic upscaling by an integer factor: the "Bicubic" baseline row of SR papers."""
    scale = _integer_scale(scale, "bicubic_upscale")
    _check_image(x, "bicubic_upscale")
    if torch.jit.is_tracing() or getattr(torch.compiler, "is_exporting", lambda: False)():  # torch < 2.5: none
        return _upscale_as_convolutions(x, scale, quantize)
    height, width = x.shape[-2:]
    return _resize(x, (height * scale, width * scale), (float(scale), float(scale)), quantize)


def _upscale_as_convolutions(x: Tensor, scale: int, quantize: bool) -> Tensor:
    """``bicubic_upscale`` for the ONNX exporters (srlab.export): the same taps and weights, as replicate
    padding and one convolution per axis whose ``scale`` output channels are the output phases, so the
    graph takes any size (the plans above are Python data built per size). Float sums in another order:
    within ~1e-7 of the other path; quantised, in the input's precision rather than float64."""
    if quantize:
        x = (x * 255).clamp(0, 255).add(0.5).floor()
    for dim in (-2, -1):  # height first, as MATLAB on ties
        x = _upscale_axis_as_convolution(x, scale, dim)
        if quantize:
            x = x.clamp(0, 255).add(0.5).floor()
    return x / 255 if quantize else x


@functools.lru_cache(maxsize=16)
def _phase_kernel(scale: int) -> np.ndarray:
    """(scale, 2 * pad + 1) float64: output ``scale * q + r`` away from the borders is
    ``sum_t kernel[r, t] * x[q - pad + t]``, MATLAB's contributions() for the middle of an axis.

    numpy, not torch: ``torch.export`` traces torch's factory functions into fake tensors, and
    :func:`_plan`'s search for repeating weights then fails on data-dependent sizes. The same arithmetic
    as ``_plan``, the weights' sums in numpy's order (tests/data/test_resize.py: equal to 3e-16).
    """
    # Output j (1-based) samples u = j/s + (1 - 1/s)/2; its taps are floor(u - 2) + 0..5, as in _plan.
    j = np.arange(1, scale + 1, dtype=np.float64) + 8 * scale  # the middle of a 16-pixel axis
    u = j / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - 2.0)
    taps = left[:, None] + np.arange(6, dtype=np.float64)
    weights = _cubic(u[:, None] - taps)
    weights = weights / weights.sum(axis=1, keepdims=True)
    offsets = taps.astype(np.int64) - 1 - 8  # 0-based input index minus q
    live = weights != 0
    pad = int(np.abs(offsets[live]).max())
    kernel = np.zeros((scale, 2 * pad + 1))
    for r in range(scale):
        for offset, weight in zip(offsets[r][live[r]], weights[r][live[r]]):
            kernel[r, offset + pad] += weight
    return kernel


def _upscale_axis_as_convolution(x: Tensor, scale: int, dim: int) -> Tensor:
    kernel = torch.from_numpy(_phase_kernel(scale))
    pad = kernel.shape[1] // 2
    *lead, height, width = x.shape
    v = x.reshape(-1, 1, height, width)
    if dim == -2:
        weight = kernel.view(scale, 1, -1, 1)
        v = torch.nn.functional.pad(v, (0, 0, pad, pad), mode="replicate")
    else:
        weight = kernel.view(scale, 1, 1, -1)
        v = torch.nn.functional.pad(v, (pad, pad, 0, 0), mode="replicate")
    v = torch.nn.functional.conv2d(v, weight.to(device=x.device, dtype=x.dtype))  # (B, scale, H, W)
    if dim == -2:
        return v.permute(0, 2, 1, 3).reshape(*lead, height * scale, width)
    return v.permute(0, 2, 3, 1).reshape(*lead, height, width * scale)
