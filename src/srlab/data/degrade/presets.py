"""The published random degradation pipelines, as samplers of δ (:mod:`srlab.data.degrade.ops`).

Both draw their parameters from the published ranges with the pipeline's own generator: the same
distributions as the official code, not its random streams (their outputs are not reproduced pixel for
pixel). Where srlab differs it says so below.

``realesrgan``: Real-ESRGAN's second-order pipeline, xinntao/Real-ESRGAN@a4abfb2
(``options/train_realesrnet_x4plus.yml``, ``realesrgan/models/realesrnet_model.py::feed_data``) with
BasicSR's kernel and noise sampling (XPixelGroup/BasicSR@8d56e3a, ``basicsr/data/realesrgan_dataset.py``,
``basicsr/data/degradations.py``). Twice: blur (sizes 7..21; sinc with probability 0.1, else iso/aniso/
generalized/plateau kernels with probabilities .45/.25/.12/.03/.12/.03; sigma [0.2, 3] then [0.2, 1.5];
the second blur with probability 0.8), resize (up/down/keep with probabilities .2/.7/.1 in [0.15, 1.5],
then .3/.4/.3 in [0.3, 1.2], by area, bilinear or bicubic), Gaussian noise (probability 0.5; sigma [1, 30]
then [1, 25]) or Poisson noise (scale [0.05, 3] then [0.05, 2.5]), grey with probability 0.4, JPEG
[30, 95]; then, in either order, JPEG [30, 95] and [resize to the LR size + a sinc filter (probability 0.8,
cutoff [pi/3, pi])]. Differences: JPEG is Pillow's libjpeg at an integer quality where Real-ESRGAN uses a
differentiable JPEG at a real one; the ground truth is USM-sharpened only when the training config asks
(``degradation: {preset: realesrgan, gt_usm: true}``, Real-ESRNet's setting; :mod:`srlab.data.degrade.usm`);
the degradation runs on each HR patch rather than on a 400x400 crop (in training).

``bsrgan``: BSRGAN's shuffled pipeline, cszn/BSRGAN@5ce1a9c ``utils/utils_blindsr.py::degradation_bsrgan``:
at x4, with probability 0.25 first a x2 downscale (MATLAB bicubic or a random OpenCV-style resize);
then in random order (the second downscale always before the third) two blurs (half anisotropic
Gaussians with eigenvalues ``(4 + s) U[0, 1)``, half isotropic with sigma ``(2 + 0.2 s) U[0, 1)``, sizes
7..25), a downscale by ``U[1, 2s]`` (or, with probability 0.25, a Gaussian blur of sigma [0.1, 0.6 s]
centred on each s x s block and every s-th pixel), the downscale to the LR size, Gaussian noise (levels
2..25: colour, grey, or channel-correlated, probabilities .4/.4/.2), JPEG [30, 95] with probability 0.9;
then a final JPEG [30, 95]. Differences: OpenCV's bilinear/bicubic/area resizes are torch's
(bilinear and area equal OpenCV's where the ratio is an integer, bicubic differs slightly); blur
sigmas and eigenvalues are floored at 0.05 and 0.0025 (BSRGAN's can draw 0, a degenerate kernel);
the block-centred kernel is the Gaussian with a moved centre where BSRGAN shifts the sampled kernel by
linear interpolation; the camera-ISP step is skipped (its model is not released, and the released code
skips it too).

``bicubic``: srlab's D(y; s), MATLAB bicubic downscaling, nothing random.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from srlab.data.degrade.steps import Builder
from srlab.data.resize import downscaled_size

_REALESRGAN_KERNEL_SIZES = tuple(range(7, 22, 2))
_REALESRGAN_KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_REALESRGAN_KERNEL_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
_TORCH_RESIZES = ("area", "bilinear", "bicubic_pytorch")

# The two orders of Real-ESRGAN's options, first and second degradation.
REALESRGAN_OPTIONS = (
    {"sigma": (0.2, 3.0), "resize_prob": (0.2, 0.7, 0.1), "resize_range": (0.15, 1.5), "noise_range": (1, 30),
     "poisson_range": (0.05, 3.0), "blur_prob": 1.0},
    {"sigma": (0.2, 1.5), "resize_prob": (0.3, 0.4, 0.3), "resize_range": (0.3, 1.2), "noise_range": (1, 25),
     "poisson_range": (0.05, 2.5), "blur_prob": 0.8},
)
_GAUSSIAN_NOISE_PROB, _GRAY_NOISE_PROB, _JPEG_RANGE, _SINC_PROB, _FINAL_SINC_PROB = 0.5, 0.4, (30, 95), 0.1, 0.8
_BETA_G, _BETA_P = (0.5, 4.0), (1.0, 2.0)


def _beta(b: Builder, beta_range: tuple[float, float]) -> float:
    """BasicSR's draw: half the time below 1, half above (the range is assumed to straddle 1)."""
    return float(b.rng.uniform(beta_range[0], 1) if b.rng.random() < 0.5 else b.rng.uniform(1, beta_range[1]))


def _realesrgan_kernel(b: Builder, sigma: tuple[float, float]) -> dict:
    size = int(b.rng.choice(_REALESRGAN_KERNEL_SIZES))
    if b.chance(_SINC_PROB):
        return {"type": "sinc", "size": size, "cutoff": float(b.rng.uniform(math.pi / 3 if size < 13 else math.pi / 5, math.pi))}
    kind = _REALESRGAN_KERNELS[int(b.rng.choice(len(_REALESRGAN_KERNELS), p=_REALESRGAN_KERNEL_PROBS))]
    kernel = {"type": {"generalized": "generalized_gaussian", "plateau": "plateau"}.get(kind.split("_")[0], "gaussian"),
              "size": size, "sigma_x": float(b.rng.uniform(*sigma))}
    if kind.endswith("aniso"):
        kernel["sigma_y"] = float(b.rng.uniform(*sigma))
        kernel["theta"] = float(b.rng.uniform(-math.pi, math.pi))
    if kernel["type"] != "gaussian":
        kernel["beta"] = _beta(b, _BETA_G if kind.startswith("generalized") else _BETA_P)
    return kernel


def _realesrgan_noise(b: Builder, options: dict) -> None:
    if b.chance(_GAUSSIAN_NOISE_PROB):
        sigma = float(b.rng.uniform(*options["noise_range"]))
        b.add({"op": "gaussian_noise", "sigma": sigma, "gray": b.chance(_GRAY_NOISE_PROB), "seed": b.seed()})
    else:
        scale = float(b.rng.uniform(*options["poisson_range"]))
        b.add({"op": "poisson_noise", "scale": scale, "gray": b.chance(_GRAY_NOISE_PROB), "seed": b.seed()})


def _jpeg(b: Builder, quality: tuple[int, int] = _JPEG_RANGE) -> None:
    b.add({"op": "jpeg", "quality": int(b.rng.integers(quality[0], quality[1] + 1))})


def _torch_resize(b: Builder, size: tuple[float, float]) -> None:
    b.resize(size, _TORCH_RESIZES[int(b.rng.integers(3))])


def realesrgan(b: Builder) -> None:
    height, width = b.size
    for order, options in enumerate(REALESRGAN_OPTIONS):
        if b.chance(options["blur_prob"]):
            b.add({"op": "blur", "kernel": _realesrgan_kernel(b, options["sigma"])})
        direction = int(b.rng.choice(3, p=options["resize_prob"]))  # up, down, keep
        low, high = options["resize_range"]
        factor = (float(b.rng.uniform(1, high)), float(b.rng.uniform(low, 1)), 1.0)[direction]
        base = b.size if order == 0 else (height / b.scale, width / b.scale)
        _torch_resize(b, (base[0] * factor, base[1] * factor))
        _realesrgan_noise(b, options)
        if order == 0:
            _jpeg(b)
    sinc = None
    if b.chance(_FINAL_SINC_PROB):
        size = int(b.rng.choice(_REALESRGAN_KERNEL_SIZES))
        sinc = {"type": "sinc", "size": size, "cutoff": float(b.rng.uniform(math.pi / 3, math.pi))}
    lr_size = downscaled_size(height, width, b.scale)
    jpeg_first = b.chance(0.5)
    if jpeg_first:
        _jpeg(b)
    _torch_resize(b, lr_size)
    if sinc is not None:
        b.add({"op": "blur", "kernel": sinc})
    if not jpeg_first:
        _jpeg(b)


_MIN_SIGMA, _MIN_VARIANCE = 0.05, 0.0025


def _bsrgan_blur(b: Builder, sf: int) -> None:
    size = 2 * int(b.rng.integers(2, 12)) + 3
    if b.chance(0.5):
        variances = [max(_MIN_VARIANCE, (4.0 + sf) * b.rng.random()) for _ in range(2)]
        theta = float(b.rng.random() * math.pi)
        kernel = {"type": "gaussian", "size": size, "sigma_x": math.sqrt(variances[0]),
                  "sigma_y": math.sqrt(variances[1]), "theta": theta}
    else:
        kernel = {"type": "gaussian", "size": size, "sigma_x": max(_MIN_SIGMA, (2.0 + 0.2 * sf) * b.rng.random())}
    b.add({"op": "blur", "kernel": kernel})


def _bsrgan_noise(b: Builder) -> None:
    level = int(b.rng.integers(2, 26))
    choice = b.rng.random()
    if choice > 0.6 or choice < 0.4:
        b.add({"op": "gaussian_noise", "sigma": float(level), "gray": bool(choice < 0.4), "seed": b.seed()})
        return
    # BSRGAN's channel-correlated noise: covariance |L² Uᵀ D U|, L = 25 (not the level), D diagonal
    # in U[0, 1), U an orthonormal basis of a U[0, 1) matrix's columns.
    diagonal = b.rng.random(3)
    basis = np.linalg.svd(b.rng.random((3, 3)))[0]
    covariance = abs(25.0 ** 2 * basis.T @ (diagonal[:, None] * basis))
    b.add({"op": "gaussian_noise", "covariance": covariance.tolist(), "seed": b.seed()})


def bsrgan(b: Builder) -> None:
    sf = int(b.scale)
    if sf == 4 and b.chance(0.25):
        method = "bicubic" if b.chance(0.5) else _TORCH_RESIZES[int(b.rng.integers(3))]
        b.resize((b.size[0] / 2, b.size[1] / 2), method)
        b.add({"op": "clamp"})
        sf = 2
    order = [int(i) for i in b.rng.permutation(7)]
    second, third = order.index(2), order.index(3)
    if second > third:  # the downscale to the LR size comes last
        order[second], order[third] = order[third], order[second]
    before_second = b.size
    for step in order:
        if step in (0, 1):
            _bsrgan_blur(b, sf)
        elif step == 2:
            before_second = b.size
            if b.chance(0.75):
                factor = float(b.rng.uniform(1, 2 * sf))
                _torch_resize(b, (b.size[0] / factor, b.size[1] / factor))
            else:
                sigma = float(b.rng.uniform(0.1, 0.6 * sf))
                shift = (sf - 1) / 2
                b.add({"op": "blur", "kernel": {"type": "gaussian", "size": 25, "sigma_x": sigma,
                                                 "center": [shift, shift]}})
                b.add({"op": "subsample", "step": sf})
            b.add({"op": "clamp"})
        elif step == 3:
            _torch_resize(b, (before_second[0] / sf, before_second[1] / sf))
            b.add({"op": "clamp"})
        elif step == 4:
            _bsrgan_noise(b)
        elif step == 5 and b.chance(0.9):
            _jpeg(b)
    _jpeg(b)


def bicubic(b: Builder) -> None:
    """srlab's D: MATLAB's imresize of the 8-bit image, the benchmarks' LR images bit for bit."""
    b.add({"op": "resize", "size": list(downscaled_size(*b.size, b.scale)), "method": "bicubic", "uint8": True})


# preset name -> sampler.
PRESETS: dict[str, Callable[[Builder], None]] = {"bicubic": bicubic, "realesrgan": realesrgan, "bsrgan": bsrgan}
