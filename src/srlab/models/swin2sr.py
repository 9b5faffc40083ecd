"""Swin2SR: SwinIR with SwinV2 blocks (lightweight, classical and compressed-input SR).

Paper: Conde, Choi, Burchi, Timofte, "Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution
and Restoration", ECCV Workshops (AIM) 2022. Official code: mv-lab/swin2sr (``models/network_swin2sr.py``,
``main_test_swin2sr.py``), Apache-2.0. Written for srlab from the paper and the official structure, on
the SwinIR body of :mod:`srlab.models.swinir` and the layers of :mod:`srlab.layers.swin`; tensor names equal
the official ones, so its ``{'params': ...}`` releases load strictly.

Differences from SwinIR, as in the official code: SwinV2 blocks (scaled cosine attention with a learned,
clamped logit scale; continuous relative position bias from a 2-512-heads MLP over log-spaced coordinates;
separate q / v biases; residual post-norm) and a 1x1 conv (``patch_embed.proj``) where SwinIR only
flattens feature maps into tokens, at the body input and at the end of every residual group.

Variants (hyper-parameters of ``main_test_swin2sr.py``):
- ``swin2sr_light``: SwinIR-light's (60 channels, 4 x 6 blocks, 6 heads, window 8, mlp 2,
  'pixelshuffledirect'); released: ``Swin2SR_Lightweight_X2_64.pth``.
- ``swin2sr``: classical (180 channels, 6 x 6 blocks, 'pixelshuffle'); released ``Swin2SR_ClassicalSR_X{2,4}_64``.
- ``swin2sr_compressed``: the compressed-input x4 model (``--task compressed_sr``, ``Swin2SR_CompressedSR_X4_48``):
  the classical body with the 'pixelshuffle_aux' reconstruction. It also predicts an auxiliary LR image
  ``aux`` = conv_aux(features) that the official forward returns as a second output (used by its training
  loss); here forward returns only the SR image and ``forward_with_aux`` returns both.
  'pixelshuffle_aux': out = conv_last(Upsample(conv_after_aux(aux)) + conv_bicubic(bicubic(x))), the
  bicubic upsampling of the padded, mean-free input resized to the *unpadded* size times the scale, as the
  official code does (identical to a plain bicubic upsampling when no padding was needed).

Input and output RGB in [0, 1], mean shift and window padding inside forward, as for SwinIR. The same
deviations as SwinIR apply (masks rebuilt per size, ``*.attn_mask`` dropped on loading;
``relative_position_index`` and ``relative_coords_table`` kept as the persistent buffers the official
checkpoints hold; no drop-path). No paper parameter figures were read: the counts tested are those of the
official architecture (all parameters, buffers excluded, as paper-results.md §2 lists them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.padding import pad_to_multiple
from srlab.layers.upsamplers import ProgressiveUpsampler
from srlab.models.registry import ModelInfo, register_model
from srlab.models.swinir import SwinIR, _radius


class Swin2SR(SwinIR):
    block_version = 2

    @staticmethod
    def upsamplers() -> tuple[str, ...]:
        return ("pixelshuffle", "pixelshuffledirect", "pixelshuffle_aux")

    def _build_reconstruction(self, scale: int, embed_dim: int, num_feat: int) -> None:
        if self.upsampler != "pixelshuffle_aux":
            super()._build_reconstruction(scale, embed_dim, num_feat)
            return
        # Registration order as in the official module (state-dict order).
        self.conv_bicubic = nn.Conv2d(3, num_feat, 3, padding=1)
        self.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, num_feat, 3, padding=1), nn.LeakyReLU(inplace=True)
        )
        self.conv_aux = nn.Conv2d(num_feat, 3, 3, padding=1)
        self.conv_after_aux = nn.Sequential(nn.Conv2d(3, num_feat, 3, padding=1), nn.LeakyReLU(inplace=True))
        self.upsample = ProgressiveUpsampler(num_feat, scale)  # official Upsample
        self.conv_last = nn.Conv2d(num_feat, 3, 3, padding=1)

    def _aux_reconstruct(
        self, features: torch.Tensor, lr: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        oh, ow = size[0] * self.scale, size[1] * self.scale
        bicubic = self.conv_bicubic(F.interpolate(lr, size=(oh, ow), mode="bicubic", align_corners=False))
        aux = self.conv_aux(self.conv_before_upsample(features))
        up = self.upsample(self.conv_after_aux(aux))[..., :oh, :ow]
        return self.conv_last(up + bicubic[..., :oh, :ow]), aux

    def reconstruct(self, features: torch.Tensor, lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.upsampler == "pixelshuffle_aux":
            return self._aux_reconstruct(features, lr, size)[0]
        return super().reconstruct(features, lr, size)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """('pixelshuffle_aux' only) the SR image and the auxiliary LR prediction (on the padded grid),
        both RGB in [0, 1], as the official forward returns them."""
        if self.upsampler != "pixelshuffle_aux":
            raise ValueError("forward_with_aux needs the 'pixelshuffle_aux' upsampler (swin2sr_compressed)")
        h, w = x.shape[-2:]
        mean = self.mean.to(x.dtype)
        lr = pad_to_multiple(x, self.window_size, "reflect") - mean
        shallow = self.conv_first(lr)
        features = self.conv_after_body(self.forward_features(shallow)) + shallow
        out, aux = self._aux_reconstruct(features, lr, (h, w))
        return (out + mean)[..., : h * self.scale, : w * self.scale], aux + mean


_PAPER = "Conde et al., Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution and Restoration (ECCVW 2022)"


def _info(scales: tuple[int, ...], *, other_convs: int) -> ModelInfo:
    """Swin2SR pads to the window inside forward as SwinIR; ``other_convs``: the 3x3 convs outside the
    residual groups (see swinir._radius)."""
    return ModelInfo(
        paper=_PAPER,
        origin="https://github.com/mv-lab/swin2sr",
        licence="Apache-2.0",
        scales=scales,
        size_multiple=lambda a: a["window_size"],
        pad_mode="inside",
        receptive_radius=_radius(other_convs),
    )


@register_model(_info((2, 3, 4), other_convs=3))
def swin2sr_light(
    *,
    scale: int,
    embed_dim: int = 60,
    num_groups: int = 4,
    depth: int = 6,
    num_heads: int = 6,
    window_size: int = 8,
    mlp_ratio: float = 2.0,
) -> Swin2SR:
    """Swin2SR for lightweight SR (SwinIR-light's hyper-parameters, SwinV2 blocks); only x2 is released."""
    return Swin2SR(
        scale=scale, embed_dim=embed_dim, num_groups=num_groups, depth=depth, num_heads=num_heads,
        window_size=window_size, mlp_ratio=mlp_ratio, upsampler="pixelshuffledirect",
    )


@register_model(_info((2, 3, 4), other_convs=6))
def swin2sr(
    *,
    scale: int,
    embed_dim: int = 180,
    num_groups: int = 6,
    depth: int = 6,
    num_heads: int = 6,
    window_size: int = 8,
    mlp_ratio: float = 2.0,
) -> Swin2SR:
    """Swin2SR for classical SR (SwinIR classical's hyper-parameters); x2 and x4 are released."""
    return Swin2SR(
        scale=scale, embed_dim=embed_dim, num_groups=num_groups, depth=depth, num_heads=num_heads,
        window_size=window_size, mlp_ratio=mlp_ratio, upsampler="pixelshuffle",
    )


@register_model(_info((4,), other_convs=14))
def swin2sr_compressed(
    *,
    scale: int,
    embed_dim: int = 180,
    num_groups: int = 6,
    depth: int = 6,
    num_heads: int = 6,
    window_size: int = 8,
    mlp_ratio: float = 2.0,
) -> Swin2SR:
    """Swin2SR for compressed-input (JPEG) x4 SR, the AIM 2022 model (``Swin2SR_CompressedSR_X4_48``)."""
    return Swin2SR(
        scale=scale, embed_dim=embed_dim, num_groups=num_groups, depth=depth, num_heads=num_heads,
        window_size=window_size, mlp_ratio=mlp_ratio, upsampler="pixelshuffle_aux",
    )
