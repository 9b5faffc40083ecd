"""ADSRNet (HDSRNet): a heterogeneous dynamic convolutional network for super-resolution.

Paper: Chunwei Tian, Xuanyu Zhang, Tao Wang, Yongjun Zhang, Qi Zhu, Chia-Wen Lin, "Adaptive
Convolutional Neural Network for Image Super-Resolution" (arXiv 2402.15704, 2024; the repository and the
first arXiv version call the network HDSRNet, "heterogeneous dynamic convolutional network"). Official
code: hellloxiaotian/ADSRNet, read at commit 427ff93: ``HDSRNet/model/hdsrnet.py`` (class ``DDYCNNSR``,
its upper network ``Block``), ``HDSRNet/model/DynamicConv.py`` (``DynamicConv``, ``Attention``),
``HDSRNet/model/ops.py`` (``UpsampleBlock``) and ``HDSRNet/model/common.py`` (``MeanShift``), an EDSR
codebase. The repository states no licence. Its README links checkpoints ``checkpoint/HDSRNet_x{2,3,4}.pt``
that the snapshot read here does not hold, so no official weights are available to srlab.

Structure (64 channels throughout, every convolution 3x3 and bias-free unless said):

* ``sub_mean`` / ``add_mean``: the EDSR framework's frozen mean shifts (DIV2K mean x 255).
* Lower network, "symmetric": ``conv1`` (3 -> 64) and ``conv2`` .. ``conv16``, each followed by ReLU.
  With x_i the output of ``conv_i``, the second half adds the first half's outputs in mirror order:
  y_8 = x_8, y_i = conv_i(y_{i-1}) + x_{17-i} for i = 9 .. 16 (so ``conv9``'s output meets x_8 and
  ``conv16``'s meets x_1).
* Upper network ``Block``, "heterogeneous": ``conv1`` (3 -> 64) + ReLU, then five heterogeneous blocks of
  three layers (``conv2..4``, ``conv5..7``, ..., ``conv14..16``), each a dilated conv (dilation 2) + ReLU, a
  dynamic conv + ReLU and a plain conv + ReLU, with the block's input added to its output.
* The two networks read the same mean-shifted input; their outputs multiply element-wise, then
  ``upsample`` (conv 64 -> 4*64 or 9*64 with bias, PixelShuffle; x4 is two x2 stages, no activation) and
  ``conv17`` (64 -> 3, at HR) give the image, to which ``add_mean`` adds the mean back.
* Dynamic convolution (``DynamicConv``): K = 4 candidate 3x3 kernels with biases; ``attention`` pools the
  input globally, maps it through 1x1 convs 64 -> 16 (ReLU) -> 4 (bias-free) and takes a softmax at
  temperature 40; each image is convolved with its own mixture of the four kernels and biases.

The temperature: the official ``DynamicConv`` starts it at 40 and lowers it by one per call of
``update_temperature``, which the official trainer never calls; it is a plain attribute, not in the
state dict, so the official test also runs at 40. Here it is the constant ``TEMPERATURE``.

Input range: the official models take RGB in [0, 255] (``rgb_range`` 255); ``forward`` here takes
[0, 1], multiplies by 255 before ``sub_mean`` and divides by 255 after ``add_mean``.

Parameters: 1,818,520 / 2,003,160 / 1,966,232 at x2 / x3 / x4 in all, 24 of them the frozen mean shifts
(paper-results.md §8a, measured from the official class). The paper's "1819K" (its complexity table,
Table VII, which compares x4 models) is the x2 network's count with the frozen mean shifts; srlab's
``paper_parameter_count`` leaves frozen parameters out (1,818,496 / 2,003,136 / 1,966,208).

MACs: the official repository's complexity figure gives 110.99 G for x4 at a 1024x1024 HR image.
srlab counts 122.85 G for the same size: the five dynamic convolutions run as ``F.conv2d`` calls, which a
module-hook counter such as ``thop`` does not see (5 x 64 x 64 x 9 x 256^2 = 12.08 G); without them srlab's
count is 110.77 G, and the remaining 0.22 G (3.4 K per LR pixel) is about what ``thop``'s older versions
add for biases, ReLUs and the mean shifts. srlab reports the full count (every convolution that runs);
it does not depend on the input (the kernel mixture is soft: all four candidates are always mixed).

Receptive field: locally 21 LR pixels (the upper network: 1 + 5 x (2 + 1 + 1)) plus the upsampling and
output convolutions (``receptive_radius`` 24); the dynamic kernels' attention pools the whole input, so every
output pixel depends a little on every input pixel and tiled inference is close to, not equal to,
whole-image inference.

Deviations from the official code: none in structure, names or arithmetic. The per-image kernels are
applied as one grouped convolution over the batch, as officially; the official code's unused
``self.ReLU`` and ``multi_scale`` upsampling branches (never built) are left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.mean_shift import MeanShift
from srlab.models.registry import ModelInfo, register_model

_RGB_RANGE = 255.0  # the official pixel range
FEATURES = 64
TEMPERATURE = 40.0  # the official DynamicConv's starting temperature, never lowered (module docstring)
NUM_KERNELS = 4
ATTENTION_REDUCTION = 4


def conv_relu(in_channels: int, out_channels: int = FEATURES, *, dilation: int = 1) -> nn.Sequential:
    """Bias-free 3x3 conv ("same" padding) + ReLU, as an ``nn.Sequential`` (official names ``convN.0``)."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class KernelAttention(nn.Module):
    """Softmax weights of the K candidate kernels from the globally pooled input (official ``Attention``)."""

    def __init__(self, channels: int, num_kernels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(), nn.Conv2d(hidden, num_kernels, 1, bias=False)
        )
        for conv in (self.net[0], self.net[2]):  # the official initialisation
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(F.adaptive_avg_pool2d(x, 1)).flatten(1)
        return torch.softmax(logits / TEMPERATURE, dim=-1)


class DynamicConv(nn.Module):
    """3x3 conv whose kernel and bias are, per image, a softmax mixture of K candidates."""

    def __init__(self, channels: int, *, num_kernels: int = NUM_KERNELS, reduction: int = ATTENTION_REDUCTION) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_kernels, channels, channels, 3, 3))
        self.bias = nn.Parameter(torch.empty(num_kernels, channels))
        self.attention = KernelAttention(channels, num_kernels, reduction)
        for kernel in self.weight:  # the official initialisation (its biases start as torch.randn)
            nn.init.kaiming_uniform_(kernel)
        nn.init.normal_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        mix = self.attention(x)  # (batch, K)
        weight = (mix @ self.weight.flatten(1)).view(-1, *self.weight.shape[2:])
        bias = (mix @ self.bias).flatten()
        # every image its own kernel: the batch folded into the channels, one group per image
        out = F.conv2d(x.reshape(1, batch * channels, height, width), weight, bias, padding=1, groups=batch)
        return out.view(batch, -1, height, width)


class HeterogeneousNetwork(nn.Module):
    """The upper network (official ``Block``): ``conv1`` and five (dilated, dynamic, plain) residual blocks."""

    def __init__(self, blocks: int = 5) -> None:
        super().__init__()
        self.blocks = blocks
        self.conv1 = conv_relu(3)
        for block in range(blocks):
            first = 2 + 3 * block
            setattr(self, f"conv{first}", conv_relu(FEATURES, dilation=2))
            setattr(self, f"conv{first + 1}", nn.Sequential(DynamicConv(FEATURES), nn.ReLU(inplace=True)))
            setattr(self, f"conv{first + 2}", conv_relu(FEATURES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for block in range(self.blocks):
            first = 2 + 3 * block
            y = x
            for index in range(first, first + 3):
                y = getattr(self, f"conv{index}")(y)
            x = y + x
        return x


class UpsampleStages(nn.Module):
    """Conv (with bias) + PixelShuffle per stage: one x2 or x3 stage, two x2 stages for x4."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for factor in {2: [2], 3: [3], 4: [2, 2]}[scale]:
            layers += [nn.Conv2d(channels, factor * factor * channels, 3, padding=1), nn.PixelShuffle(factor)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Official ``ops.UpsampleBlock`` at one scale: ``up.body`` = conv + PixelShuffle stages, no activation."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.up = UpsampleStages(channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class ADSRNet(nn.Module):
    def __init__(self, *, scale: int) -> None:
        super().__init__()
        self.scale = scale
        # lower, symmetric network
        self.conv1 = conv_relu(3)
        for index in range(2, 17):
            setattr(self, f"conv{index}", conv_relu(FEATURES))
        self.conv17 = nn.Sequential(nn.Conv2d(FEATURES, 3, 3, padding=1, bias=False))  # official ``conv17.0``
        self.upsample = Upsample(FEATURES, scale)
        self.Block = HeterogeneousNetwork()  # the official (capitalised) name, kept for the state dict
        self.sub_mean = MeanShift(_RGB_RANGE, sign=-1)
        self.add_mean = MeanShift(_RGB_RANGE, sign=1)

    def symmetric(self, x: torch.Tensor) -> torch.Tensor:
        """The lower network: conv1..conv8, then conv9..conv16 each adding conv_{17-i}'s output."""
        first_half = []
        for index in range(1, 9):
            x = getattr(self, f"conv{index}")(x)
            first_half.append(x)
        for index in range(9, 17):
            x = getattr(self, f"conv{index}")(x) + first_half[16 - index]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x * _RGB_RANGE)
        features = self.Block(x) * self.symmetric(x)
        return self.add_mean(self.conv17(self.upsample(features))) / _RGB_RANGE


@register_model(
    ModelInfo(
        paper="Tian et al., Adaptive Convolutional Neural Network for Image Super-Resolution (HDSRNet), arXiv 2402.15704, 2024",
        origin="https://github.com/hellloxiaotian/ADSRNet",
        licence="unknown",
        scales=(2, 3, 4),
        size_multiple=1,
        receptive_radius=24,  # local reach; the kernel attention pools globally (module docstring)
        # the two 255-range branches multiply: 1.8e4 at random weights already, near float16's 65504
        half_precision_safe=False,
    )
)
def adsrnet(*, scale: int) -> ADSRNet:
    """ADSRNet / HDSRNet as published (1.82 M parameters at x2)."""
    return ADSRNet(scale=scale)
