"""SwinIR: residual groups of shifted-window transformer blocks (lightweight and classical SR).

Paper: Liang, Cao, Sun, Zhang, Van Gool, Timofte, "SwinIR: Image Restoration Using Swin Transformer",
ICCV Workshops 2021. Official code: JingyunLiang/SwinIR (``models/network_swinir.py``), Apache-2.0. This
implementation is written for srlab from the paper and the official structure; the window-attention
layers live in :mod:`srlab.layers.swin`. Module and tensor names equal the official ones, so the released
``{'params': ...}`` checkpoints load strictly.

Structure: conv_first (3x3, 3 -> C); tokens (``patch_embed``: LayerNorm); ``layers``: G residual Swin
transformer blocks (RSTB: D Swin blocks, windows 8x8 alternately shifted by 4, then a 3x3 conv, plus the
group input); ``norm``; conv_after_body (3x3) + the shallow features; reconstruction:
- ``pixelshuffledirect`` (SwinIR-light): one 3x3 conv to 3 s^2 channels + PixelShuffle(s);
- ``pixelshuffle`` (classical): conv_before_upsample (3x3 -> 64, LeakyReLU 0.01), ``Upsample`` (per factor
  2: conv 64 -> 256 + PixelShuffle(2); x3: conv 64 -> 576 + PixelShuffle(3)), conv_last (3x3 -> 3).

Input and output are RGB in [0, 1]. Like the official model, forward subtracts the DIV2K mean
(0.4488, 0.4371, 0.4040) (``img_range`` 1) and adds it back; the mean is a non-persistent buffer (the
official one is a plain attribute, not in its state dict). The input is reflect-padded to a multiple of
the window size (as ``check_image_size``) and the output cropped back.

Deviations from the official code:
- The shifted-window attention masks depend on the input size and are computed at forward time (cached
  per size), never stored: the official checkpoints' ``*.attn_mask`` tensors (for its ``img_size`` 64)
  are dropped when loading (``derived_checkpoint_keys``); :meth:`SwinIR.derived_checkpoint_tensors`
  computes them again for ``srlab export-weights`` (:func:`srlab.export.official_state.official_state_dict`),
  whose files the official code loads strictly. ``relative_position_index`` stays a persistent buffer as
  in the official state dict (a small configuration constant).
- No ``img_size`` argument (only that mask and the flops() estimate used it); no stochastic depth
  (drop_path only acts in training); only the '1conv' residual connection of these variants.
- An input smaller than the padding it needs falls back to replicate padding (the official reflect pad
  raises there).
- Parameter counting: the SwinIR-light table (878K / 886K / 897K) leaves out the relative position bias
  tables (24 x 225 x 6 = 32,400 entries), the classical table (11.75M / 11.94M / 11.90M) counts all
  parameters; each variant declares its convention (``ModelInfo.uncounted_parameters``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from srlab.layers.mean_shift import DIV2K_RGB_MEAN
from srlab.layers.padding import pad_to_multiple, round_up
from srlab.errors import SrlabError
from srlab.layers.swin import (
    RSTB, PatchEmbed, SwinTransformerBlock, init_swin_weights, shifted_window_mask, tokens_to_map,
)
from srlab.layers.upsamplers import ProgressiveUpsampler, SubPixelHead
from srlab.models.registry import Derived, ModelInfo, register_model

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect")


class SwinIR(nn.Module):
    # The official checkpoints store the shifted-window masks for their training size: srlab rebuilds them.
    derived_checkpoint_keys = ("*.attn_mask",)
    # 1: Swin v1 blocks (SwinIR); Swin2SR overrides with 2 (SwinV2 blocks and 1x1 patch projections).
    block_version = 1

    def __init__(
        self,
        *,
        scale: int,
        embed_dim: int,
        num_groups: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        upsampler: str,
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        if upsampler not in self.upsamplers():
            raise ValueError(f"upsampler must be one of {', '.join(self.upsamplers())}, got {upsampler!r}")
        self.scale = scale
        self.window_size = window_size
        self.upsampler = upsampler
        self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        v2 = self.block_version == 2
        self.conv_first = nn.Conv2d(3, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbed(embed_dim, proj=v2, norm=True)
        self.layers = nn.ModuleList(
            RSTB(
                embed_dim, depth, num_heads, window_size=window_size, mlp_ratio=mlp_ratio,
                version=self.block_version,
            )
            for _ in range(num_groups)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self._build_reconstruction(scale, embed_dim, num_feat)
        init_swin_weights(self)

    @staticmethod
    def upsamplers() -> tuple[str, ...]:
        return UPSAMPLERS

    def derived_checkpoint_tensors(self, *, img_size: int) -> dict[str, torch.Tensor]:
        """The ``*.attn_mask`` buffers the official model holds when built with ``img_size`` (its training
        patch size: the mask of each shifted block for an img_size x img_size feature map)."""
        ws = self.window_size
        if img_size <= ws or img_size % ws:
            # The official blocks drop the shift (and shrink the window) at img_size <= ws, and cannot
            # partition a size that is not a multiple of the window.
            raise SrlabError(f"--img_size must be a multiple of the window size {ws} above it, not {img_size}")
        return {
            f"{name}.attn_mask": shifted_window_mask(img_size, img_size, ws, block.shift_size).clone()
            for name, block in self.named_modules()
            if isinstance(block, SwinTransformerBlock) and block.shift_size
        }

    def _build_reconstruction(self, scale: int, embed_dim: int, num_feat: int) -> None:
        if self.upsampler == "pixelshuffledirect":
            self.upsample = SubPixelHead(embed_dim, 3, scale)  # official UpsampleOneStep
        else:
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, padding=1), nn.LeakyReLU(inplace=True)
            )
            self.upsample = ProgressiveUpsampler(num_feat, scale)  # official Upsample
            self.conv_last = nn.Conv2d(num_feat, 3, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, x_size)
        return tokens_to_map(self.norm(tokens), x_size)

    def reconstruct(self, features: torch.Tensor, lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Deep + shallow features (B, C, H, W) -> mean-free output at scale (``lr``: the padded,
        mean-free input; ``size``: the unpadded LR size)."""
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(features)
        return self.conv_last(self.upsample(self.conv_before_upsample(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        mean = self.mean.to(x.dtype)
        lr = pad_to_multiple(x, self.window_size, "reflect") - mean  # as check_image_size; img_range 1
        shallow = self.conv_first(lr)
        features = self.conv_after_body(self.forward_features(shallow)) + shallow
        out = self.reconstruct(features, lr, (h, w)) + mean
        return out[..., : h * self.scale, : w * self.scale]


def _radius(other_convs: int) -> Derived:
    """A window block moves information at most ws - 1 tokens, a 3x3 conv 1 (one per group and
    ``other_convs`` more); rounded up to the window."""

    def radius(a: Mapping[str, Any]) -> int:
        reach = a["num_groups"] * (a["depth"] * (a["window_size"] - 1) + 1) + other_convs
        return round_up(reach, a["window_size"])

    return radius


_PAPER = "Liang et al., SwinIR: Image Restoration Using Swin Transformer (ICCVW 2021)"


@register_model(
    ModelInfo(
        paper=_PAPER,
        scales=(2, 3, 4),
        origin="https://github.com/JingyunLiang/SwinIR",
        licence="Apache-2.0",
        size_multiple=lambda a: a["window_size"],
        pad_mode="inside",
        # 24 window blocks x 7 + conv_first, 4 group convs, conv_after_body, upsampler conv = 175 -> 176.
        receptive_radius=_radius(3),
        # The SwinIR-light table (878K/886K/897K) leaves out the relative position bias tables.
        uncounted_parameters=("relative_position_bias_table",),
    )
)
def swinir_light(
    *,
    scale: int,
    embed_dim: int = 60,
    num_groups: int = 4,
    depth: int = 6,
    num_heads: int = 6,
    window_size: int = 8,
    mlp_ratio: float = 2.0,
) -> SwinIR:
    """SwinIR for lightweight SR: 4 groups of 6 blocks, 60 channels, one-step pixel-shuffle."""
    return SwinIR(
        scale=scale, embed_dim=embed_dim, num_groups=num_groups, depth=depth, num_heads=num_heads,
        window_size=window_size, mlp_ratio=mlp_ratio, upsampler="pixelshuffledirect",
    )


@register_model(
    ModelInfo(
        paper=_PAPER,
        scales=(2, 3, 4),
        origin="https://github.com/JingyunLiang/SwinIR",
        licence="Apache-2.0",
        size_multiple=lambda a: a["window_size"],
        pad_mode="inside",
        # 36 window blocks x 7 + conv_first, 6 group convs, conv_after_body, conv_before_upsample and
        # the upsampler / last convs (<= 3 LR pixels) = 264.
        receptive_radius=_radius(6),
    )
)
def swinir(
    *,
    scale: int,
    embed_dim: int = 180,
    num_groups: int = 6,
    depth: int = 6,
    num_heads: int = 6,
    window_size: int = 8,
    mlp_ratio: float = 2.0,
) -> SwinIR:
    """SwinIR for classical SR: 6 groups of 6 blocks, 180 channels, conv + pixel-shuffle upsampler."""
    return SwinIR(
        scale=scale, embed_dim=embed_dim, num_groups=num_groups, depth=depth, num_heads=num_heads,
        window_size=window_size, mlp_ratio=mlp_ratio, upsampler="pixelshuffle",
    )
