"""LIIF: EDSR-baseline features decoded by a local implicit image function, at any real scale.

Paper: Chen, Liu and Wang, "Learning Continuous Image Representation with Local Implicit Image
Function", CVPR 2021. Official code: yinboc/liif (BSD-3-Clause), ``models/liif.py`` with the encoder
``edsr-baseline`` (``no_upsampling: true``) and ``imnet`` ``mlp`` [256, 256, 256, 256]
(``configs/train-div2k/train_edsr-baseline-liif.yaml``). Parameter names are the official state
dict's (``sd`` of the released ``.pth``): ``encoder.{sub_mean,add_mean,head,body}.*`` and
``imnet.layers.*``. The encoder keeps EDSR's two MeanShift layers (rgb_range 1) that its forward never
calls, so that those checkpoints load strictly; the decoder is :mod:`srlab.layers.upsamplers.liif`.

Forward: ``model(lr, size=None)``, ``lr`` RGB in [0, 1] (N, 3, h, w) -> (N, 3, H, W) with (H, W) =
``size``, or MATLAB's output size ``ceil(scale * h) x ceil(scale * w)`` for ``model.scale`` (any real
number >= 1, settable). As in the official test, the input is normalised to [-1, 1] (``data_norm``
sub 0.5, div 0.5) and the output mapped back; the output is not clamped (the official test clamps to
[0, 1], as srlab's evaluation does). ``model.query(lr, coord, cell)`` renders given HR points
(training on sampled pixels); the LIIF coordinate convention is in the decoder's module.
"""

from __future__ import annotations

from torch import Tensor, nn

from srlab.layers.mean_shift import MeanShift
from srlab.layers.upsamplers.liif import LiifDecoder
from srlab.models.edsr import ResBlock
from srlab.models.registry import ModelInfo, register_model

# The official data_norm: inputs and outputs live in [-1, 1] inside the network.
_NORM_SUB, _NORM_DIV = 0.5, 0.5


class EdsrEncoder(nn.Module):
    """EDSR(-baseline) without its upsampler, as LIIF/LTE's ``edsr-baseline`` encoder."""

    def __init__(self, *, channels: int, num_blocks: int, res_scale: float) -> None:
        super().__init__()
        self.out_channels = channels
        # Unused by the forward (the official encoder comments them out); kept for strict loading.
        self.sub_mean = MeanShift(1.0, sign=-1)
        self.add_mean = MeanShift(1.0, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1))
        self.body = nn.Sequential(
            *(ResBlock(channels, res_scale=res_scale) for _ in range(num_blocks)),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        return self.body(x) + x


def normalise(lr: Tensor) -> Tensor:
    return (lr - _NORM_SUB) / _NORM_DIV


def denormalise(pred: Tensor) -> Tensor:
    return pred * _NORM_DIV + _NORM_SUB


class LiifEdsr(LiifDecoder):
    """An encoder plus LIIF's decoder; the decoder's parameters sit at the top level (``imnet``), as
    in the official model, which is why this model *is* a decoder rather than holding one."""

    def __init__(self, *, scale: float, channels: int, num_blocks: int, hidden: int, depth: int) -> None:
        super().__init__(channels, 3, scale=scale, hidden=(hidden,) * depth)
        self.encoder = EdsrEncoder(channels=channels, num_blocks=num_blocks, res_scale=1.0)

    def query(self, lr: Tensor, coord: Tensor, cell: Tensor) -> Tensor:  # type: ignore[override]
        """RGB in [0, 1] at (N, Q, 2) HR points ``coord`` with ``cell`` sizes -> (N, Q, 3)."""
        return denormalise(super().query(self.encoder(normalise(lr)), coord, cell))

    def forward(self, lr: Tensor, size: tuple[int, int] | None = None) -> Tensor:  # type: ignore[override]
        return denormalise(super().forward(self.encoder(normalise(lr)), size))


def _info() -> ModelInfo:
    return ModelInfo(
        paper="Chen et al., Learning Continuous Image Representation with Local Implicit Image Function (CVPR 2021)",
        origin="https://github.com/yinboc/liif",
        licence="BSD-3-Clause",
        scales=(2, 3, 4),
        arbitrary_scale=True,
        # The official query arithmetic nudges coordinates by 1e-6, which half precision cannot hold.
        half_precision_safe=False,
        # 2 convs per block + head + body conv (1 LR px each), the 3x3 unfold and the ensemble's neighbour.
        receptive_radius=lambda a: 2 * a["num_blocks"] + 4,
    )


@register_model(_info())
def liif_edsr_baseline(
    *, scale: float, channels: int = 64, num_blocks: int = 16, hidden: int = 256, depth: int = 4
) -> LiifEdsr:
    """EDSR-baseline-LIIF: 16 blocks of 64 channels, an MLP of 4 x 256 (1,567,299 trainable parameters)."""
    return LiifEdsr(scale=scale, channels=channels, num_blocks=num_blocks, hidden=hidden, depth=depth)
