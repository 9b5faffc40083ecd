"""ESRT: Efficient Super-Resolution Transformer.

Paper: Lu, Li, Wang, Tang, Zhang, Zeng, "Transformer for Single Image Super-Resolution", CVPR Workshops
(NTIRE) 2022. Official code: luissen/ESRT (MIT licence), ``model/esrt.py``, ``util/transformer.py``,
``model/common.py``, ``util/tools.py``.

Structure (32 features, one body block, as hard-coded in the official ``ESRT``):

* ``head``: 3x3 conv 3 -> 32;
* ``body.0`` (official ``Un``): the lightweight CNN backbone (LCB) of three high-preserving blocks
  (HPB, official ``Updownblock``: ``encoder1..3``), their outputs concatenated and fused by a 3x3 conv
  (``reduce``), then the lightweight transformer backbone (LTB): one efficient transformer
  (official ``MLABlock``, ``attention``) on 3x3 unfolded patches (288-d tokens), folded back (overlaps
  summed) and a 3x3 conv (``alise``); ``weight1 * x + weight2 * out``.
* An HPB: an ARFB (official ``one_module``, ``encoder``); its output is average-pooled 2x and the
  high-frequency part (input minus the bilinearly re-upsampled low part, the HFM) is refined by
  another ARFB (``decoder_high``); the low part goes five times through one shared ARFB
  (``decoder_low``) and is upsampled back; both are concatenated, fused by a 1x1 conv + ReLU
  (``alise2``), channel attention (``att``) and an ARFB (``alise``), plus the input.
* An ARFB: two residual units (``layer1``, ``layer2``: conv 32 -> 16, PReLU, conv 16 -> 32, with
  learnable scales on the skip and the residual), their outputs concatenated (scaled), a 1x1 conv +
  ReLU (``alise``), channel attention (``atten``) and a 3x3 conv + ReLU (``layer4``), added to the
  scaled input. Its ``weight1`` is created but never used in the official forward (it is kept so
  official weights load and the parameter count matches; it receives no gradient).
* Reconstruction: ``tail`` (Upsampler conv + PixelShuffle, 3x3 conv) applied to ``reduce(body(x))``
  plus ``up`` (Upsampler, then a bias-free 3x3 conv + ReLU) applied to the head features.

The efficient multi-head attention (EMHA) lives in :mod:`srlab.layers.emha`.

Input range: the official test script feeds ``im / 255`` and the MeanShift lines are commented out,
so the network works on RGB in [0, 1] directly; no conversion is needed.

Deviations from the official code: none in the computation. The official ``ESRT.load_state_dict``
is a lenient by-name copy; srlab loads strictly. EMHA's token segments (N // 4 consecutive tokens of
the raster-scanned image) depend on the input size, so tiled inference is not identical to whole-
image inference (the official test also tiles, with ``forward_chop``). Inputs 1 pixel high or wide
(on which the official 2x average pool fails) are replicate-padded to 2 and the output cropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.attention import CALayer
from srlab.layers.emha import EMHA
from srlab.layers.upsamplers import ProgressiveUpsampler
from srlab.models.registry import ModelInfo, register_model


def _conv(in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class LearnableScale(nn.Module):
    """Multiply by one learnable scalar (official ``common.Scale``, parameter ``scale``)."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([value]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class ConvReLU(nn.Module):
    """Bias-free conv followed by ReLU (official ``BasicConv`` with its defaults)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = _conv(in_channels, out_channels, kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class ResidualUnit(nn.Module):
    """ARFB's residual unit (official ``one_conv``): w1 * x + w2 * conv1(prelu(conv(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = channels // 2
        self.conv = _conv(channels, hidden, 3)
        self.conv1 = _conv(hidden, channels, 3)
        self.relu = nn.PReLU(hidden)
        self.weight1 = LearnableScale()
        self.weight2 = LearnableScale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight1(x) + self.weight2(self.conv1(self.relu(self.conv(x))))


class ARFB(nn.Module):
    """Adaptive residual feature block (official ``one_module``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layer1 = ResidualUnit(channels)
        self.layer2 = ResidualUnit(channels)
        self.layer4 = ConvReLU(channels, channels, 3)
        self.alise = ConvReLU(2 * channels, channels, 1)
        self.atten = CALayer(channels)
        self.weight1 = LearnableScale()  # unused in the official forward
        self.weight2 = LearnableScale()
        self.weight3 = LearnableScale()
        self.weight4 = LearnableScale()
        self.weight5 = LearnableScale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        fused = self.alise(torch.cat((self.weight2(x2), self.weight3(x1)), dim=1))
        return self.weight4(x) + self.weight5(self.layer4(self.atten(fused)))


class HPB(nn.Module):
    """High-preserving block (official ``Updownblock``) with its high-frequency filtering module."""

    low_passes = 5  # the official forward applies the shared `decoder_low` five times

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encoder = ARFB(channels)
        self.decoder_low = ARFB(channels)
        self.decoder_high = ARFB(channels)
        self.alise = ARFB(channels)
        self.alise2 = ConvReLU(2 * channels, channels, 1)
        self.down = nn.AvgPool2d(kernel_size=2)
        self.att = CALayer(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x1 = self.encoder(x)
        low = self.down(x1)
        # HFM: the high frequencies are what the 2x average pool loses.
        high = x1 - F.interpolate(low, size=size, mode="bilinear", align_corners=True)
        for _ in range(self.low_passes):
            low = self.decoder_low(low)
        high = self.decoder_high(high)
        low = F.interpolate(low, size=size, mode="bilinear", align_corners=True)
        return self.alise(self.att(self.alise2(torch.cat((low, high), dim=1)))) + x


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EfficientTransformer(nn.Module):
    """ESRT's efficient transformer (official ``MLABlock``) on k x k unfolded patches.

    Takes (B, C, H, W) features, returns (B, H*W, C*k*k) tokens (pre-norm EMHA and MLP, residual).
    """

    def __init__(self, channels: int, *, kernel_size: int = 3, num_heads: int = 8) -> None:
        super().__init__()
        dim = channels * kernel_size * kernel_size
        self.kernel_size = kernel_size
        self.atten = EMHA(dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim // 4)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        tokens = F.unfold(x, k, padding=k // 2).transpose(1, 2)  # 'same' zero padding
        tokens = tokens + self.atten(self.norm1(tokens))
        return tokens + self.mlp(self.norm2(tokens))


class ESRTBody(nn.Module):
    """LCB (three HPBs) followed by the LTB (official ``Un``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encoder1 = HPB(channels)
        self.encoder2 = HPB(channels)
        self.encoder3 = HPB(channels)
        self.reduce = _conv(3 * channels, channels, 3)
        self.weight2 = LearnableScale()
        self.weight1 = LearnableScale()
        self.attention = EfficientTransformer(channels)
        self.alise = _conv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.encoder1(x)
        x2 = self.encoder2(x1)
        x3 = self.encoder3(x2)
        tokens = self.attention(self.reduce(torch.cat((x1, x2, x3), dim=1)))
        k = self.attention.kernel_size
        out = F.fold(tokens.transpose(1, 2), x.shape[-2:], k, padding=k // 2)  # overlaps are summed
        return self.weight1(x) + self.weight2(self.alise(out))


class ESRT(nn.Module):
    def __init__(self, *, scale: int, channels: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.up = nn.Sequential(ProgressiveUpsampler(channels, scale), ConvReLU(channels, 3, 3))
        self.head = nn.Sequential(_conv(3, channels, 3))
        self.body = nn.Sequential(ESRTBody(channels))
        self.tail = nn.Sequential(ProgressiveUpsampler(channels, scale), _conv(channels, 3, 3))
        self.reduce = _conv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < 2 or w < 2:  # the HPB's 2x average pool needs 2 pixels; replicate and crop back
            x = F.pad(x, (0, max(0, 2 - w), 0, max(0, 2 - h)), mode="replicate")
        shallow = self.head(x)
        deep = self.reduce(self.body(shallow))
        out = self.tail(deep) + self.up(shallow)
        return out[..., : h * self.scale, : w * self.scale]


@register_model(
    ModelInfo(
        paper="Lu et al., Transformer for Single Image Super-Resolution (ESRT), CVPRW 2022",
        origin="https://github.com/luissen/ESRT",
        licence="MIT",
        scales=(2, 3, 4),
        size_multiple=1,
        # Not a strict bound: EMHA attends within segments of H/4 full-width rows. The convolutional
        # part (5 passes of a 5-conv ARFB at half resolution, per HPB) reaches a few dozen pixels.
        receptive_radius=64,
        half_precision_safe=False,  # not verified
    )
)
def esrt(*, scale: int) -> ESRT:
    """The paper's model (32 features, one LCB+LTB body), as hard-coded in the official code."""
    return ESRT(scale=scale)
