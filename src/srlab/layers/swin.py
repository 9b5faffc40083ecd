"""Shifted-window self-attention layers (Swin Transformer v1 and v2) as SwinIR and Swin2SR use them.

Papers: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021,
and "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022; as adapted to image restoration by
Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021 (JingyunLiang/SwinIR,
Apache-2.0) and Conde et al., "Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution and
Restoration", ECCVW 2022 (mv-lab/swin2sr, Apache-2.0). Written for srlab from those papers and the
structure of the official code; module and parameter names follow the official code so that its
checkpoints load strictly.

Tokens are (B, H*W, C) sequences in row-major order, as in the official code; ``x_size`` is (H, W).

- :func:`window_partition` / :func:`window_reverse`: (B, H, W, C) <-> (B*nW, ws, ws, C).
- :func:`relative_position_index`: the (ws^2, ws^2) index into the (2ws-1)^2 table of relative offsets.
- :func:`shifted_window_mask`: the additive (0 / -100) mask of shifted-window attention for a padded
  size: after the cyclic shift, tokens that came from different image regions do not attend to each
  other. It depends on the input size, so it is computed at forward time (cached per size), never stored.
- :func:`log_spaced_coords_table`: SwinV2's log-spaced relative coordinates fed to the bias MLP.
- :class:`WindowAttention` (v1: scaled dot product + learned relative position bias table, through
  ``F.scaled_dot_product_attention``, or in bfloat16 on a CPU without AMX :func:`explicit_attention`) and
  :class:`WindowAttentionV2` (v2: scaled cosine attention with a clamped learned logit scale, continuous
  position bias from ``cpb_mlp``, separate ``q_bias`` / ``v_bias``).
- :class:`SwinTransformerBlock`: pre-norm (v1) or residual post-norm (v2) block, plain or shifted windows.
- :class:`BasicLayer` (``blocks``) and :class:`RSTB` (residual Swin transformer block: ``residual_group``,
  a 3x3 ``conv`` and, in v2, the 1x1 ``patch_embed.proj`` of the official Swin2SR code).

Deviations from the official code: no stochastic depth / dropout (inference layers; the official SR
models use dropout 0 and a drop-path rate that does not change inference); the window size never shrinks
to a small *construction* size (``img_size`` does not exist here: all sizes are handled at forward time).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from srlab.machine import cpu_flags

# The additive value the official code puts between tokens of different regions (not -inf).
MASK_VALUE = -100.0
# SwinV2 clamps the learned logit scale at log(1 / 0.01) = log(100).
LOGIT_SCALE_MAX = math.log(100.0)


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C), windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B*nW, ws, ws, C) -> (B, H, W, C)."""
    n_h, n_w = height // window_size, width // window_size
    c = windows.shape[-1]
    x = windows.view(-1, n_h, n_w, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(ws^2, ws^2) int64: for tokens i, j of a window (row-major), the row of the (2ws-1)^2 table of
    relative offsets (dy, dx) = pos(i) - pos(j), numbered (dy + ws - 1) * (2ws - 1) + (dx + ws - 1)."""
    ys, xs = torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + window_size - 1
    dx = xs[:, None] - xs[None, :] + window_size - 1
    return dy * (2 * window_size - 1) + dx


def _mask_cpu(height: int, width: int, window_size: int, shift_size: int) -> torch.Tensor:
    # Label the regions that the cyclic shift (by -shift) brings together: along each axis, the part
    # that stays, the last window before the wrap and the wrapped-around strip.
    def labels(n: int) -> torch.Tensor:
        lab = torch.zeros(n, dtype=torch.long)
        lab[n - window_size:n - shift_size] = 1
        lab[n - shift_size:] = 2
        return lab

    region = labels(height)[:, None] * 3 + labels(width)[None, :]  # H, W
    windows = window_partition(region[None, :, :, None], window_size).reshape(-1, window_size * window_size)
    different = windows[:, None, :] != windows[:, :, None]  # nW, N, N
    return torch.zeros(different.shape).masked_fill(different, MASK_VALUE)


# Masks computed by eager forwards, per (height, width, window, shift); at most _MASKS_KEPT, oldest out first.
_MASKS: dict[tuple[int, int, int, int], torch.Tensor] = {}
_MASKS_KEPT = 32


def shifted_window_mask(
    height: int, width: int, window_size: int, shift_size: int, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """(nW, ws^2, ws^2) additive attention mask (0 within a region, -100 across) of shifted windows for
    an (H, W) feature map, H and W multiples of the window size. Cached per size; do not modify it.

    Under a tracer (``torch.compile``, ``torch.export``: srlab's compiled paths and ONNX export) a cached mask
    becomes a constant of the graph; one not cached yet is traced, not cached (the cache once kept the tracer's
    fake tensor, and the next eager forward at that size failed), so that sizes the tracer sees as symbols
    (dynamic shapes) keep a mask of their own size."""
    if height % window_size or width % window_size:
        raise ValueError(f"size {height}x{width} is not a multiple of the window size {window_size}")
    key = (height, width, window_size, shift_size)
    concrete = all(type(value) is int for value in key)
    mask = _MASKS.get(key) if concrete else None
    if mask is None:
        mask = _mask_cpu(height, width, window_size, shift_size)
        if concrete and not torch.compiler.is_compiling():
            if len(_MASKS) >= _MASKS_KEPT:
                del _MASKS[next(iter(_MASKS))]
            _MASKS[key] = mask
    return mask if device is None else mask.to(device)


def log_spaced_coords_table(window_size: int, pretrained_window_size: int = 0) -> torch.Tensor:
    """(1, 2ws-1, 2ws-1, 2) SwinV2 relative coordinates (dy, dx), normalised to [-8, 8] and mapped by
    sign(t) * log2(1 + |t|) / log2(8)."""
    span = (pretrained_window_size if pretrained_window_size > 0 else window_size) - 1
    offsets = torch.arange(-(window_size - 1), window_size, dtype=torch.float32)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    table = torch.stack((dy, dx), dim=-1)[None] / span * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _add_mask(attn: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return attn
    n_windows, n = mask.shape[0], attn.shape[-1]
    attn = attn.view(-1, n_windows, attn.shape[1], n, n) + mask[None, :, None]
    return attn.view(-1, attn.shape[2], n, n)


class WindowAttention(nn.Module):
    """Swin v1 window attention: softmax(q k^T / sqrt(d) + B[rel] + mask) v, B a learned
    ((2ws-1)^2, heads) ``relative_position_bias_table``."""

    def __init__(self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # A cheap configuration constant that the official checkpoints store: kept as a persistent buffer.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) additive bias."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        # contiguous: a sum broadcast from the permuted view took 10x as long as from a contiguous one
        return bias.permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B*nW, N, C); mask: (nW, N, N) or None."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.position_bias()[None]  # (1, heads, N, N)
        if q.dtype == torch.bfloat16 and q.device.type == "cpu" and not _CPU_HAS_AMX:
            out = explicit_attention(q, k, v, bias, mask, self.scale)
        else:
            if mask is not None:  # (nW, heads, N, N), then the same windows for every image of the batch
                n_windows = mask.shape[0]
                bias = (bias + mask[:, None]).expand(b // n_windows, -1, -1, -1, -1).reshape(b, -1, n, n)
            # One fused kernel instead of q k^T, the sums, the softmax and the product with v, which it
            # matches to float rounding (Intel Xeon with AMX, SwinIR-light x4, LR 90x160, 1 thread: 0.59 of
            # the explicit form's time in float32, and bfloat16 from 0.42 to 0.33 of it).
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


# Without AMX, CPU SDPA's bfloat16 kernel is slow for windows' short sequences and narrow heads: AMD EPYC
# Zen 4 (AVX512-BF16), 576 windows x heads of 64 tokens x 10 channels (SwinIR-light), 1 thread: 8.3 ms
# against 4.1 for explicit_attention, compiled or not; in float32 both take 8.5.
_CPU_HAS_AMX = "amx_bf16" in cpu_flags()


# explicit_attention's logits per step, in bytes: so many windows at a time that their logits stay in the
# CPU's caches from the product through the softmax to the product with v, where all windows' logits at
# once (SwinIR-light x4, LR 180x320, bfloat16: 45 MB) went out to memory and back. AMD EPYC Zen 4, 1 thread,
# SwinIR-light's attention at that size (920 windows x 6 heads x 64 tokens): 103 ms at once, 40 / 42 / 66 ms
# 32 / 64 / 128 windows (1.5 / 3 / 6 MB) a step; its compiled bf16 package 2171 ms at once, 2045 / 2020 /
# 2012 ms, built in 74 s at once and 568 / 230 / 132 s.
ATTENTION_STEP_BYTES = 3 << 20
# Under torch.export or torch.compile every step is code of its own: at most this many steps per image, so
# that a package's size and build time stop growing with the input's (larger steps on larger inputs).
ATTENTION_TRACED_STEPS = 16


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, position_bias: torch.Tensor,
                       mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """softmax(scale q k^T + position_bias + mask) v for (B, heads, N, d) q, k, v, a (1, heads, N, N) position
    bias and a (nW, N, N) mask or None (the same nW windows in each of the B / nW images), as many windows at
    a time as ``ATTENTION_STEP_BYTES`` of logits hold; the product and the bias in one batched matrix product
    (``baddbmm``). In bfloat16 its logits are rounded to bfloat16 before the softmax (SDPA keeps them in
    float32): rms error against float64 1.5x SDPA's on random inputs (1.7e-3 against 1.2e-3)."""
    b, heads, n, d = q.shape
    n_windows = b if mask is None else mask.shape[0]
    step = max(1, ATTENTION_STEP_BYTES // (heads * n * n * q.element_size()))
    if torch.compiler.is_compiling():
        step = max(step, -(-n_windows // ATTENTION_TRACED_STEPS))
    outputs = []
    for first in range(0, b, n_windows):
        for start in range(0, n_windows, step):
            count = min(step, n_windows - start)
            rows = slice(first + start, first + start + count)
            bias = position_bias if mask is None else position_bias + mask[start : start + count, None]
            bias = bias.to(q.dtype).expand(count, heads, n, n).reshape(count * heads, n, n)
            logits = torch.baddbmm(bias, q[rows].reshape(count * heads, n, d),
                                   k[rows].reshape(count * heads, n, d).transpose(1, 2), alpha=scale)
            outputs.append(torch.bmm(logits.softmax(dim=-1), v[rows].reshape(count * heads, n, d)))
    return torch.cat(outputs).view(b, heads, n, d)


class WindowAttentionV2(nn.Module):
    """SwinV2 window attention: softmax(cos(q, k) * exp(min(logit_scale, log 100)) + 16 sigmoid(B) + mask) v,
    B = ``cpb_mlp``(log-spaced relative coordinates); q and v biases separate, k without bias."""

    def __init__(
        self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True, pretrained_window_size: int = 0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        # Both are configuration constants stored in the official checkpoints: persistent buffers.
        self.register_buffer("relative_coords_table", log_spaced_coords_table(window_size, pretrained_window_size))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def clamped_logit_scale(self) -> torch.Tensor:
        """(heads, 1, 1) multiplier of the cosine similarities, at most 100."""
        return self.logit_scale.clamp(max=LOGIT_SCALE_MAX).exp()

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) additive bias, in (0, 16)."""
        n = self.window_size**2
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B*nW, N, C); mask: (nW, N, N) or None."""
        b, n, c = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * self.clamped_logit_scale() + self.position_bias()[None]
        attn = _add_mask(attn, mask).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class SwinTransformerBlock(nn.Module):
    """(Shifted-)window attention + MLP, each with a residual connection.

    ``version=1``: pre-norm, x + attn(norm1(x)), x + mlp(norm2(x)) (SwinIR).
    ``version=2``: residual post-norm, x + norm1(attn(x)), x + norm2(mlp(x)) (Swin2SR).
    """

    def __init__(
        self, dim: int, num_heads: int, *, window_size: int, shift_size: int, mlp_ratio: float, version: int
    ) -> None:
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {version}")
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size}")
        self.window_size, self.shift_size, self.version = window_size, shift_size, version
        self.norm1 = nn.LayerNorm(dim)
        if version == 1:
            self.attn: nn.Module = WindowAttention(dim, window_size, num_heads)
        else:
            self.attn = WindowAttentionV2(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _attend(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        x = x.reshape(b, h, w, c)
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            if mask is None:
                mask = shifted_window_mask(h, w, ws, shift, device=x.device)
            mask = mask.to(x.dtype)
        else:
            mask = None
        windows = window_partition(x, ws).view(-1, ws * ws, c)
        x = window_reverse(self.attn(windows, mask).view(-1, ws, ws, c), ws, h, w)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x.reshape(b, h * w, c)

    def forward(
        self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, H*W, C) with H, W multiples of the window size; ``mask`` (shifted blocks only) may be
        passed to avoid recomputing :func:`shifted_window_mask`."""
        if self.version == 1:
            x = x + self._attend(self.norm1(x), x_size, mask)
            return x + self.mlp(self.norm2(x))
        x = x + self.norm1(self._attend(x, x_size, mask))
        return x + self.norm2(self.mlp(x))


class BasicLayer(nn.Module):
    """``depth`` Swin blocks alternating plain and shifted (by ws // 2) windows."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, *, window_size: int, mlp_ratio: float, version: int
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim, num_heads, window_size=window_size, shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio, version=version,
            )
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        mask = None
        for block in self.blocks:
            if block.shift_size and mask is None:
                mask = shifted_window_mask(*x_size, self.window_size, block.shift_size, device=x.device)
            x = block(x, x_size, mask if block.shift_size else None)
        return x


class PatchEmbed(nn.Module):
    """Feature map (B, C, H, W) -> tokens (B, H*W, C); with ``proj`` a 1x1 conv first (the official Swin2SR
    ``PatchEmbed``, patch size 1), with ``norm`` a LayerNorm after."""

    def __init__(self, dim: int, *, proj: bool, norm: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1) if proj else None
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.proj(x)
        x = x.flatten(2).transpose(1, 2)
        return x if self.norm is None else self.norm(x)


def tokens_to_map(x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) (the official ``PatchUnEmbed``)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *x_size)


class RSTB(nn.Module):
    """Residual Swin transformer block: x + embed(conv3x3(unembed(blocks(x)))); ``version=2`` embeds with
    the 1x1 ``patch_embed.proj`` as Swin2SR does."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, *, window_size: int, mlp_ratio: float, version: int
    ) -> None:
        super().__init__()
        self.residual_group = BasicLayer(
            dim, depth, num_heads, window_size=window_size, mlp_ratio=mlp_ratio, version=version
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.patch_embed = PatchEmbed(dim, proj=version == 2, norm=False)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        return self.patch_embed(self.conv(tokens_to_map(self.residual_group(x, x_size), x_size))) + x


def init_swin_weights(module: nn.Module) -> None:
    """The official initialisation: linear weights truncated normal (std 0.02) with zero biases,
    LayerNorms at identity."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
