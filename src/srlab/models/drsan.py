"""DRSAN: dynamic residual self-attention networks (32s, 48s, 32m, 32l, 48m).

Paper: Karam Park, Jae Woong Soh, Nam Ik Cho, "A Dynamic Residual Self-Attention Network for Lightweight
Single Image Super-Resolution", IEEE Transactions on Multimedia 2021 (arXiv 2112.04488). Official code:
saturnian77/DRSAN (TensorFlow 1.8), read at commit 8841874: ``model.py`` (classes ``DRSAN32``,
``DRSAN48``), ``ops.py`` (``pReLU``, ``resmod``, ``upsample_x2/3/4``), ``build.py`` (variants, test). The
repository states no licence. Its TensorFlow checkpoints (``ckpt/x{2,3,4}/DRSAN_*``) are not in the snapshot
read here (only their ``.index`` files, which list every variable's name and shape), so there are no weights
to load: this is a PyTorch port of the official graph with srlab's own, readable names.

Structure (C = 32 or 48 channels, G dynamic residual attention groups, "DRAGs"; U = 4 residual units per
group at C = 32, 3 at C = 48; every conv has a bias and "same" zero padding):

* ``head``: 3x3 conv 3 -> C. ``groups``: G DRAGs. ``body_end``: 3x3 conv C -> C, plus the head's output
  (global residual). ``upsampler``: 3x3 conv C -> s^2 C + pixel shuffle (x4: two x2 stages), no
  activation. ``tail``: 3x3 conv C -> 3 at HR. Input and output RGB in [0, 1], no mean shift (the official
  test clips the output to [0, 1] and rounds to 8 bits).
* A DRAG with input f_0. Its dynamic residual module ``drm`` (official ``resmod``) computes the dynamic
  residual attention (DRA): 1x1 conv C -> 16, PReLU, 1x1 conv 16 -> A (A = U(U+1)/2 = 10 or 6), and the mean
  over all pixels: A numbers per image, neither normalised nor squashed. Unit n (n = 1..U) runs
  r_n = conv(PReLU(conv(PReLU(f_{n-1})))) (3x3 convs) and outputs f_n = (r_n + sum_{j<n} a_{n,j} f_j) *
  sigmoid(r_n), the residual self-attention (RSA) being the sigmoid of the unit's own residual; a_{n,j} are
  the DRA numbers in order (unit 1: a_0; unit 2: a_1, a_2; ...). ``fusion``: 1x1 conv over the
  concatenation [f_0, ..., f_U] ((U+1)C -> C).
* Variants (``build.py``): 32s / 32m / 32l = C 32 with G 4 / 8 / 10; 48s / 48m = C 48 with G 4 / 8.

Parameters (the official ``count_param``: all trainable variables, PReLU slopes included) equal the
TensorFlow checkpoints' listings element for element: 368,427 / 647,195 / 688,851 / 849,063 / 1,187,827
at x2 (32s / 48s / 32m / 32l / 48m), 414,667 / 751,115 / 735,091 / - / 1,291,747 at x3 and 405,419 / 730,331 /
725,843 / - / 1,270,963 at x4, i.e. the published 0.37M / 0.65M / 0.69M / 0.85M / 1.19M, 0.41M / 0.75M /
0.74M / 1.29M and 0.41M / 0.73M / 0.73M / 1.27M (the repository holds no 32l checkpoint at x3 or x4, and the
table prints none).

Multi-Adds: srlab's convention (every convolution's multiply-adds, 1280x720 output) gives 84.90 / 149.33 /
158.18 / 194.83 / 273.28 G at x2 (32s / 48s / 32m / 32l / 48m), 42.93 / 77.71 / 75.52 / 132.84 G at x3 and
30.32 / 57.34 / 48.64 / 88.33 G at x4, 0.2 - 0.8 % below the published table (85.5 / 150.0 / 159.3 / 196.3 /
274.6, 43.2 / 78.0 / 76.0 / 133.4, 30.5 / 57.6 / 49.0 / 88.7 G). The 720p output convention is the one the
table follows (the figures scale with it across the three factors); the paper does not say what else it
counts. Adding one operation per bias and per PReLU element brings 11 of the 13 figures to the table's
rounding (not 32l x2 and 32m x4); no convention tried fits all 13, so the gap stays documented, not forced.

Dynamic cost: the DRA weights are soft (every residual path is always computed and weighted), so the
MACs do not depend on the input and DRSAN needs no quality-compute curve. The DRA is a mean over the whole
input, so each output pixel depends a little on every input pixel: ``receptive_radius`` is the reach of
the convolutions (1 + 2GU + 3 LR pixels) and tiled inference is close to, not equal to, whole-image
inference.

TensorFlow names (:func:`tensorflow_variable_names`): the official variables live under ``DRAN/``;
``tf.layers.conv2d`` numbers the convolutions in creation order (``conv2d``, ``conv2d_1``, ...: the head,
then per group ``drm.reduce``, ``drm.expand``, the units' two convs each, ``fusion``, then ``body_end``, the
upsampler's convs and ``tail``), each with ``/kernel`` and ``/bias``; the PReLU slopes are
``conv_block{g}prelualpha`` (the DRM's) and ``conv_block{g}_pReLU_{k}alpha`` (k = 1..2U, two per unit).
Converting a checkpoint: a kernel (kh, kw, in, out) becomes the weight (out, in, kh, kw); for the
upsampler's convs the output channels are also reordered, because TensorFlow's ``depth_to_space`` reads
channel (i r + j) C + c for sub-pixel (i, j) of channel c where ``nn.PixelShuffle`` reads c r^2 + i r + j.

Deviations from the official code: none in the function. PReLU is ``nn.PReLU`` (per-channel slopes,
initialised to 0 as the official ``pReLU``), equal to the official relu(x) + alpha (x - |x|) / 2.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srlab.models.registry import ModelInfo, register_model

DRM_HIDDEN = 16  # the official resmod's hidden width, both widths


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def prelu(channels: int) -> nn.PReLU:
    return nn.PReLU(channels, init=0.0)  # the official pReLU's slopes start at 0


class DynamicResidualModule(nn.Module):
    """The DRA: per image, one weight per residual path (official ``resmod``), the spatial mean of a 1x1 MLP."""

    def __init__(self, channels: int, paths: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, DRM_HIDDEN, 1)
        self.act = prelu(DRM_HIDDEN)
        self.expand = nn.Conv2d(DRM_HIDDEN, paths, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the 1x1 conv runs at every pixel before the mean, as officially (it costs what the official graph costs)
        return self.expand(self.act(self.reduce(x))).mean(dim=(2, 3), keepdim=True)


class ResidualUnit(nn.Module):
    """PReLU, 3x3 conv, PReLU, 3x3 conv: the residual r_n of one unit."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.act1 = prelu(channels)
        self.conv1 = conv3x3(channels, channels)
        self.act2 = prelu(channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act2(self.conv1(self.act1(x))))


class DRAG(nn.Module):
    """Dynamic residual attention group: U units whose outputs mix earlier features by the DRA, gated by RSA."""

    def __init__(self, channels: int, units: int) -> None:
        super().__init__()
        self.drm = DynamicResidualModule(channels, units * (units + 1) // 2)
        self.units = nn.ModuleList(ResidualUnit(channels) for _ in range(units))
        self.fusion = nn.Conv2d((units + 1) * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.drm(x)  # (batch, paths, 1, 1)
        features, path = [x], 0
        for unit in self.units:
            residual = unit(features[-1])
            mixed = residual + sum(f * weights[:, path + j : path + j + 1] for j, f in enumerate(features))
            path += len(features)
            features.append(mixed * torch.sigmoid(residual))
        return self.fusion(torch.cat(features, dim=1))


def upsampler(channels: int, scale: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for factor in {2: [2], 3: [3], 4: [2, 2]}[scale]:
        layers += [conv3x3(channels, factor * factor * channels), nn.PixelShuffle(factor)]
    return nn.Sequential(*layers)


class DRSAN(nn.Module):
    def __init__(self, *, scale: int, channels: int, num_groups: int, units: int) -> None:
        super().__init__()
        self.scale = scale
        self.head = conv3x3(3, channels)
        self.groups = nn.ModuleList(DRAG(channels, units) for _ in range(num_groups))
        self.body_end = conv3x3(channels, channels)
        self.upsampler = upsampler(channels, scale)
        self.tail = conv3x3(channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.head(x)
        y = shallow
        for group in self.groups:
            y = group(y)
        return self.tail(self.upsampler(self.body_end(y) + shallow))


def tensorflow_variable_names(model: DRSAN) -> dict[str, str]:
    """The official TensorFlow variable of each parameter (srlab name -> ``DRAN/...`` name), in the order
    the official graph creates them (module docstring: how kernels convert)."""
    convs: list[str] = ["head"]
    slopes: dict[str, str] = {}
    for g, group in enumerate(model.groups):
        block = f"conv_block{g + 1}"
        convs += [f"groups.{g}.drm.reduce", f"groups.{g}.drm.expand"]
        slopes[f"groups.{g}.drm.act.weight"] = f"DRAN/{block}prelualpha"
        for u in range(len(group.units)):
            unit = f"groups.{g}.units.{u}"
            convs += [f"{unit}.conv1", f"{unit}.conv2"]
            slopes[f"{unit}.act1.weight"] = f"DRAN/{block}_pReLU_{2 * u + 1}alpha"
            slopes[f"{unit}.act2.weight"] = f"DRAN/{block}_pReLU_{2 * u + 2}alpha"
        convs.append(f"groups.{g}.fusion")
    convs += ["body_end"]
    convs += [f"upsampler.{i}" for i, m in enumerate(model.upsampler) if isinstance(m, nn.Conv2d)]
    convs += ["tail"]
    names = dict(slopes)
    for index, conv in enumerate(convs):
        tf_conv = "DRAN/conv2d" + (f"_{index}" if index else "")
        names[f"{conv}.weight"] = f"{tf_conv}/kernel"
        names[f"{conv}.bias"] = f"{tf_conv}/bias"
    return names


_PAPER = (
    "Park, Soh, Cho, A Dynamic Residual Self-Attention Network for Lightweight Single Image "
    "Super-Resolution, IEEE TMM 2021"
)


def _drsan_args(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Width, number of groups and units per group, read from a state dict's names and shapes."""
    return {
        "channels": weights["head.weight"].shape[0],
        "num_groups": sum(1 for k in weights if k.startswith("groups.") and k.endswith(".fusion.weight")),
        "units": sum(1 for k in weights if k.startswith("groups.0.units.") and k.endswith(".conv1.weight")),
    }


def _info(variant: str) -> ModelInfo:
    return ModelInfo(
        paper=f"{_PAPER} (DRSAN-{variant})",
        origin="https://github.com/saturnian77/DRSAN",
        licence="unknown",
        scales=(2, 3, 4),
        size_multiple=1,
        # the convolutions' reach: head, 2 x 3x3 per unit, body_end, upsampler, tail (module docstring)
        receptive_radius=lambda a: 1 + 2 * a["num_groups"] * a["units"] + 3,
        args_from_weights=_drsan_args,
    )


def _drsan(scale: int, channels: int, num_groups: int, units: int) -> DRSAN:
    return DRSAN(scale=scale, channels=channels, num_groups=num_groups, units=units)


@register_model(_info("32s"))
def drsan_32s(*, scale: int, channels: int = 32, num_groups: int = 4, units: int = 4) -> DRSAN:
    """DRSAN-32s (0.37 M parameters at x2)."""
    return _drsan(scale, channels, num_groups, units)


@register_model(_info("48s"))
def drsan_48s(*, scale: int, channels: int = 48, num_groups: int = 4, units: int = 3) -> DRSAN:
    """DRSAN-48s (0.65 M parameters at x2)."""
    return _drsan(scale, channels, num_groups, units)


@register_model(_info("32m"))
def drsan_32m(*, scale: int, channels: int = 32, num_groups: int = 8, units: int = 4) -> DRSAN:
    """DRSAN-32m (0.69 M parameters at x2)."""
    return _drsan(scale, channels, num_groups, units)


@register_model(_info("32l"))
def drsan_32l(*, scale: int, channels: int = 32, num_groups: int = 10, units: int = 4) -> DRSAN:
    """DRSAN-32l (0.85 M parameters at x2)."""
    return _drsan(scale, channels, num_groups, units)


@register_model(_info("48m"))
def drsan_48m(*, scale: int, channels: int = 48, num_groups: int = 8, units: int = 3) -> DRSAN:
    """DRSAN-48m (1.19 M parameters at x2)."""
    return _drsan(scale, channels, num_groups, units)
