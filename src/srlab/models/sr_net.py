"""SR-Net: the small network SR-LUT trains and then turns into a look-up table.

Paper: Jo & Kim, "Practical Single-Image Super-Resolution Using Look-Up Table", CVPR 2021; official
code yhjo09/SR-LUT (no licence stated), ``1_Train_deep_model/Train_Model_S.py`` (network, training
forward) and ``2_Transfer_to_LUT/Transfer_Model_S.py`` (transfer).

The network sees only the ``k`` pixels of its receptive field (S 2x2, D dilated 2x2, Y, F 1x3, V 1x2;
:data:`srlab.lut.interp.FIELDS`) and maps them to the ``s x s`` output block of the field's top-left
pixel: a first layer over the field, four 1x1 convolutions of ``channels`` with ReLU, one to ``s**2``,
pixel shuffle. It runs on each colour plane alone, with the rotation ensemble of the official training:
each rotation padded at its bottom/right by reflection, ``clamp(out, -1, 1) * 127`` summed over the four
rotations and divided by 255 — exactly what the look-up table computes at the sampled inputs.

:func:`to_lut` samples the network at every ``levels`` input per tap (0, 16, ..., 240 and 255 for 17, as
the official transfer does) and stores ``round(clamp(out, -1, 1) * 127)``: an ``sr_lut`` model of the same
field and scale (``srlab lut export`` writes it).

Deviation: the first layer is a 1x1 convolution over the field's taps gathered as channels (same
function and parameter count as the official 2x2 convolution, weight shaped ``(C, k, 1, 1)`` instead
of ``(C, 1, 2, 2)``), so that every field, the Y-shaped one included, is the same layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.lut.interp import field_named, field_radius
from srlab.models.lut import SRLUT
from srlab.models.registry import ModelInfo, build_model, register_model


class SRNet(nn.Module):
    def __init__(self, *, scale: int, field: str, channels: int) -> None:
        super().__init__()
        self.scale = scale
        self.field = field_named(field)
        taps = len(self.field.taps)
        self.conv1 = nn.Conv2d(taps, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 1)
        self.conv3 = nn.Conv2d(channels, channels, 1)
        self.conv4 = nn.Conv2d(channels, channels, 1)
        self.conv5 = nn.Conv2d(channels, channels, 1)
        self.conv6 = nn.Conv2d(channels, scale * scale, 1)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6):
            nn.init.kaiming_normal_(conv.weight)
            nn.init.zeros_(conv.bias)

    def field_forward(self, taps: torch.Tensor) -> torch.Tensor:
        """(N, k, H, W) field pixels in [0, 1] -> (N, s*s, H, W), the raw output blocks."""
        x = self.conv1(taps)
        for conv in (self.conv2, self.conv3, self.conv4, self.conv5, self.conv6):
            x = conv(F.relu(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        planes = x.reshape(n * c, 1, h, w)
        total = 0
        for turns in range(4):
            rotated = torch.rot90(planes, turns, dims=(2, 3))
            rh, rw = rotated.shape[-2:]
            padded = F.pad(rotated, (0, self.field.pad_right, 0, self.field.pad_bottom), mode="reflect")
            taps = torch.cat([padded[:, :, dy : dy + rh, dx : dx + rw] for dy, dx in self.field.taps], dim=1)
            out = F.pixel_shuffle(self.field_forward(taps), self.scale).clamp(-1, 1) * 127
            total = total + torch.rot90(out, -turns, dims=(2, 3))
        return (total / 255).reshape(n, c, h * self.scale, w * self.scale)


def sampled_inputs(taps: int, levels: int) -> torch.Tensor:
    """Every sampled input of a ``taps``-tap table, ``(levels**taps, taps)`` in [0, 1], first tap most
    significant; the samples are every ``256 / (levels - 1)`` levels, the last one 255."""
    values = (torch.arange(levels) * (256 // (levels - 1))).clamp(max=255).float() / 255
    return torch.cartesian_prod(*[values] * taps).reshape(-1, taps)


@torch.no_grad()
def to_lut(net: SRNet, *, levels: int = 17, batch: int = 65536) -> SRLUT:
    """The ``sr_lut`` table of ``net`` sampled at ``levels`` values per tap (interpolated on correctly
    ordered simplices: ``srlut_order=False``)."""
    lut = build_model(
        "sr_lut", scale=net.scale, args={"field": net.field.name, "levels": levels, "srlut_order": False}
    )
    inputs = sampled_inputs(len(net.field.taps), levels).to(next(net.parameters()).device)
    rows = [
        net.field_forward(chunk[:, :, None, None])[:, :, 0, 0].clamp(-1, 1).mul(127).round()
        for chunk in inputs.split(batch)
    ]
    lut.lut.copy_(torch.cat(rows).cpu())
    return lut.eval()


@register_model(
    ModelInfo(
        paper="Jo & Kim, Practical Single-Image Super-Resolution Using Look-Up Table (SR-LUT, CVPR 2021): SR-Net",
        origin="https://github.com/yhjo09/SR-LUT",
        licence="unknown",
        scales=(2, 3, 4),
        size_multiple=1,
        pad_mode="inside",  # each rotation is padded inside, as in the official training
        receptive_radius=lambda a: field_radius(a["field"]),
        reparameterizable=False,
        half_precision_safe=True,
    )
)
def sr_net(*, scale: int, field: str = "S", channels: int = 64) -> SRNet:
    """SR-LUT's SR-Net over ``field`` S/D/Y/F/V; ``to_lut`` / ``srlab lut export`` turn it into ``sr_lut``."""
    return SRNet(scale=scale, field=field, channels=channels)


