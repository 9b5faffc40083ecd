"""Attention-based upsampling: a strided transposed convolution whose fixed kernel is replaced by local
scaled dot-product attention computed at the output resolution.

Paper: Kundu, Mostafa, Sridhar and Sundaresan, "Attention-based Image Upsampling" (arXiv 2012.09904,
2020): local self-attention in the manner of Ramachandran et al. ("Stand-Alone Self-Attention in Vision
Models", NeurIPS 2019), in which the 1x1 projections that make queries, keys and values are replaced by
upsampling projections, so that the attention runs on the upsampled grid. No official code is known;
srlab's own choices, each open in the paper's description, are:

- The projections are stride-s transposed convolutions with an s x s kernel: one learned 1x1 projection
  per sub-pixel phase, computed as a single 1x1 conv to ``(2 d + C_out) s^2`` channels and PixelShuffle(s).
  Queries and keys have ``d = key_channels`` channels, values ``C_out``: the attention-weighted sum of
  the values is the output, as the transposed convolution's kernel-weighted sum is.
- Each output pixel attends to the ``window x window`` output pixels around it (its own included);
  positions outside the image are masked out of the softmax rather than zero-padded.
- Position: a learned relative embedding r (one ``d``-vector per window offset, zero at start) added to
  the keys, as Ramachandran et al. do: the logit is ``q . (k + r) / sqrt(d / heads)``.
- ``heads`` split queries, keys and values into groups with their own attention (1 by default: with
  three output channels there is little to split).

MACs (``count_macs``, per LR input H x W, scale s, window w): the projection
``H W * C_in * (2 d + C_out) s^2``, then per output pixel ``w^2 d`` for q . k, ``w^2 d`` for q . r and
``w^2 C_out`` for the weighted sum: ``s^2 H W * w^2 (2 d + C_out)``. The softmax is not counted. (q . k and
the weighted sum are computed element-wise for speed and declared to the counter: ``declared_macs``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.upsamplers.base import register_upsampler


class AttentionUpsampler(nn.Module):
    """Keys ``project.weight``, ``project.bias`` (the upsampling projections) and ``position``."""

    def __init__(
        self, in_channels: int, out_channels: int, scale: int, *, key_channels: int, window: int, heads: int
    ) -> None:
        super().__init__()
        if window % 2 == 0:
            raise ValueError(f"the attention window must be odd, got {window}")
        if key_channels % heads or out_channels % heads:
            raise ValueError(
                f"heads ({heads}) must divide key_channels ({key_channels}) and out_channels ({out_channels})"
            )
        self.scale, self.window, self.heads = scale, window, heads
        self.key_channels, self.out_channels = key_channels, out_channels
        self.project = nn.Conv2d(in_channels, (2 * key_channels + out_channels) * scale * scale, 1)
        self.shuffle = nn.PixelShuffle(scale)
        self.position = nn.Parameter(torch.zeros(heads, key_channels // heads, window * window))

    def _neighbours(self, x: torch.Tensor) -> torch.Tensor:
        """(N, heads, C / heads, window^2, H W): each pixel's window x window neighbourhood (zeros outside)."""
        n, c, h, w = x.shape
        patches = F.unfold(x, self.window, padding=self.window // 2)
        return patches.view(n, self.heads, c // self.heads, self.window * self.window, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, heads = self.key_channels, self.heads
        q, k, v = self.shuffle(self.project(x)).split((d, d, self.out_channels), dim=1)
        n, _, h, w = q.shape
        q = q.reshape(n, heads, d // heads, h * w)
        # q . k and the weighted sum are written element-wise (declared_macs counts them): several times
        # faster on a CPU than einsum's batches of 1 x d by d x window^2 matrix products. q . r is one
        # real matrix product.
        content = (q.unsqueeze(3) * self._neighbours(k)).sum(dim=2)
        logits = (content + torch.einsum("nhcp,hck->nhkp", q, self.position)) * (d // heads) ** -0.5
        inside = F.unfold(x.new_ones(1, 1, h, w), self.window, padding=self.window // 2) > 0
        attention = logits.masked_fill(~inside.view(1, 1, -1, h * w), float("-inf")).softmax(dim=2)
        out = (attention.unsqueeze(2) * self._neighbours(v)).sum(dim=3)
        return out.reshape(n, self.out_channels, h, w)

    def declared_macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """q . k and the weighted sum of the values at every output pixel (the projection and q . r run
        as a convolution and a matrix product, which are counted where they run)."""
        pixels = out.shape[0] * out.shape[-2] * out.shape[-1]
        return pixels * self.window**2 * (self.key_channels + self.out_channels)


# A window of w output pixels at s >= 2 spans (w // 2) / 2 LR pixels each way, rounded up.
@register_upsampler("attention", reach=lambda options: (options["window"] // 2 + 1) // 2)
def attention_upsampler(
    *, in_channels: int, out_channels: int, scale: int, key_channels: int = 16, window: int = 5, heads: int = 1
) -> nn.Module:
    """Kundu et al.'s attention-based upsampling (:class:`AttentionUpsampler`)."""
    return AttentionUpsampler(
        in_channels, out_channels, scale, key_channels=key_channels, window=window, heads=heads
    )
