"""DITN: Deployment-friendly Inner-patch Transformer Network.

Paper: Liu et al., "Unfolding Once is Enough: A Deployment-Friendly Transformer Unit for
Super-Resolution", ACM MM 2023. Official code: yongliuy/DITN (Apache-2.0), ``models/DITN_Real.py``.

Structure: a 3x3 conv gives the shallow features; one UFONE unit follows. UFONE unfolds the features
once into non-overlapping 8x8 patches, runs the Inner-patch Transformer Layers (ITL: channel-wise
"transposed" self-attention over the 64 pixels of a patch, with L2-normalised queries and keys and a
learnt temperature, then a gated depth-wise FFN) on every patch, folds them back and runs the
Spatial-Aware Layers (SAL: a large-kernel gate made of a 5x5 depth-wise, a 7x7 depth-wise with dilation
3 and a 1x1 conv, then the same FFN). Each layer's branches see ``conv1x1(tanh(x))`` (the paper's
LayerNorm substitute for deployment). A 3x3 conv, the long skip and a conv + PixelShuffle finish.

What is registered: only the real-world model's architecture ``DITN_Real`` is released as code
(defaults ``dim=60, ITL_blocks=4, SAL_blocks=4, UFONE_blocks=1, ffn_expansion_factor=2, bias=False,
patch_size=8``); the bicubic DITN / DITN-Tiny models of the paper's tables were not released as code
and their hyper-parameters could not be confirmed from readable sources, so ``ditn`` builds the
released architecture. Its hyper-parameters (``dim``, ``itl_blocks``, ``sal_blocks``, ``ufone_blocks``,
``ffn_expansion_factor``) are keyword options, defaulting to the released configuration.

Deviations from the official code (none change the state dict or the output):
- the official ``LayerNorm`` classes are defined but never instantiated; they are left out;
- the official padding uses a hard-coded multiple of 8 while the unfolding uses ``patch_size``; here
  both use the patch size (8, so identical);
- the official ``LayerNorm_type`` / ``bias`` arguments of ITL/SAL are unused apart from the FFN and
  attention-output convs having no bias (kept).
The official model takes RGB in [0, 1] (test.py divides by 255) and reflect-pads to a multiple of 8,
then crops: so does this one (``size_multiple=8``, ``pad_mode='inside'``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.padding import pad_to_multiple, round_up
from srlab.layers.ffn import GatedFeedForward
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model


class ISA(nn.Module):
    """Inner-patch self-attention: one head of channel-by-channel attention over the patch's pixels."""

    def __init__(self, dim: int, *, bias: bool) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1, 1, 1))
        self.qkv = nn.Linear(dim, 3 * dim)  # the official layer always has a bias
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x.flatten(2).transpose(1, 2)).transpose(1, 2)  # (b, 3c, hw)
        q, k, v = qkv.chunk(3, dim=1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)  # (b, c, c)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class SDA(nn.Module):
    """SAL's spatial gate: half the channels pass a 5x5 + dilated 7x7 depth-wise stack and gate the rest."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.DConvs = nn.Sequential(
            nn.Conv2d(dim, dim, 5, padding=2, groups=dim),
            nn.Conv2d(dim, dim, 7, padding=9, dilation=3, groups=dim),
            nn.Conv2d(dim, dim, 1),
        )
        self.proj_first = nn.Sequential(nn.Conv2d(dim, 2 * dim, 1))
        self.proj_last = nn.Sequential(nn.Conv2d(dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.proj_first(x).chunk(2, dim=1)
        return self.proj_last(value * self.DConvs(gate)) * self.scale


class ITL(nn.Module):
    """Inner-patch transformer layer (runs on one 8x8 patch per batch entry)."""

    def __init__(self, dim: int, expansion: float, *, bias: bool) -> None:
        super().__init__()
        self.attn = ISA(dim, bias=bias)
        self.act = nn.Tanh()
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.ffn = GatedFeedForward(dim, expansion, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.conv1(self.act(x)))
        return x + self.ffn(self.conv2(self.act(x)))


class SAL(nn.Module):
    """Spatial-aware layer (runs on the folded feature map)."""

    def __init__(self, dim: int, expansion: float, *, bias: bool) -> None:
        super().__init__()
        self.SDA = SDA(dim)
        self.ffn = GatedFeedForward(dim, expansion, bias=bias)
        self.act = nn.Tanh()
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.SDA(self.conv1(self.act(x)))
        return x + self.ffn(self.conv2(self.act(x)))


class UFONE(nn.Module):
    """Unfold once into patches, run the ITLs on every patch, fold back, run the SALs."""

    def __init__(
        self, dim: int, expansion: float, *, bias: bool, itl_blocks: int, sal_blocks: int, patch_size: int
    ) -> None:
        super().__init__()
        self.ITLs = nn.Sequential(*(ITL(dim, expansion, bias=bias) for _ in range(itl_blocks)))
        self.SALs = nn.Sequential(*(SAL(dim, expansion, bias=bias) for _ in range(sal_blocks)))
        self.patch_size = patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch_size
        patches = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, p, p)
        patches = self.ITLs(patches)
        x = patches.view(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
        return self.SALs(x)


class DITN(nn.Module):
    """The released DITN_Real architecture; input and output RGB in [0, 1]."""

    def __init__(
        self,
        *,
        scale: int,
        dim: int = 60,
        itl_blocks: int = 4,
        sal_blocks: int = 4,
        ufone_blocks: int = 1,
        ffn_expansion_factor: float = 2.0,
        bias: bool = False,
        patch_size: int = 8,
        upsampler: str = "subpixel",
    ) -> None:
        super().__init__()
        self.scale = scale
        self.patch_size = patch_size
        self.sft = nn.Conv2d(3, dim, 3, padding=1)
        unit = dict(bias=bias, itl_blocks=itl_blocks, sal_blocks=sal_blocks, patch_size=patch_size)
        self.UFONE = nn.Sequential(*(UFONE(dim, ffn_expansion_factor, **unit) for _ in range(ufone_blocks)))
        self.conv_after_body = nn.Conv2d(dim, dim, 3, padding=1)
        # official UpsampleOneStep (keys "upsample.0.*") by default
        self.upsample = image_head(upsampler, in_channels=dim, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        shallow = self.sft(pad_to_multiple(x, self.patch_size, "reflect"))
        deep = self.conv_after_body(self.UFONE(shallow))
        out = self.upsample(deep + shallow)
        return out[..., : height * self.scale, : width * self.scale]


# Receptive radius in LR pixels: sft 3x3 (1) + per UFONE an ITL patch (7, patches are aligned to the
# 8-pixel grid that tiles start on) and per SAL 5x5 (2) + dilated 7x7 (9) + FFN 3x3 (1) + the two 3x3
# convs after the body (2); 1 + 7 + 4 * 12 + 2 = 58 by default, rounded up to the 8-pixel grid.
@register_model(
    ModelInfo(
        paper=(
            "Liu et al., Unfolding Once is Enough: A Deployment-Friendly Transformer Unit for "
            "Super-Resolution, ACM MM 2023 (released DITN_Real architecture)"
        ),
        origin="https://github.com/yongliuy/DITN",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        size_multiple=8,  # the unfolding's patch size (fixed)
        pad_mode="inside",
        receptive_radius=lambda a: round_up(1 + a["ufone_blocks"] * (7 + 12 * a["sal_blocks"]) + 2, 8),
        reparameterizable=False,
        half_precision_safe=True,
    )
)
def ditn(
    *,
    scale: int,
    dim: int = 60,
    itl_blocks: int = 4,
    sal_blocks: int = 4,
    ufone_blocks: int = 1,
    ffn_expansion_factor: float = 2.0,
    upsampler: str = "subpixel",
) -> DITN:
    """DITN as released (``DITN_Real`` defaults); the paper's bicubic DITN/DITN-Tiny were not released as code."""
    return DITN(
        scale=scale,
        dim=dim,
        itl_blocks=itl_blocks,
        sal_blocks=sal_blocks,
        ufone_blocks=ufone_blocks,
        ffn_expansion_factor=ffn_expansion_factor,
        upsampler=upsampler,
    )
