"""Efficient multi-head attention (EMHA) of ESRT.

Paper: Lu et al., "Transformer for Single Image Super-Resolution" (ESRT), CVPR Workshops 2022.
Official code: luissen/ESRT (MIT), ``util/transformer.py`` (``EffAttention``).

EMHA cuts the cost of self-attention over N tokens in three steps:

1. *reduction*: a bias-free linear layer halves the channels (``reduce``: dim -> dim/2);
2. *splitting*: queries, keys and values (``qkv``, bias-free) are cut along the token axis into
   ``num_splits`` consecutive segments of ``N // num_splits`` tokens (the last, shorter segment holds
   the remainder when ``num_splits`` does not divide N); each head attends only within its segment,
   so the attention matrices are (N/s)^2 instead of N^2;
3. *expansion*: a linear layer with bias restores the channels (``proj``: dim/2 -> dim).

Parameter names (``reduce``, ``qkv``, ``proj``) equal the official ones. As in the official code the
softmax temperature is ``(dim // num_heads) ** -0.5``, computed from the channel count *before* the
reduction, although each head works on ``dim / 2 / num_heads`` channels.

Deviation: for N < ``num_splits`` tokens the official code fails (``torch.split`` by 0); here the
segments are then single tokens.
"""

from __future__ import annotations

import torch
from torch import nn


class EMHA(nn.Module):
    """ESRT's efficient multi-head attention on (B, N, dim) token sequences."""

    def __init__(self, dim: int, *, num_heads: int = 8, num_splits: int = 4, qkv_bias: bool = False) -> None:
        super().__init__()
        if dim % 2 or (dim // 2) % num_heads:
            raise ValueError(f"dim/2 must be divisible by num_heads, got dim={dim}, num_heads={num_heads}")
        self.num_heads = num_heads
        self.num_splits = num_splits
        self.scale = (dim // num_heads) ** -0.5
        self.reduce = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.qkv = nn.Linear(dim // 2, dim // 2 * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim // 2, dim)

    def segment_length(self, num_tokens: int) -> int:
        return max(num_tokens // self.num_splits, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        b, n, c = x.shape
        heads = self.num_heads
        # (3, B, heads, N, c/heads)
        q, k, v = self.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        seg = self.segment_length(n)
        outputs = []
        for qs, ks, vs in zip(q.split(seg, dim=2), k.split(seg, dim=2), v.split(seg, dim=2)):
            attn = ((qs @ ks.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            outputs.append(attn @ vs)
        out = torch.cat(outputs, dim=2).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)
