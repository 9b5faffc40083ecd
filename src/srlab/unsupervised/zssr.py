"""ZSSR, "Zero-Shot" Super-Resolution using Deep Internal Learning (Shocher, Cohen, Irani, CVPR 2018).

A small CNN is trained at test time on the one LR image it will enlarge: "HR fathers" are random crops
and augmentations of the image itself, their "LR sons" are the fathers downscaled by the wanted factor
(bicubic, or a given kernel), and the network learns the residual from the son's bicubic upscaling to its
father. The trained network is then applied to the image, under the 8 geometric transforms, each result
back-projected onto the input, the median taken and back-projected once more.

Everything follows the official TensorFlow code (github.com/assafshocher/ZSSR, ``ZSSR.py``, ``configs.py``,
``utils.py``), with its defaults: 8 convolutions of 64 channels without biases, He-like normal
initialisation of variance 0.1 / fan-in, L1 loss, Adam at 1e-3, 128-pixel fathers, at most 3000
iterations; the learning rate is divided by 10 when the linear fit of the last reconstruction errors is
flat relative to its uncertainty, and training stops once it falls below 9e-6. Where srlab differs:

* Resizing is srlab's MATLAB bicubic (:mod:`srlab.data.resize`); ZSSR's ``imresize.py`` is a port of the
  same MATLAB code, with two differences: its taps beyond the border mirror the image where MATLAB's
  files (and srlab) replicate the edge pixel, and it antialiases both axes only when the first axis
  shrinks (srlab decides per axis; only the gradual config's non-uniform steps see a difference).
* The fathers' warp is ``grid_sample``'s bicubic (Keys a = -0.75, zeros outside) where ZSSR calls OpenCV's
  ``warpPerspective(INTER_CUBIC)``. Fed the same random draws, ``sample_father_transform`` + ``warp`` gave
  ZSSR's ``random_augment`` fathers to 1.2e-5 (affine) and 1e-14 (crops, rotations, flips) over 300 draws
  (OpenCV 5.1, run outside the repository).
* The uncertainty of the fitted slope uses the residual variance over ``N - 4`` points, as numpy's
  ``polyfit(cov=True)`` did when ZSSR was published (numpy 1.16 changed it to ``N - 2``).
* A given kernel is shifted to its wanted centre of mass by cubic convolution (Keys, a = -0.5), where ZSSR
  uses ``scipy.ndimage.shift`` (cubic spline); kernels are normalised to sum to 1.
* ``max_seconds`` (not in ZSSR) bounds the training time; the image is still produced.

``--config gradual`` generalises ``X2_GRADUAL_IDEAL_CONF`` (1 -> 1.5 -> 2 in six non-uniform steps) to
any scale S through the midpoint (1 + S) / 2; ZSSR's ``base_change_sfs`` (unused by its configs) is left
out.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from srlab.data.resize import _resize
from srlab.errors import SrlabError

__all__ = [
    "CONFIGS", "ZSSRConfig", "ZSSRNet", "ZSSRResult", "back_project", "config_for", "downscale", "fit_slope",
    "load_kernel", "sample_father_transform", "self_ensemble_median", "shift_kernel", "should_reduce_lr", "upscale",
    "warp", "zssr",
]

CONFIGS = ("default", "gradual", "kernel", "real")
SF = tuple[float, float]  # (vertical, horizontal) scale factor, as ZSSR's configs write them


@dataclass
class ZSSRConfig:
    """ZSSR's ``Config`` (configs.py), same names and defaults; ``scale_factors`` are (vertical, horizontal)."""

    scale_factors: list[SF] = field(default_factory=lambda: [(2.0, 2.0)])
    back_projection_iters: list[int] = field(default_factory=lambda: [10])  # one per scale factor
    max_iters: int = 3000
    min_iters: int = 256
    min_learning_rate: float = 9e-6
    width: int = 64
    depth: int = 8
    output_flip: bool = True  # the geometric self-ensemble
    init_variance: float = 0.1
    crop_size: int = 128
    noise_std: float = 0.0  # added to the LR sons
    init_net_for_each_sf: bool = False
    learning_rate: float = 1e-3
    learning_rate_change_ratio: float = 1.5  # slope vs. its standard deviation under which the rate drops
    learning_rate_policy_check_every: int = 60
    learning_rate_slope_range: int = 256
    run_test_every: int = 50
    augment_leave_as_is_probability: float = 0.05
    augment_no_interpolate_probability: float = 0.45
    augment_min_scale: float = 0.5
    augment_scale_diff_sigma: float = 0.25
    augment_shear_sigma: float = 0.1
    augment_allow_rotation: bool = True


def config_for(name: str, scale: float) -> ZSSRConfig:
    """ZSSR's pre-made configs for upscaling by ``scale``: ``default`` (X2_ONE_JUMP_IDEAL_CONF), ``gradual``
    (X2_GRADUAL_IDEAL_CONF), ``kernel`` (X2_GIVEN_KERNEL_CONF) and ``real`` (X2_REAL_CONF)."""
    if not (isinstance(scale, (int, float)) and 1 < scale < math.inf):
        raise SrlabError(f"ZSSR: the scale must be a number > 1, got {scale!r}")
    s = float(scale)
    if name == "default":
        return ZSSRConfig(scale_factors=[(s, s)])
    if name == "gradual":
        m = (1 + s) / 2
        steps = [(1.0, m), (m, 1.0), (m, m), (m, s), (s, m), (s, s)]
        return ZSSRConfig(scale_factors=steps, back_projection_iters=[6, 6, 8, 10, 10, 12])
    if name == "kernel":
        return ZSSRConfig(scale_factors=[(s, s)], output_flip=False, augment_allow_rotation=False,
                          back_projection_iters=[2])
    if name == "real":
        return ZSSRConfig(scale_factors=[(s, s)], output_flip=False, back_projection_iters=[0], noise_std=0.0125,
                          augment_allow_rotation=False, augment_scale_diff_sigma=0.0, augment_shear_sigma=0.0,
                          augment_min_scale=0.75)
    raise SrlabError(f"unknown ZSSR config {name!r}: use one of {', '.join(CONFIGS)}")


# ----------------------------------------------------------------------------------------------- resizing


def _ceil_size(shape: Sequence[int], sf: SF) -> tuple[int, int]:
    return math.ceil(shape[0] * sf[0]), math.ceil(shape[1] * sf[1])


def upscale(x: Tensor, sf: SF, size: tuple[int, int] | None = None) -> Tensor:
    """MATLAB bicubic by ``sf`` to ``size`` (default ``ceil(shape * sf)``).

    Scale and size are given separately, as ZSSR does: a 9-pixel father has a 5-pixel son at x2, and the
    son's upscaling must be by 2 (not 9/5) to stay aligned with the father, yet 9 pixels long.
    """
    size = _ceil_size(x.shape[-2:], sf) if size is None else tuple(size)
    return _resize(x, size, (float(sf[0]), float(sf[1])), False)


def downscale(x: Tensor, sf: SF, kernel: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """``x`` made smaller by ``sf`` (> 1): MATLAB bicubic, or correlation with ``kernel`` and subsampling.

    The kernel path is ZSSR's ``numeric_kernel``: correlate with symmetric padding (scipy's ``reflect``),
    then keep rows ``round(linspace(0, H - sf, H_out))`` and the columns alike.
    """
    inverse = (1 / sf[0], 1 / sf[1])
    size = _ceil_size(x.shape[-2:], inverse) if size is None else tuple(size)
    if kernel is None:
        return _resize(x, size, inverse, False)
    kh, kw = kernel.shape
    rows = _symmetric_indices(x.shape[-2], kh // 2, kh - 1 - kh // 2, x.device)
    cols = _symmetric_indices(x.shape[-1], kw // 2, kw - 1 - kw // 2, x.device)
    padded = x.index_select(-2, rows).index_select(-1, cols)
    channels = x.shape[-3]
    weight = kernel.to(x).expand(channels, 1, kh, kw)
    blurred = F.conv2d(padded.reshape(-1, channels, *padded.shape[-2:]), weight, groups=channels)
    pick_rows = np.round(np.linspace(0, x.shape[-2] - sf[0], size[0])).astype(np.int64)
    pick_cols = np.round(np.linspace(0, x.shape[-1] - sf[1], size[1])).astype(np.int64)
    picked = blurred[..., torch.from_numpy(pick_rows).to(x.device), :][..., torch.from_numpy(pick_cols).to(x.device)]
    return picked.reshape(*x.shape[:-2], *size)


def _symmetric_indices(length: int, before: int, after: int, device: torch.device) -> Tensor:
    # (d c b a | a b c d | d c b a): the edge pixel repeated, as scipy.ndimage's mode "reflect".
    mirror = torch.cat([torch.arange(length), torch.arange(length - 1, -1, -1)])
    return mirror[torch.arange(-before, length + after) % (2 * length)].to(device)


def back_project(sr: Tensor, lr: Tensor, sf: SF, kernel: Tensor | None = None) -> Tensor:
    """One back-projection step: add the upscaled LR residual of ``sr`` (ZSSR's ``back_projection``), clip."""
    residual = lr - downscale(sr, sf, kernel, size=tuple(lr.shape[-2:]))
    return (sr + upscale(residual, sf, tuple(sr.shape[-2:]))).clamp(0, 1)


# ----------------------------------------------------------------------------------------------- kernels


def load_kernel(path: str) -> Tensor:
    """A blur kernel from ``.npy``, a MATLAB ``.mat`` holding ``Kernel`` (KernelGAN's output; needs scipy),
    or a plain-text matrix (any other extension); normalised to sum to 1."""
    text = str(path)
    try:
        if text.lower().endswith(".npy"):
            array = np.load(text, allow_pickle=False)
        elif text.lower().endswith(".mat"):
            try:
                from scipy.io import loadmat
            except ImportError:
                raise SrlabError(f"--kernel '{text}': reading .mat files needs scipy (pip install scipy), "
                                 "or save the kernel as .npy or text") from None
            contents = loadmat(text)
            if "Kernel" not in contents:
                raise SrlabError(f"--kernel '{text}': the .mat file holds no variable named 'Kernel'")
            array = contents["Kernel"]
        else:
            array = np.loadtxt(text, ndmin=2)
    except SrlabError:
        raise
    except (OSError, ValueError) as e:
        raise SrlabError(f"--kernel '{text}': cannot read it ({' '.join(str(e).split())})") from None
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or min(array.shape) < 1 or not np.isfinite(array).all() or array.sum() <= 0:
        raise SrlabError(f"--kernel '{text}': expected a 2-D matrix of finite values with a positive sum, "
                         f"got shape {array.shape}")
    return torch.from_numpy(array / array.sum())


def shift_kernel(kernel: Tensor, sf: SF) -> Tensor:
    """ZSSR's ``kernel_shift``: move the centre of mass to ``shape / 2 + (sf - shape % 2) / 2``, so that the
    bicubic upscaling of the son lines up with its father; zero-padded first so nothing falls off."""
    k = kernel.double()
    rows, cols = torch.meshgrid(torch.arange(k.shape[0]).double(), torch.arange(k.shape[1]).double(), indexing="ij")
    mass = torch.tensor([(rows * k).sum(), (cols * k).sum()]) / k.sum()
    shape = torch.tensor(k.shape).double()
    wanted = shape / 2 + 0.5 * (torch.tensor(sf).double() - shape % 2)
    shift = wanted - mass
    pad = math.ceil(float(shift.abs().max())) + 1
    k = F.pad(k, (pad, pad, pad, pad))
    return _shift_matrix(k.shape[0], float(shift[0])) @ k @ _shift_matrix(k.shape[1], float(shift[1])).T


def _shift_matrix(length: int, shift: float) -> Tensor:
    """Output p = sum_j w(p - shift - j) x_j with Keys' cubic, a = -0.5: it reproduces linear functions, so
    a shift keeps the kernel's mass and moves its centre of mass by exactly ``shift`` (away from the ends)."""
    positions = torch.arange(length, dtype=torch.float64)
    d = (positions[:, None] - shift - positions[None, :]).abs()
    near = (1.5 * d**3 - 2.5 * d**2 + 1) * (d <= 1)
    far = (-0.5 * d**3 + 2.5 * d**2 - 4 * d + 2) * ((d > 1) & (d < 2))
    return near + far


# ------------------------------------------------------------------------------------- fathers and sons


def _mode(rng: np.random.Generator, config: ZSSRConfig) -> str:
    # ZSSR's strict inequalities, kept: a draw exactly on a boundary is an affine father.
    chooser = rng.random()
    leave, no_interp = config.augment_leave_as_is_probability, config.augment_no_interpolate_probability
    if chooser < leave:
        return "leave_as_is"
    if leave < chooser < leave + no_interp:
        return "no_interp"
    return "affine"


def sample_father_transform(
    rng: np.random.Generator, source_shapes: Sequence[tuple[int, int]], config: ZSSRConfig
) -> tuple[int, np.ndarray, str]:
    """ZSSR's ``random_augment`` without the warp: which source, the 3x3 source -> crop matrix, the mode.

    Sources are the input and then the outputs of earlier gradual steps, ``[1] + scale_factors`` times the
    input's size. A father is the whole of a source's crop (probability ``leave_as_is``), a crop under a
    rotation by a multiple of 90 degrees and a mirror flip (``no_interp``, exact pixels), or an affine crop
    (scale drawn uniformly in [min_scale, max_scale], then x/y scale difference, shear and any rotation),
    taken from the smallest source at least that large.
    """
    mode = _mode(rng, config)
    base_scales = [1.0] + [min(sf) for sf in config.scale_factors]
    max_scale = base_scales[len(source_shapes) - 1]
    min_scale = config.augment_min_scale
    scale = 1.0 if mode == "leave_as_is" else rng.random() * (max_scale - min_scale) + min_scale
    index = next(i for i, base in enumerate(base_scales) if base > scale - 1e-6)
    height, width = source_shapes[index]
    to_center = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1]])
    from_center = np.array([[1, 0, width / 2], [0, 1, height / 2], [0, 0, 1]])
    if mode != "affine":  # integer shifts keep the father's pixels exact
        to_center, from_center = np.round(to_center), np.round(from_center)
    if mode == "affine":
        scale /= base_scales[index]
        scale_diff = rng.standard_normal() * config.augment_scale_diff_sigma
    else:
        scale, scale_diff = 1.0, 0.0
    if mode == "leave_as_is" or not config.augment_allow_rotation:
        reflect = 1.0
    else:
        reflect = float(np.sign(rng.standard_normal()))
    scale_mat = np.diag([reflect * (scale + scale_diff / 2), scale - scale_diff / 2, 1.0])
    crop = config.crop_size
    shift_x = rng.random() * np.clip(scale * width - crop, 0, 9999)
    shift_y = rng.random() * np.clip(scale * height - crop, 0, 9999)
    shift_mat = np.array([[1, 0, -shift_x], [0, 1, -shift_y], [0, 0, 1]])
    if mode != "affine":
        shift_mat = np.round(shift_mat)
    if mode == "affine":
        theta = rng.random() * 2 * math.pi
    elif mode == "no_interp":
        theta = int(rng.integers(4)) * math.pi / 2
    else:
        theta = 0.0
    if not config.augment_allow_rotation:
        theta = 0.0
    rotation = np.array([[math.cos(theta), math.sin(theta), 0], [-math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    if mode == "affine":
        shear_x = rng.standard_normal() * config.augment_shear_sigma
        shear_y = rng.standard_normal() * config.augment_shear_sigma
    else:
        shear_x = shear_y = 0.0
    shear = np.array([[1, shear_x, 0], [shear_y, 1, 0], [0, 0, 1]])
    matrix = from_center @ shift_mat @ shear @ rotation @ scale_mat @ to_center
    return index, matrix, mode


def warp(image: Tensor, matrix: np.ndarray, size: tuple[int, int]) -> Tensor:
    """``image`` (C, H, W) under the source -> output matrix, as OpenCV's ``warpPerspective`` with bicubic
    interpolation and zeros outside: output pixel (x, y) (centres at integers) samples the source at
    ``matrix^-1 (x, y, 1)``. Computed in float64 so that integer positions give the pixels back exactly."""
    height, width = size
    inverse = torch.from_numpy(np.linalg.inv(matrix))
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1) @ inverse.T
    sx, sy = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    in_h, in_w = image.shape[-2:]
    grid = torch.stack([(2 * sx + 1) / in_w - 1, (2 * sy + 1) / in_h - 1], dim=-1)  # align_corners=False
    out = F.grid_sample(image[None].double(), grid[None].to(image.device), mode="bicubic", padding_mode="zeros",
                        align_corners=False)
    return out[0].to(image.dtype)


# -------------------------------------------------------------------------------- learning-rate policy


def fit_slope(steps: Sequence[float], errors: Sequence[float]) -> tuple[float, float]:
    """Least-squares line through (steps, errors): its slope and the slope's standard deviation.

    The deviation is ``sqrt(SSR / ((N - 4) * Sxx))``: numpy ``polyfit(deg=1, cov=True)`` as ZSSR ran it
    (residual variance over N - order - 2 points, order = 2); needs N >= 5.
    """
    x, y = np.asarray(steps, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if len(x) < 5:
        raise ValueError(f"fit_slope needs at least 5 points, got {len(x)}")
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean())) / sxx
    residuals = y - (y.mean() + slope * dx)
    return slope, math.sqrt(float(residuals @ residuals) / ((len(x) - 4) * sxx))


def should_reduce_lr(steps: Sequence[float], errors: Sequence[float], ratio: float) -> bool:
    """ZSSR's test: the error no longer falls clearly (``-ratio * slope < std`` of the slope)."""
    slope, std = fit_slope(steps, errors)
    return -ratio * slope < std


# -------------------------------------------------------------------------------------------- network


class ZSSRNet(nn.Module):
    """``depth`` 3x3 convolutions without biases, ReLU between, plus the input (residual learning)."""

    def __init__(self, width: int = 64, depth: int = 8, init_variance: float = 0.1) -> None:
        super().__init__()
        channels = [3] + [width] * (depth - 1) + [3]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(channels, channels[1:]))
        for conv in self.convs:  # ZSSR: normal with std sqrt(init_variance / fan_in)
            fan_in = conv.in_channels * 9
            nn.init.normal_(conv.weight, std=math.sqrt(init_variance / fan_in))

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for conv in self.convs[:-1]:
            y = F.relu(conv(y))
        return self.convs[-1](y) + x


# ------------------------------------------------------------------------------------------ algorithm


def self_ensemble_median(outputs: Sequence[Tensor]) -> Tensor:
    """Element-wise median; for an even count the mean of the two middle values, as ``np.median``."""
    ordered = torch.stack(list(outputs)).sort(dim=0).values
    n = ordered.shape[0]
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _geometric(x: Tensor, k: int) -> Tensor:
    # ZSSR's k-th transform: rotate by 90 * k degrees, mirrored left-right for k >= 4.
    rotated = torch.rot90(x, k % 4, dims=(-2, -1))
    return rotated.flip(-1) if k >= 4 else rotated


def _undo_geometric(x: Tensor, k: int) -> Tensor:
    return torch.rot90(x.flip(-1) if k >= 4 else x, -(k % 4), dims=(-2, -1))


@dataclass
class ZSSRResult:
    """The SR image (3, H, W) and how training went: iterations per scale step, why each step stopped
    (``min_learning_rate``, ``max_iters`` or ``max_seconds``), the seconds spent."""

    image: Tensor
    iterations: list[int]
    stopped_by: list[str]
    seconds: float


@dataclass
class _Step:
    """One scale factor's training: its state and the schedule ZSSR keeps per step."""

    sf: SF
    kernel: Tensor | None
    learning_rate: float
    error_steps: list[int] = dataclasses.field(default_factory=list)
    errors: list[float] = dataclasses.field(default_factory=list)
    last_change: int = 0


class _ZSSR:
    def __init__(self, image: Tensor, config: ZSSRConfig, seed: int, device: torch.device) -> None:
        self.config, self.device = config, device
        self.input = image.to(device=device, dtype=torch.float32)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.sources = [self.input]
        self.net = self._new_net()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.learning_rate)

    def _new_net(self) -> ZSSRNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = ZSSRNet(self.config.width, self.config.depth, self.config.init_variance)
        return net.to(self.device)

    def _father_to_son(self, father: Tensor, step: _Step) -> Tensor:
        son = downscale(father, step.sf, step.kernel)
        if self.config.noise_std:
            noise = torch.from_numpy(self.rng.standard_normal(tuple(son.shape))).to(son)
            son = son + noise * self.config.noise_std
        return son.clamp(0, 1)

    def _forward(self, lr: Tensor, sf: SF, size: tuple[int, int] | None = None) -> Tensor:
        return self.net(upscale(lr, sf, size)[None])[0].clamp(0, 1)

    def _father(self) -> Tensor:
        shapes = [tuple(s.shape[-2:]) for s in self.sources]
        index, matrix, _ = sample_father_transform(self.rng, shapes, self.config)
        crop = self.config.crop_size
        return warp(self.sources[index], matrix, (crop, crop)).clamp(0, 1)

    @torch.no_grad()
    def _reconstruction_error(self, step: _Step) -> float:
        rebuilt = self._forward(self._father_to_son(self.input, step), step.sf, tuple(self.input.shape[-2:]))
        return float(((self.input - rebuilt) ** 2).mean())

    def _lr_policy(self, it: int, step: _Step) -> None:
        c = self.config
        if (it + 1) % c.learning_rate_policy_check_every or it - step.last_change <= c.min_iters:
            return
        window = c.learning_rate_slope_range // c.run_test_every
        if should_reduce_lr(step.error_steps[-window:], step.errors[-window:], c.learning_rate_change_ratio):
            step.learning_rate /= 10
            step.last_change = it
            for group in self.optimizer.param_groups:
                group["lr"] = step.learning_rate

    def train(self, step: _Step, deadline: float | None, bar: tqdm) -> tuple[int, str]:
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = step.learning_rate
        self.net.train()
        for it in range(c.max_iters):
            if deadline is not None and time.perf_counter() > deadline:
                return it, "max_seconds"
            father = self._father()
            son = self._father_to_son(father, step)
            output = self.net(upscale(son, step.sf, tuple(father.shape[-2:]))[None])
            loss = (output[0] - father).abs().mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if it % c.run_test_every == 0:
                step.error_steps.append(it)
                step.errors.append(self._reconstruction_error(step))
            self._lr_policy(it, step)
            bar.update(1)
            if it % 20 == 0:
                bar.set_postfix(sf=f"{step.sf[0]:g}x{step.sf[1]:g}", loss=f"{loss.item():.4f}",
                                lr=f"{step.learning_rate:.0e}", refresh=False)
            if step.learning_rate < c.min_learning_rate:
                return it + 1, "min_learning_rate"
        return c.max_iters, "max_iters"

    @torch.no_grad()
    def final_test(self, step: _Step, bp_iters: int) -> Tensor:
        """Self-ensemble (8 transforms, or the 4 that keep the axes for unequal factors) with back-projection."""
        self.net.eval()
        sf = step.sf
        transforms = range(0, 8 if self.config.output_flip else 1, 1 if sf[0] == sf[1] else 2)
        outputs = []
        for k in transforms:
            out = _undo_geometric(self._forward(_geometric(self.input, k), sf), k)
            for _ in range(bp_iters):
                out = back_project(out, self.input, sf, step.kernel)
            outputs.append(out)
        sr = self_ensemble_median(outputs)
        for _ in range(bp_iters):
            sr = back_project(sr, self.input, sf, step.kernel)
        return sr


def zssr(
    image: Tensor,
    config: ZSSRConfig,
    *,
    kernel: Tensor | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    max_seconds: float | None = None,
    progress: bool = False,
) -> ZSSRResult:
    """Super-resolve ``image`` ((3, H, W) float in [0, 1]) by ``config.scale_factors[-1]`` with ZSSR.

    ``kernel`` is the degradation (a 2-D blur, shifted here as ZSSR does; bicubic when None), for configs of
    one scale step. The same ``seed`` on the same device
    and thread count gives the same image. ``max_seconds`` splits a training budget evenly among the scale
    steps; each step stops when its share is spent and the image is still produced (the self-ensemble and
    back-projection after each step come on top: 8 passes of the network over the output size).
    """
    if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise SrlabError(f"ZSSR: expected a (3, H, W) float image, got {tuple(image.shape)} {image.dtype}")
    if len(config.back_projection_iters) != len(config.scale_factors):
        raise SrlabError("ZSSR: back_projection_iters needs one entry per scale factor")
    if kernel is not None and len(config.scale_factors) > 1:
        raise SrlabError("ZSSR: a kernel is given for a single scale step; use a non-gradual config with --kernel")
    device = torch.device(device)
    started = time.perf_counter()
    state = _ZSSR(image, config, seed, device)
    n_steps = len(config.scale_factors)
    iterations, stopped_by, sr = [], [], image
    with tqdm(total=config.max_iters * n_steps, disable=not progress, desc="zssr", unit="it", leave=False) as bar:
        for i, (sf, bp_iters) in enumerate(zip(config.scale_factors, config.back_projection_iters)):
            shifted = None if kernel is None else shift_kernel(kernel, sf).to(device=device, dtype=torch.float32)
            if i and config.init_net_for_each_sf:
                state.net = state._new_net()
                state.optimizer = torch.optim.Adam(state.net.parameters(), lr=config.learning_rate)
            step = _Step(sf=(float(sf[0]), float(sf[1])), kernel=shifted, learning_rate=config.learning_rate)
            deadline = None if max_seconds is None else started + max_seconds * (i + 1) / n_steps
            done, why = state.train(step, deadline, bar)
            bar.update(config.max_iters - done)  # the bar counts every step's full length
            iterations.append(done)
            stopped_by.append(why)
            bar.set_description("zssr: self-ensemble and back-projection")
            sr = state.final_test(step, bp_iters)
            bar.set_description("zssr")
            state.sources.append(sr)
    return ZSSRResult(sr.cpu(), iterations, stopped_by, time.perf_counter() - started)
