"""Meta-RDN: RDN features upscaled by Meta-SR's Meta-Upscale module, at any real scale.

Paper: Hu, Mu, Zhang, Wang, Tan and Sun, "Meta-SR: A Magnification-Arbitrary Network for
Super-Resolution", CVPR 2019. Official code: XuecaiHu/Meta-SR-Pytorch (no licence stated),
``model/metardn.py`` (RDN configuration B: 16 RDBs of 8 convs, growth 64, G0 64, rgb_range 255).
Parameter names are the official state dict's (``model_1000.pt``): ``sub_mean``, ``add_mean``,
``SFENet1``, ``SFENet2``, ``RDBs.i.convs.j.conv.0``, ``RDBs.i.LFF``, ``GFF.{0,1}`` and
``P2W.meta_block.{0,2}`` (:mod:`srlab.layers.upsamplers.meta`).

Forward: ``model(lr, size=None)``, ``lr`` RGB in [0, 1] -> (N, 3, H, W) with (H, W) = ``size`` or
MATLAB's output size ``ceil(scale * h) x ceil(scale * w)`` for ``model.scale`` (any real >= 1,
settable). Deviations: the official ``MeanShift`` sets ``requires_grad = False`` on the module, not
on its parameters, so official training updates the two mean shifts (all 22,419,096 parameters are
trainable there); srlab freezes them as in EDSR (22,419,072 trainable) and loads a checkpoint's values
as they are. The official test renders ``int(scale * h)`` rows (floor); srlab renders the size
asked for (the HR size in ``srlab eval``, MATLAB's ceil rule by default), with the same pixel mapping
for every row both have.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from srlab.layers.mean_shift import MeanShift
from srlab.layers.upsamplers.meta import MetaUpsampler
from srlab.models.registry import ModelInfo, register_model

_RGB_RANGE = 255.0


class DenseConv(nn.Module):
    """One conv of a residual dense block; its output is concatenated to its input."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, growth, 3, padding=1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x, self.conv(x)), 1)


class RDB(nn.Module):
    """Residual dense block: ``num_convs`` dense convs, 1x1 local feature fusion, local residual."""

    def __init__(self, channels: int, growth: int, num_convs: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(DenseConv(channels + i * growth, growth) for i in range(num_convs)))
        self.LFF = nn.Conv2d(channels + num_convs * growth, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.LFF(self.convs(x)) + x


class MetaRDN(nn.Module):
    def __init__(self, *, scale: float, channels: int, num_blocks: int, num_convs: int, growth: int) -> None:
        super().__init__()
        self.sub_mean = MeanShift(_RGB_RANGE, sign=-1)
        self.add_mean = MeanShift(_RGB_RANGE, sign=1)
        self.SFENet1 = nn.Conv2d(3, channels, 3, padding=1)
        self.SFENet2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.RDBs = nn.ModuleList(RDB(channels, growth, num_convs) for _ in range(num_blocks))
        self.GFF = nn.Sequential(nn.Conv2d(num_blocks * channels, channels, 1), nn.Conv2d(channels, channels, 3, padding=1))
        self.P2W = MetaUpsampler(channels, 3, scale=scale)

    @property
    def scale(self) -> float:
        return self.P2W.scale

    @scale.setter
    def scale(self, value: float) -> None:
        self.P2W.scale = value

    def forward(self, lr: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        shallow = self.SFENet1(self.sub_mean(lr * _RGB_RANGE))
        x = self.SFENet2(shallow)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        x = self.GFF(torch.cat(outs, 1)) + shallow
        return self.add_mean(self.P2W(x, size)) / _RGB_RANGE


@register_model(
    ModelInfo(
        paper="Hu et al., Meta-SR: A Magnification-Arbitrary Network for Super-Resolution (CVPR 2019)",
        origin="https://github.com/XuecaiHu/Meta-SR-Pytorch",
        licence="unknown",
        scales=(2, 3, 4),
        arbitrary_scale=True,
        half_precision_safe=False,
        # SFENet1/2, 8 convs per RDB, GFF's 3x3 and the Meta-Upscale's 3x3 (1 LR px each).
        receptive_radius=lambda a: a["num_blocks"] * a["num_convs"] + 4,
    )
)
def metasr_rdn(
    *, scale: float, channels: int = 64, num_blocks: int = 16, num_convs: int = 8, growth: int = 64
) -> MetaRDN:
    """Meta-RDN: RDN (16 blocks x 8 convs, growth 64) and Meta-Upscale."""
    return MetaRDN(scale=scale, channels=channels, num_blocks=num_blocks, num_convs=num_convs, growth=growth)
