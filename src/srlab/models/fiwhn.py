"""FIWHN: feature interaction weighted hybrid network.

Paper: Wenjie Li, Juncheng Li, Guangwei Gao, Weihong Deng, Jian Yang, Guo-Jun Qi, Chia-Wen Lin,
"Efficient Image Super-Resolution with Feature Interaction Weighted Hybrid Network", IEEE Transactions
on Multimedia 2024 (arXiv:2212.14181). Official code: 24wenjie-li/FIWHN (no licence stated), read at
commit c7b1739: ``model/FIWHNx2.py``, ``model/FIWHNx3.py``, ``model/FIWHNx4.py`` (class ``MODEL``),
``model/common.py``, ``model/__init__.py`` (``forward_chop``), ``trainer.py``. This file is written
from that structure; module and parameter names are the official ones, so the released checkpoints
(``experiments/model_best_x{2,3,4}.pt``, plain state dicts) load with strict key matching.

Structure (32 features, hard-coded in the official ``MODEL``):

* ``Sub_mean`` / ``Add_mean``: 1x1 convs initialised as the EDSR mean shift (range 255). The official
  ``MeanShift`` sets ``requires_grad`` on the module, not on its parameters, so they were trained (the
  released values are no longer the identity) and count as parameters.
* ``head``: 3x3 conv 3 -> 32. Then three interaction blocks ``MY1..3`` (official ``MY``), whose outputs
  are fused by two grouped (4 groups) 3x3 convs, each followed by a 4-group channel shuffle; the
  result is ``0.5 * (fused + last) + 0.5 * head`` (learnable ``scale_x``, ``scale_res``).
* Transformer branch: ``attention1``/``attention2`` (ESRT's efficient transformer, 9 heads, on 3x3
  unfolded 288-d tokens, folded back with overlaps summed) on ``conv_down(MY2 output) + head``.
* The three interaction blocks run a second time (shared weights) on the fused features, the second
  one with ``conv_up(transformer output)`` added to its input; fused again the same way.
* ``conv`` (1x1) merges that with the transformer output; ``UP1(conv1(.))`` (3x3 conv + PixelShuffle)
  plus ``UP2(conv2(mean-shifted input))`` gives the output, then ``Add_mean``.
* An interaction block (``MY``): two paths A and B of SRBW blocks (``srb1``, ``rb1`` / ``srb2``,
  ``rb2``) that exchange features through ``CoffConv`` weights (the average of a squeeze-excitation of
  the channel mean and one of the channel standard deviation, each ending in ReLU then sigmoid) and
  gate them by sigmoids of 1x1 convs (``conv_distilled1/2``) of the paths' first outputs; ``srb3`` /
  ``srb4`` finish each path, ``fuse1`` (an SRBW2 halving 64 -> 32) and a sigmoid of ``fuse2`` (1x1) of
  both paths combine them.
* SRBW1: 1x1 conv (C -> 2C), ReLU, 1x1 conv (2C -> C/2), 3x3 conv (C/2 -> C), times a learnable scale.
  SRBW2 (2C -> C): the same body to C channels plus a learnable scale times a 3x3 conv shortcut.

The released code differs between scales: in ``FIWHNx4.py`` every SRBW passes its body through the
shuffle attention (``SAlayer``, SA-Net) and SRBW1 adds its input (``x_scale``); in ``FIWHNx2.py`` and
``FIWHNx3.py`` neither, although the parameters are created (and saved in the x2/x3 checkpoints). Here
``full_blocks`` (True at x4) selects the form; the unused parameters are kept so that the official
checkpoints load strictly and the parameter counts are the official code's.

Input range: the official test feeds RGB in [0, 255] (``rgb_range`` 255) and quantises the output.
``forward`` here takes and returns RGB in [0, 1] and scales by 255 inside (no parameter involved).

Inference as in the official test: the official ``Model.forward`` runs every image in eval mode
through ``forward_chop`` (four quadrants overlapping by 2 x 10 px, each split again while it holds
40,000 pixels or more; each output quadrant keeps the part away from the overlap), and so does
``forward`` here (:func:`forward_chop`). The network is not translation-equivariant (the CoffConv and
shuffle attention statistics are global, and the efficient attention attends within N // 4
consecutive raster-scanned tokens), so the chop is part of the function the released weights were
evaluated with; it also bounds the attention's memory (quadratic in the segment length). Training
(``model.train()``) runs whole patches, as the official training does.

Deviations from the official code: inputs under 19 pixels in a side, whose quadrants the official
chop cannot cut (it fails), run whole. For fewer than 4 tokens, on which the official attention fails,
the segments are single tokens (:mod:`srlab.layers.emha`). The standard deviation is
``var(unbiased=False).sqrt()`` (the official ``std`` sums the squared deviations itself). Tiled
inference is not identical to whole-image inference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.mean_shift import MeanShift
from srlab.models.esrt import EfficientTransformer, LearnableScale
from srlab.models.registry import ModelInfo, register_model

# The released weights were trained on 0-255 images.
_PIXEL_RANGE = 255.0
_LEAKY_SLOPE = 0.05
# The official test's forward_chop: quadrant overlap (LR pixels) and the size below which a quadrant
# is run rather than split again.
CHOP_SHAVE = 10
CHOP_MIN_PIXELS = 40_000


def _conv(in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias, groups=groups)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, g*c, H, W) -> channels reordered c-major: [g0c0, g1c0, ..., g0c1, ...] (ShuffleNet)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleAttention(nn.Module):
    """SA-Net's shuffle attention (official ``sa_layer``, 4 groups).

    The channels are cut into ``groups`` groups, each halved: one half is gated by a sigmoid of its
    (scaled, shifted) channel means, the other by a sigmoid of its (scaled, shifted) group-normalised
    values; the halves are concatenated and the result channel-shuffled in 2 groups.
    """

    def __init__(self, channels: int, *, groups: int = 4) -> None:
        super().__init__()
        self.groups = groups
        half = channels // (2 * groups)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        channel_half, spatial_half = x.reshape(b * self.groups, -1, h, w).chunk(2, dim=1)
        means = channel_half.mean(dim=(2, 3), keepdim=True)
        channel_half = channel_half * torch.sigmoid(self.cweight * means + self.cbias)
        spatial_half = spatial_half * torch.sigmoid(self.sweight * self.gn(spatial_half) + self.sbias)
        out = torch.cat((channel_half, spatial_half), dim=1).reshape(b, c, h, w)
        return channel_shuffle(out, 2)


class SRBW(nn.Module):
    """Official ``SRBW1`` (``halve=False``: C -> C) and ``SRBW2`` (``halve=True``: C -> C/2, with a
    3x3 conv shortcut). ``full_blocks``: the x4 code's form (shuffle attention on the body; SRBW1 adds
    its input); the x2/x3 code has neither but creates the same parameters."""

    def __init__(self, channels: int, *, halve: bool, full_blocks: bool) -> None:
        super().__init__()
        out_channels = channels // 2 if halve else channels
        self.halve = halve
        self.full_blocks = full_blocks
        self.res_scale = LearnableScale(1.0)
        self.x_scale = LearnableScale(1.0)
        self.body = nn.Sequential(
            _conv(channels, 2 * channels, 1),
            nn.ReLU(inplace=True),
            _conv(2 * channels, channels // 2, 1),
            _conv(channels // 2, out_channels, 3),
        )
        self.SAlayer = ShuffleAttention(out_channels)
        if halve:
            self.conv = _conv(channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.full_blocks:
            y = self.SAlayer(y)
        y = self.res_scale(y)
        if self.halve:
            return y + self.x_scale(self.conv(x))
        return y + self.x_scale(x) if self.full_blocks else y


def _channel_std(x: torch.Tensor) -> torch.Tensor:
    return x.var(dim=(2, 3), keepdim=True, unbiased=False).sqrt()


class CoffConv(nn.Module):
    """Interaction weights: the mean of two squeeze-excitations (of the channel means and of the channel
    standard deviations), each ending in ReLU then sigmoid as in the official code."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = channels // 8
        self.upper_branch = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            _conv(channels, hidden, 1),
            nn.ReLU(inplace=True),
            _conv(hidden, channels, 1),
            nn.ReLU(inplace=True),
            nn.Sigmoid(),
        )
        self.lower_branch = nn.Sequential(
            _conv(channels, hidden, 1),
            nn.ReLU(inplace=True),
            _conv(hidden, channels, 1),
            nn.ReLU(inplace=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.upper_branch(x) + self.lower_branch(_channel_std(x))) / 2


class InteractionBlock(nn.Module):
    """The feature interaction weighted block (official ``MY``): two SRBW paths exchanging features."""

    def __init__(self, channels: int, *, full_blocks: bool) -> None:
        super().__init__()

        def srbw() -> SRBW:
            return SRBW(channels, halve=False, full_blocks=full_blocks)

        self.srb1 = srbw()
        self.srb2 = srbw()
        self.rb1 = srbw()
        self.rb2 = srbw()
        self.A1_coffconv = CoffConv(channels)
        self.B1_coffconv = CoffConv(channels)
        self.A2_coffconv = CoffConv(channels)
        self.B2_coffconv = CoffConv(channels)
        self.conv_distilled1 = _conv(channels, channels, 1, bias=False)
        self.conv_distilled2 = _conv(channels, channels, 1, bias=False)
        self.scale_x1 = LearnableScale(1.0)
        self.scale_x2 = LearnableScale(1.0)
        self.srb3 = srbw()
        self.srb4 = srbw()
        self.fuse1 = SRBW(2 * channels, halve=True, full_blocks=full_blocks)
        self.fuse2 = _conv(2 * channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distilled_a = F.leaky_relu(self.srb1(x), _LEAKY_SLOPE)
        out_a = self.rb1(distilled_a)
        in_b = self.A1_coffconv(out_a) * out_a + x
        out_a = self.B1_coffconv(x) * x + out_a

        distilled_b = F.leaky_relu(self.srb2(in_b), _LEAKY_SLOPE)
        out_b = self.rb2(distilled_b)
        gated_b = (self.A2_coffconv(out_a) * out_a + out_b) * torch.sigmoid(self.conv_distilled1(distilled_b))
        gated_a = (out_b * self.B2_coffconv(out_b) + out_a) * torch.sigmoid(self.conv_distilled2(distilled_a))

        final_a = self.srb3(gated_a)
        final_b = self.srb4(gated_b)
        both = torch.cat((self.scale_x1(final_a), self.scale_x2(final_b)), dim=1)
        return self.fuse1(both) + torch.sigmoid(self.fuse2(both)) * final_b


class FoldedTransformer(EfficientTransformer):
    """ESRT's efficient transformer on 3x3 unfolded patches, folded back to (B, C, H, W) with the
    overlapping patches summed (official ``TransBlock``: ``extract_image_patches``/``reverse_patches``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return F.fold(super().forward(x).transpose(1, 2), x.shape[-2:], k, padding=k // 2)


def forward_chop(x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor], scale: int) -> torch.Tensor:
    """The official test's ``forward_chop``: ``run`` on four quadrants of ``x`` (each half a side plus
    :data:`CHOP_SHAVE`), split again while one holds :data:`CHOP_MIN_PIXELS` or more; the outputs are
    assembled from each quadrant's part on its own side of the halves. ``x`` needs sides >= 19."""
    h, w = x.shape[-2:]
    h_half, w_half = h // 2, w // 2
    h_size, w_size = h_half + CHOP_SHAVE, w_half + CHOP_SHAVE
    quadrants = [
        x[..., :h_size, :w_size],
        x[..., :h_size, w - w_size :],
        x[..., h - h_size :, :w_size],
        x[..., h - h_size :, w - w_size :],
    ]
    if h_size * w_size < CHOP_MIN_PIXELS:
        outs = [run(q) for q in quadrants]
    else:
        outs = [forward_chop(q, run, scale) for q in quadrants]
    s = scale
    top, left = h_half * s, w_half * s
    # Offsets of the bottom/right halves inside the bottom/right quadrants' outputs.
    dy, dx = (h_size - h + h_half) * s, (w_size - w + w_half) * s
    upper = torch.cat((outs[0][..., :top, :left], outs[1][..., :top, dx:]), dim=-1)
    lower = torch.cat((outs[2][..., dy:, :left], outs[3][..., dy:, dx:]), dim=-1)
    return torch.cat((upper, lower), dim=-2)


def chop_applies(x: torch.Tensor) -> bool:
    """Whether the official chop can cut ``x`` (each quadrant fits inside it)."""
    return min(x.shape[-2:]) // 2 + CHOP_SHAVE <= min(x.shape[-2:])


class FIWHN(nn.Module):
    def __init__(self, *, scale: int, channels: int = 32, full_blocks: bool = False) -> None:
        super().__init__()
        self.scale = scale
        c = channels
        # Trainable in the official code (see the module docstring): re-enable their gradients.
        self.Sub_mean = MeanShift(_PIXEL_RANGE, sign=-1).requires_grad_(True)
        self.Add_mean = MeanShift(_PIXEL_RANGE, sign=1).requires_grad_(True)
        self.head = _conv(3, c, 3)
        self.MY1 = InteractionBlock(c, full_blocks=full_blocks)
        self.MY2 = InteractionBlock(c, full_blocks=full_blocks)
        self.MY3 = InteractionBlock(c, full_blocks=full_blocks)
        self.conv_concat1 = _conv(2 * c, c, 3, bias=False, groups=4)
        self.conv_concat2 = _conv(2 * c, c, 3, bias=False, groups=4)
        self.attention1 = FoldedTransformer(c, num_heads=9)
        self.attention2 = FoldedTransformer(c, num_heads=9)
        self.conv = _conv(2 * c, c, 1, bias=False)
        self.scale_x = LearnableScale(0.5)
        self.scale_res = LearnableScale(0.5)
        self.conv_down = _conv(c, c, 3, bias=False)
        self.conv_up = _conv(c, c, 3, bias=False)
        self.conv1 = _conv(c, c, 3, bias=False)
        self.UP1 = nn.Sequential(_conv(c, 3 * scale * scale, 3), nn.PixelShuffle(scale))
        self.conv2 = _conv(3, c, 3)
        self.UP2 = nn.Sequential(_conv(c, 3 * scale * scale, 3), nn.PixelShuffle(scale))

    def _blocks(self, x: torch.Tensor, injected: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The three interaction blocks and their grouped-conv fusion; returns the fused features and
        the second block's output. ``injected`` is added to the second block's input."""
        out1 = self.MY1(x)
        out2 = self.MY2(out1 if injected is None else out1 + injected)
        out3 = self.MY3(out2)
        fused = channel_shuffle(self.conv_concat1(torch.cat((out1, out2), dim=1)), 4)
        fused = channel_shuffle(self.conv_concat2(torch.cat((fused, out3), dim=1)), 4)
        return self.scale_x(fused + out3) + self.scale_res(x), out2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not chop_applies(x):
            return self.forward_whole(x)
        return forward_chop(x, self.forward_whole, self.scale)

    def forward_whole(self, x: torch.Tensor) -> torch.Tensor:
        """The network on the whole of ``x`` (the official ``MODEL.forward``), RGB in [0, 1]."""
        shifted = self.Sub_mean(x * _PIXEL_RANGE)
        shallow = self.head(shifted)
        deep, out2 = self._blocks(shallow)
        global_features = self.attention2(self.attention1(self.conv_down(out2) + shallow))
        deep, _ = self._blocks(deep, injected=self.conv_up(global_features))
        merged = self.conv(torch.cat((deep, global_features), dim=1))
        out = self.UP1(self.conv1(merged)) + self.UP2(self.conv2(shifted))
        return self.Add_mean(out) / _PIXEL_RANGE


@register_model(
    ModelInfo(
        paper="Li et al., Efficient Image Super-Resolution with Feature Interaction Weighted Hybrid "
        "Network (FIWHN), IEEE TMM 2024",
        origin="https://github.com/24wenjie-li/FIWHN",
        licence="unknown",
        scales=(2, 3, 4),
        size_multiple=1,
        # Not a strict bound: global channel statistics and attention within H/4 full-width rows; the
        # convolutions of six interaction-block passes reach a few dozen pixels.
        receptive_radius=64,
        half_precision_safe=False,  # features in [0, 255]; not verified
    )
)
def fiwhn(*, scale: int) -> FIWHN:
    """The released model of each scale: the x4 code's SRBW form at x4, the x2/x3 code's otherwise."""
    return FIWHN(scale=scale, full_blocks=scale == 4)
