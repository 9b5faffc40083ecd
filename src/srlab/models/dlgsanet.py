"""DLGSANet: dynamic local and sparse global self-attention.

Paper: Li et al., "DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for Image
Super-Resolution", ICCV 2023. Official code: NeonLeexiang/DLGSANet (Apache-2.0),
``basicsr/archs/dlgsanet_arch.py`` (class ``DLGSANet``, ``buildblock_type='sparseedge'``).

Structure (``upsampler='pixelshuffledirect'``): a bias-free 3x3 conv embeds the image; ``groups``
BuildBlocks follow, each ``blocks`` pairs of
- an IDynamic layer: LayerNorm, 1x1, a dynamic 7x7 depth-wise convolution whose per-pixel kernels (one
  per group of 6 channels) a small hyper-network predicts from the features, 1x1; then LayerNorm and a
  gated depth-wise FFN (Restormer's GDFN);
- a sparse global self-attention layer: LayerNorm, Restormer's transposed (channel-by-channel)
  attention over the whole image with L2-normalised queries and keys, a learnt temperature per head and
  ReLU instead of softmax (the "sparse" part); then LayerNorm and a GDFN;
then a 3x3 conv and the block's skip. A 3x3 conv, the long skip and conv + PixelShuffle finish. The
image is shifted by the DIV2K mean (0.4488, 0.4371, 0.4040) on the way in and back on the way out
(``img_range=1``); the official mean is a plain attribute, so it is not in the state dict (here a
non-persistent buffer).

Deviations from the official code:
- the dynamic depth-wise convolution is plain PyTorch (:mod:`srlab.layers.dynamic_conv`) instead of
  the official cupy CUDA kernel; same values, any device;
- no TLC: in eval mode the official attention runs on overlapping 48x48 crops of q/k/v (the
  "test-time local converter", ``tlc_kernel=48``) and averages the overlaps; srlab always runs the
  global attention (the official training-mode path) and relies on its generic tiling for large
  images, so eval-mode outputs differ from the official TLC test outputs (equal on inputs of at most
  48x48, where TLC takes a single crop);
- the official ``flops()`` helpers and the unused BaseFFN / plain-Restormer / ``body_norm`` options are
  left out.
Official weights of the lightweight models are lost (official README); none are in srlab's store.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.dynamic_conv import IDynamicDWConv
from srlab.layers.ffn import GatedFeedForward
from srlab.layers.mean_shift import DIV2K_RGB_MEAN
from srlab.layers.norm import LayerNorm2d
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model

def channel_layer_norm(dim: int) -> nn.Sequential:
    """Channel LayerNorm (eps 1e-5, with bias) under the official nesting ``norm.body.weight``."""
    return nn.Sequential(OrderedDict(body=LayerNorm2d(dim, eps=1e-5)))


class IDynamicDWConvBlock(nn.Module):
    """1x1, dynamic k x k depth-wise convolution, 1x1 (the official names conv0 / conv / conv1)."""

    def __init__(self, dim: int, window_size: int, heads: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv = IDynamicDWConv(dim, kernel_size=window_size, group_channels=heads, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv(self.conv0(x)))


class SparseAttention(nn.Module):
    """Restormer's multi-Dconv transposed attention with ReLU in place of softmax, over the whole image.

    q, k, v come from a 1x1 and a 3x3 depth-wise conv; per head, the (C/h x C/h) attention map is the
    ReLU of the temperature-scaled cosine similarities of q's and k's channels across all pixels.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a multiple of num_heads ({num_heads})")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.unbind(dim=1)  # (b, heads, c/heads, hw)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = self.act(q @ k.transpose(-2, -1) * self.temperature)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class IDynamicLayerBlock(nn.Module):
    def __init__(self, dim: int, window_size: int, heads: int, expansion: float) -> None:
        super().__init__()
        self.norm1 = channel_layer_norm(dim)
        self.IDynamicDWConv = IDynamicDWConvBlock(dim, window_size, heads)
        self.norm2 = channel_layer_norm(dim)
        self.IDynamic_ffn = GatedFeedForward(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.IDynamicDWConv(self.norm1(x))
        return x + self.IDynamic_ffn(self.norm2(x))


class SparseAttentionLayerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float) -> None:
        super().__init__()
        self.norm3 = channel_layer_norm(dim)
        self.restormer_attn = SparseAttention(dim, heads)
        self.norm4 = channel_layer_norm(dim)
        self.restormer_ffn = GatedFeedForward(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.restormer_attn(self.norm3(x))
        return x + self.restormer_ffn(self.norm4(x))


class BuildBlock(nn.Module):
    """``blocks`` (IDynamic layer, sparse attention layer) pairs, a 3x3 conv, and the block's skip."""

    def __init__(
        self, dim: int, *, blocks: int, window_size: int, idynamic_heads: int, attention_heads: int, expansion: float
    ) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for _ in range(blocks):
            body.append(IDynamicLayerBlock(dim, window_size, idynamic_heads, expansion))
            body.append(SparseAttentionLayerBlock(dim, attention_heads, expansion))
        body.append(nn.Conv2d(dim, dim, 3, padding=1))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class OverlapPatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class DLGSANet(nn.Module):
    """DLGSANet with the pixelshuffledirect reconstruction; input and output RGB in [0, 1]."""

    def __init__(
        self,
        *,
        scale: int,
        dim: int,
        groups: int,
        blocks: int,
        window_size: int,
        idynamic_heads: int,
        attention_heads: int,
        ffn_expansion_factor: float,
        upsampler: str = "subpixel",
    ) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.overlap_embed = nn.Sequential(OverlapPatchEmbed(dim))
        self.deep_feature_extraction = nn.Sequential(
            *(
                BuildBlock(
                    dim,
                    blocks=blocks,
                    window_size=window_size,
                    idynamic_heads=idynamic_heads,
                    attention_heads=attention_heads,
                    expansion=ffn_expansion_factor,
                )
                for _ in range(groups)
            ),
            nn.Conv2d(dim, dim, 3, padding=1),
        )
        self.upsample = image_head(upsampler, in_channels=dim, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x.dtype)
        features = self.overlap_embed(x - mean)  # img_range = 1
        features = self.deep_feature_extraction(features) + features
        return self.upsample(features) + mean


def _info() -> ModelInfo:
    # The sparse attention is global (every output pixel depends on the whole image), so no finite
    # radius bounds it; the overlap covers the convolutional reach: per layer pair 3 (hyper-network
    # 7x7) + 3 (dynamic 7x7) + 1 + 1 (FFN 3x3s) + 1 (qkv 3x3), per BuildBlock a 3x3 more, plus embed,
    # final 3x3 and upsampling conv (7x7: the window size).
    return ModelInfo(
        paper=(
            "Li et al., DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for Image "
            "Super-Resolution, ICCV 2023"
        ),
        origin="https://github.com/NeonLeexiang/DLGSANet",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        size_multiple=1,
        receptive_radius=lambda a: a["groups"] * ((2 * (a["window_size"] // 2) + 3) * a["blocks"] + 1) + 3,
        reparameterizable=False,
        half_precision_safe=True,
    )


@register_model(_info())
def dlgsanet_tiny(
    *,
    scale: int,
    dim: int = 48,
    groups: int = 3,
    blocks: int = 3,
    window_size: int = 7,
    idynamic_heads: int = 6,
    attention_heads: int = 6,
    ffn_expansion_factor: float = 2.0,
    upsampler: str = "subpixel",
) -> DLGSANet:
    """DLGSANet-Tiny (566K / 572K / 581K parameters at x2 / x3 / x4)."""
    return DLGSANet(
        scale=scale,
        dim=dim,
        groups=groups,
        blocks=blocks,
        window_size=window_size,
        idynamic_heads=idynamic_heads,
        attention_heads=attention_heads,
        ffn_expansion_factor=ffn_expansion_factor,
        upsampler=upsampler,
    )


@register_model(_info())
def dlgsanet_light(
    *,
    scale: int,
    dim: int = 48,
    groups: int = 4,
    blocks: int = 3,
    window_size: int = 7,
    idynamic_heads: int = 6,
    attention_heads: int = 6,
    ffn_expansion_factor: float = 2.0,
    upsampler: str = "subpixel",
) -> DLGSANet:
    """DLGSANet-Light (745K / 752K / 761K parameters at x2 / x3 / x4)."""
    return DLGSANet(
        scale=scale,
        dim=dim,
        groups=groups,
        blocks=blocks,
        window_size=window_size,
        idynamic_heads=idynamic_heads,
        attention_heads=attention_heads,
        ffn_expansion_factor=ffn_expansion_factor,
        upsampler=upsampler,
    )
