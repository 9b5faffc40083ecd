"""The operations of δ: pure functions of an image and explicit parameters, replayed by :func:`apply_ops`.

δ is a list of plain mappings, ``[{"op": "blur", "kernel": {...}}, {"op": "resize", "size": [64, 48],
"method": "bilinear"}, {"op": "gaussian_noise", "sigma": 15.0, "gray": false, "seed": 8125...}, ...]``:
JSON as written beside each LR image, and enough to redo the image bit for bit (the noise of a
noise entry comes from its own ``seed``). An operation is one function here plus one line in ``OPS``.

Images are float ``(3, H, W)`` tensors in [0, 1]; values may leave [0, 1] between operations (a
bicubic resize overshoots) until an operation that clamps (noise, JPEG, ``clamp``). :func:`apply_ops`
ends with the LR image the camera would store: clamped and rounded to 8 bits.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from srlab.data.degrade.kernels import make_kernel
from srlab.data.resize import imresize
from srlab.errors import SrlabError

# "bicubic" is MATLAB's imresize (antialiased when shrinking): srlab's D and the benchmarks'. The others
# are torch's F.interpolate (no antialiasing), the resizes of Real-ESRGAN's pipeline and stand-ins for
# the OpenCV ones of BSRGAN's.
RESIZE_METHODS = ("bicubic", "bicubic_pytorch", "bilinear", "area", "nearest")

# ITU-R BT.601 luma, the grey of torchvision's rgb_to_grayscale that Real-ESRGAN's grey noise uses.
_LUMA = (0.299, 0.587, 0.114)


def blur(image: Tensor, kernel: np.ndarray) -> Tensor:
    """Correlate each channel with ``kernel``; the border is mirrored without repeating the edge pixel
    (torch's "reflect", SciPy's "mirror", as Real-ESRGAN and BSRGAN pad), or repeated where the image is
    too small to mirror a kernel that wide."""
    weight = torch.from_numpy(kernel).to(image.dtype)
    pad_y, pad_x = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
    mode = "reflect" if pad_y < image.shape[-2] and pad_x < image.shape[-1] else "replicate"
    padded = F.pad(image[None], (pad_x, pad_x, pad_y, pad_y), mode=mode)
    channels = image.shape[0]
    return F.conv2d(padded, weight.expand(channels, 1, *weight.shape), groups=channels)[0]


def resize(image: Tensor, size: tuple[int, int], method: str, *, uint8: bool = False) -> Tensor:
    """``uint8``: MATLAB bicubic on the 8-bit image, rounded after each pass as MATLAB rounds uint8 images
    (the benchmarks' LR images, bit for bit; only for "bicubic")."""
    if method == "bicubic":
        return imresize(image, size=size, quantize=uint8)
    mode = "bicubic" if method == "bicubic_pytorch" else method
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(image[None], size=size, mode=mode, **align)[0]


def subsample(image: Tensor, step: int) -> Tensor:
    """Every ``step``-th pixel from the top-left one (BSRGAN's ``img[0::sf, 0::sf]``)."""
    return image[..., ::step, ::step]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grey(image: Tensor) -> Tensor:
    return sum(weight * channel for weight, channel in zip(_LUMA, image))[None]


def gaussian_noise(image: Tensor, sigma: float, gray: bool, seed: int,
                   covariance: list[list[float]] | None = None) -> Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``sigma``/255: independent per channel, the
    same in all three (``gray``), or correlated across channels with a 3x3 ``covariance`` (in 8-bit
    units², BSRGAN's third kind; ``sigma`` is then unused); clamps to [0, 1]."""
    height, width = image.shape[-2:]
    generator = _generator(seed)
    if covariance is not None:
        # A square root of the covariance that tolerates BSRGAN's |.|-made, not always positive
        # semi-definite matrices: their negative eigenvalues count as 0.
        values, vectors = np.linalg.eigh(np.asarray(covariance, dtype=np.float64))
        root = torch.from_numpy(vectors * np.sqrt(np.clip(values, 0, None)))
        white = torch.randn(3, height * width, generator=generator, dtype=torch.float64)
        noise = (root @ white).reshape(3, height, width).to(image.dtype) / 255
    elif gray:
        noise = torch.randn(1, height, width, generator=generator).to(image.dtype).mul(sigma / 255)
    else:
        noise = torch.randn(image.shape, generator=generator).to(image.dtype).mul(sigma / 255)
    return (image + noise).clamp(0, 1)


def poisson_noise(image: Tensor, scale: float, gray: bool, seed: int) -> Tensor:
    """Real-ESRGAN's Poisson (shot) noise (BasicSR ``generate_poisson_noise_pt``): on the 8-bit image,
    or its grey, ``Poisson(v * n) / n - v`` with ``n`` the number of distinct values rounded up to a
    power of two, times ``scale``, added to the image; clamps to [0, 1]."""
    source = (_grey(image) if gray else image).mul(255).round().clamp(0, 255).div(255)
    levels = 2.0 ** math.ceil(math.log2(len(torch.unique(source))))
    noise = torch.poisson(source.double() * levels, generator=_generator(seed)).div(levels) - source.double()
    return (image + noise.to(image.dtype) * scale).clamp(0, 1)


def jpeg(image: Tensor, quality: int) -> Tensor:
    """Encode the 8-bit image as a JPEG of ``quality`` (1-100) with Pillow's libjpeg, default 4:2:0
    chroma subsampling as OpenCV's encoder, and decode it."""
    samples = image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(samples, "RGB").save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as decoded:
        return torch.from_numpy(np.asarray(decoded.convert("RGB")).copy()).permute(2, 0, 1).to(image.dtype) / 255


def _field(entry: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = entry.get(key)
    if isinstance(value, bool) and kind is not bool:
        value = None
    if not isinstance(value, kind):
        raise SrlabError(f"degradation entry {entry!r}: '{key}' is missing or not a {getattr(kind, '__name__', 'number')}")
    return value


def _size(entry: dict[str, Any]) -> tuple[int, int]:
    size = entry.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in size)):
        raise SrlabError(f"degradation entry {entry!r}: 'size' must be [height, width], two integers >= 1")
    return int(size[0]), int(size[1])


def _resize_entry(image: Tensor, entry: dict[str, Any]) -> Tensor:
    method = entry.get("method")
    if method not in RESIZE_METHODS:
        raise SrlabError(f"degradation entry {entry!r}: unknown resize method {method!r}: "
                         f"use one of {', '.join(RESIZE_METHODS)}")
    uint8 = bool(entry.get("uint8", False))
    if uint8 and method != "bicubic":
        raise SrlabError(f"degradation entry {entry!r}: 'uint8' is MATLAB's and needs the bicubic method")
    return resize(image, _size(entry), method, uint8=uint8)


def _quality(entry: dict[str, Any]) -> int:
    quality = _field(entry, "quality", int)
    if not 1 <= quality <= 100:
        raise SrlabError(f"degradation entry {entry!r}: JPEG quality must be 1 to 100")
    return quality


NUMBER = (int, float)

# op name -> how to apply one δ entry of it.
OPS: dict[str, Callable[[Tensor, dict[str, Any]], Tensor]] = {
    "blur": lambda image, e: blur(image, make_kernel(_field(e, "kernel", dict))),
    "resize": _resize_entry,
    "subsample": lambda image, e: subsample(image, _field(e, "step", int)),
    "gaussian_noise": lambda image, e: gaussian_noise(
        image, float(e.get("sigma", 0.0)), bool(e.get("gray", False)), _field(e, "seed", int), e.get("covariance")),
    "poisson_noise": lambda image, e: poisson_noise(
        image, float(_field(e, "scale", NUMBER)), bool(e.get("gray", False)), _field(e, "seed", int)),
    "jpeg": lambda image, e: jpeg(image, _quality(e)),
    "clamp": lambda image, e: image.clamp(0, 1),
}


def apply_ops(image: Tensor, ops: list[dict[str, Any]]) -> Tensor:
    """Replay δ on a float (3, H, W) image in [0, 1]; the result is clamped and rounded to 8 bits
    (values k/255), float32."""
    if not (isinstance(image, Tensor) and image.ndim == 3 and image.shape[0] == 3 and image.is_floating_point()):
        raise SrlabError(f"degradation: expected a float (3, H, W) image, got {getattr(image, 'shape', image)!r}")
    out = image.float()
    for entry in ops:
        op = entry.get("op") if isinstance(entry, dict) else None
        if op not in OPS:
            raise SrlabError(f"degradation entry {entry!r}: unknown op {op!r}: use one of {', '.join(OPS)}")
        out = OPS[op](out, entry)
    return out.clamp(0, 1).mul(255).round().div(255)
