"""Omni self-attention layers (Omni-SR's OSA block and its parts).

Wang et al., "Omni Aggregation Networks for Lightweight Image Super-Resolution", CVPR 2023; official
code Francis0625/Omni-SR (Apache-2.0 per its README), ``ops/OSA.py`` (``OSA_Block``), ``ops/esa.py``,
``ops/layernorm.py``. Written here from that structure; module and parameter names follow the
official ones so that official checkpoints load strictly.

The OSA block mixes information along three axes, each with a parameter-free rearrangement R before
and its inverse R^-1 after the attention (the paper's "rotation"):

- block (window) attention: tokens are the pixels of one non-overlapping ``w x w`` window, with a
  learned relative-position bias (``rel_pos_bias``, an ``nn.Embedding((2w-1)^2, heads)``);
- grid attention: the same attention module, but the ``w x w`` tokens are a dilated grid spread over
  the whole image (pixel ``(p * H/w + i, q * W/w + j)`` for ``p, q < w`` forms window ``(i, j)``),
  so the dilation is ``H/w`` x ``W/w`` and H, W must be multiples of ``w``;
- channel attention (two kinds): "transposed" attention whose tokens are the channels of a head
  (a ``d x d`` attention map with L2-normalised queries/keys and a learned per-head temperature),
  computed either inside each ``w x w`` window (features = the window's w^2 pixels) or across the
  dilated grid (features = one pixel of each window, all at the same position inside it).

Each attention is followed by a gated depth-wise feed-forward network (GDFN, as in Restormer), and an
MBConv (with squeeze-excitation) opens the block. Deviations from the official code, all without
effect on the output of the configuration the paper uses (dropout 0): no dropout layers, and the
rearrangements are written as ``view``/``permute`` (the official code uses einops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.ffn import GatedFeedForward
from srlab.layers.norm import LayerNorm2d
from srlab.layers.swin import relative_position_index

# --------------------------------------------------------------------------------------------------
# The rearrangements R and R^-1 ("rotation"): (B, C, H, W) <-> windows (B, X, Y, w, w, C)


def partition(x: torch.Tensor, window_size: int, *, grid: bool) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/w, W/w, w, w, C) windows of tokens.

    Block: window (i, j) holds the pixels ``(i*w + p, j*w + q)``. Grid: window (i, j) holds the pixels
    ``(p * H/w + i, q * W/w + j)``, a grid dilated by H/w and W/w over the whole image.
    """
    b, c, h, w = x.shape
    ws = window_size
    if h % ws or w % ws:
        raise ValueError(f"height and width ({h}, {w}) must be multiples of the window size {ws}")
    if grid:
        return x.view(b, c, ws, h // ws, ws, w // ws).permute(0, 3, 5, 2, 4, 1)
    return x.view(b, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1)


def merge(windows: torch.Tensor, *, grid: bool) -> torch.Tensor:
    """The inverse of :func:`partition`: (B, X, Y, w, w, C) -> (B, C, H, W)."""
    b, nx, ny, w1, w2, c = windows.shape
    order = (0, 5, 3, 1, 4, 2) if grid else (0, 5, 1, 3, 2, 4)
    return windows.permute(*order).reshape(b, c, nx * w1, ny * w2)


class Partition(nn.Module):
    """R: image to windows (block or grid), a parameter-free module (the official ``Rearrange``)."""

    def __init__(self, window_size: int, *, grid: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return partition(x, self.window_size, grid=self.grid)


class Merge(nn.Module):
    """R^-1: windows back to the image."""

    def __init__(self, *, grid: bool) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return merge(x, grid=self.grid)


# --------------------------------------------------------------------------------------------------
# Normalisation and residual wrappers


class PreNormResidual(nn.Module):
    """``fn(norm(x)) + x`` on channels-last windows (``nn.LayerNorm``, eps 1e-5)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x)) + x


class ConvPreNormResidual(nn.Module):
    """``fn(norm(x)) + x`` on (B, C, H, W) feature maps (channel LayerNorm, eps 1e-6: official
    ``ops/layernorm.py``, whose hand-written backward computes the gradients autograd computes)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x)) + x


# --------------------------------------------------------------------------------------------------
# MBConv


class _GlobalMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class SqueezeExcitation(nn.Module):
    """x * sigmoid(W2 silu(W1 mean(x))) with bias-free linear layers (``gate.1``, ``gate.3``)."""

    def __init__(self, dim: int, *, shrinkage_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * shrinkage_rate)
        self.gate = nn.Sequential(
            _GlobalMean(),
            nn.Linear(dim, hidden, bias=False),
            nn.SiLU(),
            nn.Linear(hidden, dim, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[:, :, None, None]


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1, GELU, depth-wise 3x3, GELU, squeeze-excitation, 1x1 (no BatchNorm:
    the official code has them commented out), plus the input when the shapes allow it."""

    def __init__(self, dim_in: int, dim_out: int, *, expansion_rate: float = 4, shrinkage_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(expansion_rate * dim_out)
        self.fn = nn.Sequential(
            nn.Conv2d(dim_in, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            nn.GELU(),
            SqueezeExcitation(hidden, shrinkage_rate=shrinkage_rate),
            nn.Conv2d(hidden, dim_out, 1),
        )
        self.residual = dim_in == dim_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fn(x)
        return out + x if self.residual else out


# --------------------------------------------------------------------------------------------------
# Attention


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows (official ``Attention``).

    Input and output are windows (B, X, Y, w, w, C) from :func:`partition`: with block windows it is
    the block attention, with grid windows the grid attention. ``with_pe`` adds the relative-position
    bias ``rel_pos_bias`` (the index table is rebuilt, never stored).
    """

    def __init__(self, dim: int, *, dim_head: int = 32, window_size: int = 7, with_pe: bool = True) -> None:
        super().__init__()
        if dim % dim_head:
            raise ValueError(f"dim {dim} must be divisible by dim_head {dim_head}")
        self.heads = dim // dim_head
        self.scale = dim_head**-0.5
        self.with_pe = with_pe
        self.window_size = window_size
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim, bias=False))
        if with_pe:
            self.rel_pos_bias = nn.Embedding((2 * window_size - 1) ** 2, self.heads)
            self.register_buffer("rel_pos_indices", relative_position_index(window_size), persistent=False)

    def position_bias(self) -> torch.Tensor:
        """(heads, w^2, w^2) additive bias of the attention logits."""
        # contiguous: a sum broadcast from the permuted view is several times slower
        return self.rel_pos_bias(self.rel_pos_indices).permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, nx, ny, w1, w2, c = x.shape
        tokens = x.reshape(b * nx * ny, w1 * w2, c)
        q, k, v = (
            t.reshape(t.shape[0], t.shape[1], self.heads, -1).transpose(1, 2)
            for t in self.to_qkv(tokens).chunk(3, dim=-1)
        )
        bias = self.position_bias()[None].to(q.dtype) if self.with_pe else None
        # softmax(q k^T scale + bias) v in one fused kernel, equal to the explicit form to float rounding
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.transpose(1, 2).reshape(b * nx * ny, w1 * w2, c)
        return self.to_out(out).view(b, nx, ny, w1, w2, c)


class TransposedChannelAttention(nn.Module):
    """Channel ("transposed") attention (official ``Channel_Attention`` / ``Channel_Attention_grid``).

    q, k, v come from a 1x1 then a depth-wise 3x3 conv. For each group of pixels and each head, the
    head's ``d`` channels are the tokens and the group's pixels their features: q and k are
    L2-normalised over the pixels, ``softmax(temperature * q k^T)`` (d x d) mixes v's channels.
    The groups are the ``w x w`` windows (``grid=False``) or the dilated grids of all pixels at the
    same position inside their window (``grid=True``).
    """

    def __init__(self, dim: int, *, heads: int, window_size: int = 7, grid: bool = False, bias: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.ps = window_size
        self.grid = grid
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def _groups(self, t: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, groups, heads, d, features)
        b, c, h, w = t.shape
        ps = self.ps
        t = t.view(b, self.heads, c // self.heads, h // ps, ps, w // ps, ps)
        if self.grid:  # groups: position (ph, pw) inside the window; features: the windows (h, w)
            return t.permute(0, 4, 6, 1, 2, 3, 5).reshape(b, ps * ps, self.heads, c // self.heads, -1)
        return t.permute(0, 3, 5, 1, 2, 4, 6).reshape(b, (h // ps) * (w // ps), self.heads, c // self.heads, -1)

    def _ungroup(self, t: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, heads, d, _ = t.shape
        ps = self.ps
        if self.grid:
            t = t.view(b, ps, ps, heads, d, h // ps, w // ps).permute(0, 3, 4, 5, 1, 6, 2)
        else:
            t = t.view(b, h // ps, w // ps, heads, d, ps, ps).permute(0, 3, 4, 1, 5, 2, 6)
        return t.reshape(b, heads * d, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.ps or w % self.ps:
            raise ValueError(f"height and width ({h}, {w}) must be multiples of the window size {self.ps}")
        q, k, v = (self._groups(t) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out(self._ungroup(attn @ v, h, w))


# --------------------------------------------------------------------------------------------------
# The OSA block and Omni-SR's ESA


class OSABlock(nn.Module):
    """Omni self-attention block (official ``OSA_Block``); ``layer`` indices follow the official ones.

    MBConv; block attention + GDFN; window channel attention + GDFN; grid attention + GDFN; grid channel
    attention + GDFN (heads: ``channels // 4``-wide spatial heads, 4 channel heads). The official
    constructor also takes ``bias`` and ``ffn_bias``, which it never uses (every attention and GDFN
    projection is bias-free), so they are left out here.
    """

    def __init__(self, channels: int = 64, *, window_size: int = 8, with_pe: bool = False) -> None:
        super().__init__()
        c, w = channels, window_size

        def spatial() -> WindowAttention:
            return WindowAttention(c, dim_head=c // 4, window_size=w, with_pe=with_pe)

        def ffn() -> ConvPreNormResidual:
            return ConvPreNormResidual(c, GatedFeedForward(c))

        def channel(grid: bool) -> ConvPreNormResidual:
            return ConvPreNormResidual(c, TransposedChannelAttention(c, heads=4, window_size=w, grid=grid))

        self.layer = nn.Sequential(
            MBConv(c, c, expansion_rate=1, shrinkage_rate=0.25),  # 0
            Partition(w, grid=False),  # 1: R (block)
            PreNormResidual(c, spatial()),  # 2
            Merge(grid=False),  # 3: R^-1
            ffn(),  # 4
            channel(grid=False),  # 5
            ffn(),  # 6
            Partition(w, grid=True),  # 7: R (grid)
            PreNormResidual(c, spatial()),  # 8
            Merge(grid=True),  # 9: R^-1
            ffn(),  # 10
            channel(grid=True),  # 11
            ffn(),  # 12
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class OmniESA(nn.Module):
    """Omni-SR's ESA (official ``ops/esa.py``): RFANet's ESA without ``conv_max``/``conv3_``.

    m = sigmoid(conv4(up(conv3(maxpool7/3(conv2_s2(c1)))) + conv_f(c1))), c1 = conv1(x); returns x * m.
    Needs H, W >= 15 (the stride-2 conv then the 7x7 pool).
    """

    def __init__(self, esa_channels: int, n_feats: int) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.conv1(x)
        c3 = self.conv3(F.max_pool2d(self.conv2(c1), kernel_size=7, stride=3))
        c3 = F.interpolate(c3, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1)))
