"""MuLUT's network: the cascade of small networks that MuLUT trains and then turns into look-up tables.

Paper: Li et al., "MuLUT: Cooperating Multiple Look-Up Tables for Efficient Image Super-Resolution",
ECCV 2022; official code ddlee-cn/MuLUT (MIT): ``sr/model.py`` (``SRNets``), ``common/network.py``
(``SRNet``, ``MuLUTUnit``, ``DenseConv``), ``sr/1_train_model.py`` (``mulut_predict``, the training
forward) and ``sr/2_transfer_to_lut.py`` (the transfer).

``stages`` stages of one unit per mode of ``modes``: S sees the 2x2 field, D the dilated 2x2 (taps two
pixels apart), Y the Y-shaped field (:data:`srlab.lut.interp.FIELDS`). A unit maps its four pixels to
``tanh`` outputs: a first layer over the field, four densely connected 1x1 layers of ``channels`` with
ReLU (each appends its output to its input), a 1x1 layer to one output (stages before the last) or
``scale**2`` (the last, pixel shuffled). It runs on each colour plane alone, with the rotation ensemble:
each rotation padded at its bottom/right by replication, ``round(127 * out)`` summed over the four
rotations and the modes (the rounding is straight through while training). A stage before the last maps
the sum back to pixels, ``round(clamp(sum / (4 * modes) + 127, 0, 255)) / 255``; the last returns
``round(sum / modes) / 255`` (not clamped, as in the official training loss). This is the official
training forward; the tables (``mulut``, :mod:`srlab.models.lut`) compute the same with the units
replaced by interpolated samples.

Parameter names are the official ``SRNets`` state dict's (``s1_s.model.conv1.conv.weight``, ...), so the
released ``Model_200000.pth`` loads strictly once its tensors are stored as safetensors. Checked once
(2026-12-06, CPU, float32) against the official ``SRNets`` and ``mulut_predict`` run from /tmp with those
weights on Set5 and Set14 x4 (all 19 images, [0, 1] RGB): 290 of the 11,355,408 255-scaled output values
differ, by at most 3. The units' outputs differ by at most 1.7e-6 (float32 sums taken in another order),
which moves ``round(127 * out)`` by one where it lies that close to .5, and a first-stage pixel moved by
one moves the second stage's outputs around it. ``tests/models/test_mulut_net.py`` compares the forward
with a pixel-by-pixel float64 transcription of the official computation (equal).

:func:`to_mulut` samples every unit at every ``levels`` input per tap (0, 16, ..., 240 and 255 for 17,
as the official transfer does) and stores ``round(clamp(out, -1, 1) * 127)``: a ``mulut`` model of the
same scale, modes and stages (``srlab lut export`` writes it as MuLUT's folder of ``.npy`` tables;
``srlab train --model mulut --init_from`` that folder is MuLUT's LUT-aware fine-tuning). Checked once
against the official transfer (its ``get_input_tensor`` / ``get_mode_input_tensor`` through ``SRNets``,
``Model_200000``): the tables are equal but for 0 to 7 entries per table, off by one (the float32 order
again).

Deviation: the first layer runs as a 1x1 convolution over the field's taps gathered as channels (the
official 2x2, dilated 2x2 or 1x4 convolution over the patch: the same function, the weights kept in the
official shape and reshaped on the fly), so that the three fields are one code path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.lut.interp import field_named
from srlab.models.lut import MuLUT, check_mulut_modes, straight_through_round
from srlab.models.registry import ModelInfo, build_model, register_model
from srlab.models.sr_net import sampled_inputs

# The shape of the official first-layer kernel of each field: its four taps in the field's tap order
# when flattened (S 2x2; D the 2x2 dilated by 2; Y the four taps laid out in a row).
_KERNELS = {"s": (2, 2), "d": (2, 2), "y": (1, 4)}


class _Conv(nn.Module):
    """A convolution under the official name ``conv`` (MuLUT's ``Conv`` wrapper), MSRA initialised."""

    def __init__(self, *, in_channels: int, out_channels: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel)
        nn.init.kaiming_normal_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)


class _DenseLayer(nn.Module):
    """A 1x1 convolution with ReLU whose output is appended to its input (MuLUT's ``DenseConv``)."""

    def __init__(self, *, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = _Conv(in_channels=in_channels, out_channels=channels, kernel=(1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.conv1.conv(x))], dim=1)


class MuLUTUnit(nn.Module):
    """The network of one mode of one stage: four field pixels -> ``outputs`` values in [-1, 1]."""

    def __init__(self, *, mode: str, channels: int, outputs: int) -> None:
        super().__init__()
        self.conv1 = _Conv(in_channels=1, out_channels=channels, kernel=_KERNELS[mode])
        self.conv2 = _DenseLayer(in_channels=channels, channels=channels)
        self.conv3 = _DenseLayer(in_channels=2 * channels, channels=channels)
        self.conv4 = _DenseLayer(in_channels=3 * channels, channels=channels)
        self.conv5 = _DenseLayer(in_channels=4 * channels, channels=channels)
        self.conv6 = _Conv(in_channels=5 * channels, out_channels=outputs, kernel=(1, 1))

    def forward(self, taps: torch.Tensor) -> torch.Tensor:
        """(N, 4, H, W) field pixels in [0, 1], in the field's tap order -> (N, outputs, H, W)."""
        first = self.conv1.conv
        x = F.relu(F.conv2d(taps, first.weight.reshape(first.out_channels, 4, 1, 1), first.bias))
        x = self.conv5(self.conv4(self.conv3(self.conv2(x))))
        return torch.tanh(self.conv6.conv(x))


class MuLUTBlock(nn.Module):
    """One mode of one stage on a plane: the unit at every pixel's field (MuLUT's ``SRNet``)."""

    def __init__(self, *, mode: str, channels: int, scale: int) -> None:
        super().__init__()
        self.field = field_named(mode)
        self.scale = scale
        self.model = MuLUTUnit(mode=mode, channels=channels, outputs=scale * scale)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) in [0, 1] -> (N, 1, s*H, s*W) in [-1, 1], the bottom/right edge replicated."""
        h, w = planes.shape[-2:]
        padded = F.pad(planes, (0, self.field.pad_right, 0, self.field.pad_bottom), mode="replicate")
        taps = torch.cat([padded[:, :, dy : dy + h, dx : dx + w] for dy, dx in self.field.taps], dim=1)
        return F.pixel_shuffle(self.model(taps), self.scale)


class MuLUTNet(nn.Module):
    def __init__(self, *, scale: int, modes: str, stages: int, channels: int) -> None:
        super().__init__()
        check_mulut_modes(modes)
        if stages < 1:
            raise ValueError(f"stages must be at least 1, got {stages}")
        self.scale, self.modes, self.stages = scale, modes, stages
        for stage in range(1, stages + 1):
            for mode in modes:
                block = MuLUTBlock(mode=mode, channels=channels, scale=scale if stage == stages else 1)
                self.add_module(f"s{stage}_{mode}", block)

    def blocks(self) -> Iterator[tuple[str, MuLUTBlock]]:
        """``("s{stage}_{mode}", block)`` for every stage and mode, the names of MuLUT's tables."""
        for stage in range(1, self.stages + 1):
            for mode in self.modes:
                yield f"s{stage}_{mode}", getattr(self, f"s{stage}_{mode}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        planes = x.reshape(n * c, 1, h, w)
        for stage in range(1, self.stages + 1):
            total = 0
            for mode in self.modes:
                block = getattr(self, f"s{stage}_{mode}")
                for turns in range(4):
                    out = block(torch.rot90(planes, turns, dims=(2, 3)))
                    total = total + straight_through_round(torch.rot90(out, -turns, dims=(2, 3)) * 127)
            if stage == self.stages:
                planes = straight_through_round(total / len(self.modes)) / 255
            else:
                planes = straight_through_round((total / (4 * len(self.modes)) + 127).clamp(0, 255)) / 255
        return planes.reshape(n, c, h * self.scale, w * self.scale)


@torch.no_grad()
def to_mulut(net: MuLUTNet, *, levels: int = 17, batch: int = 65536) -> MuLUT:
    """The ``mulut`` tables of ``net``: every unit sampled at ``levels`` values per tap."""
    lut = build_model("mulut", scale=net.scale, args={"modes": net.modes, "stages": net.stages, "levels": levels})
    inputs = sampled_inputs(4, levels).to(next(net.parameters()).device)
    for name, block in net.blocks():
        rows = [
            block.model(chunk[:, :, None, None])[:, :, 0, 0].clamp(-1, 1).mul(127).round()
            for chunk in inputs.split(batch)
        ]
        lut.luts[name].copy_(torch.cat(rows).cpu())
    return lut.eval()


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """Stages and modes from the block names (``s2_y.*``), channels from a first layer."""
    names = {k.split(".")[0] for k in weights}
    stages = max(int(name[1:].split("_")[0]) for name in names)
    modes = "".join(m for m in "sdy" if f"s1_{m}" in names)
    return {"modes": modes, "stages": stages, "channels": weights[f"s1_{modes[0]}.model.conv1.conv.weight"].shape[0]}


@register_model(
    ModelInfo(
        paper="Li et al., MuLUT: Cooperating Multiple Look-Up Tables for Efficient Image Super-Resolution "
              "(ECCV 2022): the network",
        origin="https://github.com/ddlee-cn/MuLUT",
        licence="MIT",
        scales=(2, 3, 4),
        size_multiple=1,
        pad_mode="inside",  # each rotation is padded inside, as in the official training
        # Each stage reaches 2 LR pixels with a D or Y mode (1 with S alone); the stages chain.
        receptive_radius=lambda a: 2 * a["stages"] if set(a["modes"]) & set("dy") else a["stages"],
        reparameterizable=False,
        # The rounded sums reach 127 * 4 * modes: integers past bfloat16's exact range.
        half_precision_safe=False,
        args_from_weights=_args_from_weights,
    )
)
def mulut_net(*, scale: int, modes: str = "sdy", stages: int = 2, channels: int = 64) -> MuLUTNet:
    """MuLUT's network; ``to_mulut`` / ``srlab lut export`` turn it into the ``mulut`` tables."""
    return MuLUTNet(scale=scale, modes=modes, stages=stages, channels=channels)
