"""RAMiT: reciprocal attention mixing transformer (RAMiT, RAMiT-1, RAMiT-slimSR).

Paper: Choi, Na, Oh, Lee, Kim, Choe, Lee, Kim, Yang, "Reciprocal Attention Mixing Transformer for
Lightweight Image Restoration", CVPR Workshops 2024 (arXiv 2305.11474). Official code: rami0205/RAMiT at
commit 193ead604a1ab01dd548eb808bf6a11f873fec39, ``my_model/ramit.py`` (RAMiT, RAMiT-1),
``my_model/ramit_slimsr.py`` (RAMiT-slimSR), ``my_model/common/mean_std.py``, the configurations
``my_model/specs/lightweight_sr/*.yml`` and the tester ``ddp_engine_test.py``; the repository states no
licence. This implementation is written for srlab from the paper and that structure; module and tensor
names equal the official ones (476 tensors for RAMiT-1, 528 for RAMiT-slimSR, ``relative_position_index``
included as in the official state dict), so the released plain state dicts load strictly.

Structure (C channels, window 8, four heads of C/4 channels in every block):
- ``shallow``: 3x3 conv 3 -> C.
- Four encoder stages of D-RAMiT blocks (``stageN.blocks.blockD``), at full, 1/2, 1/4 and again full
  resolution. A block projects q, k, v with one 1x1 conv (per head its q, k, v channels are contiguous),
  gives 3 heads to windowed spatial self-attention (cosine attention with a learnt clamped logit scale
  and Swin's relative-position bias; odd blocks roll the map by 4 first, with no attention mask) and
  1 head to channel self-attention over the whole map (cosine, logit scale), each followed by a 1x1
  projection. From the second block of a stage on, the two help each other ("reciprocal"): the previous
  block's channel-attention output, averaged over its heads, multiplies the spatial attention's values,
  and the previous block's spatial output, averaged over channels, multiplies the channel attention's.
  The heads' outputs are mixed by a MobileNet-like block; then LayerNorm and the residual; a 1x1 FFN
  (ratio 2, GELU), LayerNorm and the residual (post-norm).
- ``down1``/``down2``: 2x2 space-to-depth (top-left, top-right, bottom-left, bottom-right), LayerNorm,
  a MobileNet-like block 4C -> C.
- ``bottleneck``: the shallow features, max-pooled to each stage's size and leaky-ReLU'd, added to the
  outputs of stages 1-3, which are pixel-shuffled back to full size (C + C/4 + C/16 channels), a
  MobileNet-like block to C and LayerNorm; it feeds stage 4.
- ``attn_mix`` (H-RAMi): the last block's mixed attention of every stage, pixel-shuffled to full size
  and concatenated, a MobileNet-like block to C; it multiplies stage 4's output.
- ``to_target``: (that product + shallow features), two MobileNet-like blocks, 3x3 conv to 3 s^2,
  PixelShuffle(s), 3x3 conv 3 -> 3.
MobileNet-like blocks: ``MobiVari1`` (depthwise 3x3, LeakyReLU, + input, 1x1, LeakyReLU, + input where
the widths agree) for RAMiT-1; ``MobiVari2`` (grouped 1x1 expansion, LeakyReLU, depthwise 3x3
+ expansion, LeakyReLU, 1x1, + input where the widths agree) for RAMiT and RAMiT-slimSR.

Input and output are RGB in [0, 1]. Like the official model (``img_norm=True``, which the released
checkpoints are trained and tested with) forward normalises with the per-scale mean and standard
deviation of ``mean_std.py`` and maps the output back. The official tester pads the LR image at the
bottom/right to a multiple of 4 x window (32) in torchvision's ``symmetric`` mode (the edge row repeated,
then mirrored) and crops the output; forward does the same itself (``pad_mode='inside'``), so the whole
inference path sees what the official tester sees. The channel attention covers the whole padded map, so
the padding changes every output pixel a little and tiled inference is close to, not equal to, whole.

Deviations from the official code (none changes what the released weights compute):
- The padding happens in forward, in ``symmetric`` mode, as the official tester pads before calling the
  model (the official forward's own zero pad then has nothing left to do). A pad longer than the side
  (LR sides under 16), where torchvision's symmetric pad fails, continues the mirroring periodically.
- Only SR heads (x2/x3/x4, three colour channels): no denoising / low-light / deraining targets, no
  grayscale input, no ``img_norm=False`` option; no stochastic depth or dropout (0 in every official
  configuration; the official ``DropPath`` is not even imported); no ``head_dim`` (unused officially).
- Pure spatial or pure channel attention (``chsa_head_ratio`` giving no head, or every head, to one
  kind, where the official code swaps in a ``NoLayer``) is not built: every released model mixes both.
- The official model passes ``exp_factor``/``expand_groups`` only to the reconstruction's blocks; the
  encoder, downsizing, bottleneck and H-RAMi blocks take MobiVari2's defaults (1.2, 4), and RAMiT-slimSR
  hard-codes (2.0, 1) for the bottleneck and H-RAMi. Here those are explicit hyper-parameters
  (``exp_factor``/``expand_groups`` for the encoder and downsizing blocks, ``tail_exp_factor``/
  ``tail_expand_groups`` for the reconstruction, ``mix_exp_factor``/``mix_expand_groups`` for the
  bottleneck and H-RAMi), with the values the official code uses as defaults.

Parameter counts (all parameters, from the official structure; the paper rounds them): RAMiT 939,844 /
948,499 / 960,616, RAMiT-1 823,164 / 831,819 / 843,936, RAMiT-slimSR 581,008 / 587,503 / 596,596 at
x2 / x3 / x4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.padding import round_up
from srlab.layers.swin import LOGIT_SCALE_MAX, relative_position_index
from srlab.models.registry import ModelInfo, register_model

# mean_std.py: the per-scale statistics the SR checkpoints were trained with (``img_norm=True``).
_MEAN = (0.4485, 0.4375, 0.4045)
_STD = {2: (0.2397, 0.2290, 0.2389), 3: (0.2373, 0.2265, 0.2367), 4: (0.2352, 0.2244, 0.2349)}
# Encoder stages at full, 1/2, 1/4 and full resolution: H and W must split into windows at 1/4.
_NUM_STAGES = 4
_DOWNSAMPLING = 2 ** (_NUM_STAGES - 2)


def pad_symmetric(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom/right of (B, C, H, W) to multiples of ``multiple``, mirroring with the edge row and
    column repeated (torchvision's ``symmetric``: [1, 2, 3] -> [1, 2, 3, 3, 2, 1, 1, ...])."""
    height, width = x.shape[-2:]
    rows = _symmetric_indices(height, round_up(height, multiple), x.device)
    cols = _symmetric_indices(width, round_up(width, multiple), x.device)
    return x[..., rows[:, None], cols[None, :]]


def _symmetric_indices(size: int, padded: int, device: torch.device) -> torch.Tensor:
    # Mirroring with the edge repeated has period 2 * size: index i reads i mod 2 size, folded back.
    index = torch.arange(padded, device=device) % (2 * size)
    return torch.where(index < size, index, 2 * size - 1 - index)


def _to_windows(x: torch.Tensor, heads: int, window: int) -> torch.Tensor:
    """(B, heads * c, H, W) -> (B * windows, heads, window^2, c); windows in row-major order per image."""
    b, _, h, w = x.shape
    x = x.reshape(b, heads, -1, h // window, window, w // window, window)
    return x.permute(0, 3, 5, 1, 4, 6, 2).reshape(b * (h // window) * (w // window), heads, window * window, -1)


def _from_windows(x: torch.Tensor, size: tuple[int, int], window: int) -> torch.Tensor:
    """Inverse of :func:`_to_windows`: (B * windows, heads, window^2, c) -> (B, heads * c, H, W)."""
    h, w = size
    _, heads, _, c = x.shape
    x = x.reshape(-1, h // window, w // window, heads, window, window, c)
    return x.permute(0, 3, 6, 1, 4, 2, 5).reshape(-1, heads * c, h, w)


def _cosine_attention(q: torch.Tensor, k: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Logits of L2-normalised queries against keys, scaled by exp(logit scale) clamped at 100."""
    attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    return attn * torch.clamp(logit_scale, max=LOGIT_SCALE_MAX).exp()


class ShallowModule(nn.Module):
    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class QKVProjection(nn.Module):
    """1x1 conv C -> 3C, split into heads of (q, k, v) channels: (B, heads, 3 C / heads, H, W)."""

    def __init__(self, dim: int, num_head: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_head = num_head
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.qkv(x).reshape(b, self.num_head, -1, h, w)


class SpatialSelfAttention(nn.Module):
    """Cosine attention in ``window`` x ``window`` windows (rolled by ``shift``, unmasked) over
    ``num_head`` heads of ``dim`` channels, with relative-position bias; values scaled by the channel
    attention's output where given."""

    def __init__(self, dim: int, num_head: int, total_head: int, window_size: int, shift: int) -> None:
        super().__init__()
        self.num_head = num_head
        self.helper_heads = total_head - num_head
        self.window_size = window_size
        self.shift = shift
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_head, 1, 1)))
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_head))
        # Persistent, as in the official state dict.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.proj = nn.Conv2d(dim * num_head, dim * num_head, 1)

    def _relative_position_bias(self) -> torch.Tensor:
        area = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(area, area, -1)
        return bias.permute(2, 0, 1).unsqueeze(0)

    def forward(self, qkv: torch.Tensor, ch: torch.Tensor | None = None) -> torch.Tensor:
        b, heads, c3, h, w = qkv.shape
        ws, shift = self.window_size, self.shift
        if shift:
            qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(-2, -1))
        q, k, v = _to_windows(qkv.reshape(b, heads * c3, h, w), heads, ws).chunk(3, dim=-1)
        if ch is not None:
            if shift:
                ch = torch.roll(ch, shifts=(-shift, -shift), dims=(-2, -1))
            v = v * _to_windows(ch, self.helper_heads, ws).mean(dim=1, keepdim=True)
        attn = _cosine_attention(q, k, self.logit_scale) + self._relative_position_bias()
        x = self.proj(_from_windows(attn.softmax(dim=-1) @ v, (h, w), ws))
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(-2, -1))
        return x


class ChannelSelfAttention(nn.Module):
    """Cosine attention between the ``dim`` channels of each of ``num_head`` heads over the whole map;
    values scaled by the spatial attention's output (averaged over its channels) where given."""

    def __init__(self, dim: int, num_head: int) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_head, 1, 1)))
        self.proj = nn.Conv2d(dim * num_head, dim * num_head, 1)

    def forward(self, qkv: torch.Tensor, sp: torch.Tensor | None = None) -> torch.Tensor:
        b, heads, _, h, w = qkv.shape
        q, k, v = qkv.flatten(3).chunk(3, dim=-2)  # (B, heads, c, HW) each
        if sp is not None:
            v = v * sp.mean(dim=1, keepdim=True).reshape(b, 1, 1, h * w)
        attn = _cosine_attention(q, k, self.logit_scale)
        return self.proj((attn.softmax(dim=-1) @ v).reshape(b, -1, h, w))


class ReshapeLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (as the official one: through (B, HW, C))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(b, c, h, w)


class MobiVari1(nn.Module):
    """MobileNet-v1 variant: depthwise conv, LeakyReLU, + input, 1x1 to ``out_dim``, LeakyReLU
    (+ input when the widths agree)."""

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.out_dim = out_dim or dim
        self.residual = self.out_dim == dim
        self.dw_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.pw_conv = nn.Conv2d(dim, self.out_dim, 1)
        self.act = nn.LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.pw_conv(self.act(self.dw_conv(x)) + x))
        return out + x if self.residual else out


class MobiVari2(nn.Module):
    """MobileNet-v2 variant: grouped 1x1 expansion, LeakyReLU, depthwise conv + expansion, LeakyReLU,
    1x1 to ``out_dim`` (+ input when the widths agree)."""

    def __init__(self, dim: int, out_dim: int | None = None, *, exp_factor: float, expand_groups: int) -> None:
        super().__init__()
        self.out_dim = out_dim or dim
        self.residual = self.out_dim == dim
        expand_dim = int(dim * exp_factor)
        # The official rounding: up to the next multiple of the groups, one whole group more when exact.
        expand_dim += expand_groups - expand_dim % expand_groups
        # Registered in the official order (its dw_conv and pw_conv come from MobiVari1's constructor).
        self.dw_conv = nn.Conv2d(expand_dim, expand_dim, 3, padding=1, groups=expand_dim)
        self.pw_conv = nn.Conv2d(expand_dim, self.out_dim, 1)
        self.exp_conv = nn.Conv2d(dim, expand_dim, 1, groups=expand_groups)
        self.act = nn.LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.act(self.exp_conv(x))
        out = self.pw_conv(self.act(self.dw_conv(x1) + x1))
        return out + x if self.residual else out


def _mobivari(mv_ver: int, dim: int, out_dim: int | None, exp_factor: float, expand_groups: int) -> nn.Module:
    if mv_ver == 1:
        return MobiVari1(dim, out_dim)
    return MobiVari2(dim, out_dim, exp_factor=exp_factor, expand_groups=expand_groups)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_ratio: float) -> None:
        super().__init__()
        self.hidden = nn.Conv2d(dim, int(dim * hidden_ratio), 1)
        self.out = nn.Conv2d(int(dim * hidden_ratio), dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.hidden(x)))


class DRAMiTransformer(nn.Module):
    """D-RAMiT block: spatial and channel heads in parallel, mixed; post-norm residual attention + FFN."""

    def __init__(
        self, dim: int, num_head: int, chsa_head: int, window_size: int, shift: int, *, qkv_bias: bool,
        hidden_ratio: float, mobivari: nn.Module,
    ) -> None:
        super().__init__()
        self.spatial_heads = num_head - chsa_head
        self.qkv_proj = QKVProjection(dim, num_head, qkv_bias)
        self.sp_attn = SpatialSelfAttention(dim // num_head, self.spatial_heads, num_head, window_size, shift)
        self.ch_attn = ChannelSelfAttention(dim // num_head, chsa_head)
        self.mobivari = mobivari
        self.norm1 = ReshapeLayerNorm(dim)
        self.ffn = FeedForward(dim, hidden_ratio)
        self.norm2 = ReshapeLayerNorm(dim)

    def forward(
        self, x: torch.Tensor, sp_: torch.Tensor | None, ch_: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block's output, its spatial and channel heads' outputs (the next block's helpers) and
        their mix (the stage's attention map for H-RAMi)."""
        qkv = self.qkv_proj(x)
        sp = self.sp_attn(qkv[:, : self.spatial_heads], ch=ch_)
        ch = self.ch_attn(qkv[:, self.spatial_heads :], sp=sp_)
        attn0 = self.mobivari(torch.cat([sp, ch], dim=1))
        attn = self.norm1(attn0) + x
        return self.norm2(self.ffn(attn)) + attn, sp, ch, attn0


class EncoderStage(nn.Module):
    def __init__(self, depth: int, make_block) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for d in range(depth):
            self.blocks.add_module(f"block{d}", make_block(d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sp = ch = None
        for block in self.blocks:
            x, sp, ch, attn = block(x, sp, ch)
        return x, attn


class Downsizing(nn.Module):
    """2x2 space-to-depth, LayerNorm, MobileNet-like block 4C -> C."""

    def __init__(self, dim: int, reduction: nn.Module) -> None:
        super().__init__()
        self.norm = ReshapeLayerNorm(4 * dim)
        self.reduction = reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corners = (x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2])
        return self.reduction(self.norm(torch.cat(corners, dim=1)))


class Bottleneck(nn.Module):
    """Stages 1-3 plus the pooled shallow features, shuffled to full size, mixed to C and normalised."""

    def __init__(self, dim: int, mobivari: nn.Module) -> None:
        super().__init__()
        self.mobivari = mobivari
        self.norm = ReshapeLayerNorm(dim)

    def forward(self, shallow: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
        full = []
        pooled = shallow
        for i, stage in enumerate(stages):
            if i:
                pooled = F.max_pool2d(pooled, 2)
            full.append(F.pixel_shuffle(stage + F.leaky_relu(pooled), 2**i))
        return self.norm(self.mobivari(torch.cat(full, dim=1)))


class HRAMi(nn.Module):
    """Hierarchical reciprocal attention mixing: every stage's attention map at full size, mixed to C."""

    def __init__(self, mobivari: nn.Module) -> None:
        super().__init__()
        self.mobivari = mobivari

    def forward(self, attns: list[torch.Tensor]) -> torch.Tensor:
        *encoder, last = attns
        full = [F.pixel_shuffle(a, 2**i) for i, a in enumerate(encoder)]
        return self.mobivari(torch.cat([*full, last], dim=1))


class Reconstruction(nn.Module):
    def __init__(self, dim: int, scale: int, mobivaris: list[nn.Module]) -> None:
        super().__init__()
        self.mobivari = nn.ModuleList()
        for i, block in enumerate(mobivaris):
            self.mobivari.add_module(f"mobivari{i}", block)
        self.conv = nn.Conv2d(dim, 3 * scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.final_conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.mobivari:
            x = block(x)
        return self.final_conv(self.shuffle(self.conv(x)))


class RAMiT(nn.Module):
    def __init__(
        self,
        *,
        scale: int,
        dim: int,
        depths: tuple[int, int, int, int],
        num_heads: tuple[int, int, int, int],
        chsa_head_ratio: float,
        window_size: int,
        hidden_ratio: float,
        qkv_bias: bool,
        mv_ver: int,
        exp_factor: float,
        expand_groups: int,
        tail_exp_factor: float,
        tail_expand_groups: int,
        mix_exp_factor: float,
        mix_expand_groups: int,
        tail_mv: int,
    ) -> None:
        super().__init__()
        if scale not in _STD:
            raise ValueError(f"RAMiT's normalisation statistics exist for x2, x3, x4, not x{scale}")
        if len(depths) != _NUM_STAGES or len(num_heads) != _NUM_STAGES:
            raise ValueError(f"depths and num_heads need {_NUM_STAGES} entries (one per stage)")
        if mv_ver not in (1, 2):
            raise ValueError(f"mv_ver must be 1 or 2, got {mv_ver}")
        if dim % 16:
            raise ValueError(f"dim must be a multiple of 16 (stage 3 is shuffled up by 4), got {dim}")
        for heads in num_heads:
            chsa = int(heads * chsa_head_ratio)
            if not 0 < chsa < heads or dim % heads:
                raise ValueError(
                    f"every stage needs spatial and channel heads dividing dim {dim}: "
                    f"{heads} heads with chsa_head_ratio {chsa_head_ratio} give {chsa} channel heads"
                )
        self.scale = scale
        self.unit = _DOWNSAMPLING * window_size
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD[scale]).view(1, 3, 1, 1), persistent=False)

        def mobivari(width: int, out_dim: int | None = None) -> nn.Module:
            return _mobivari(mv_ver, width, out_dim, exp_factor, expand_groups)

        def stage(depth: int, heads: int) -> EncoderStage:
            chsa = int(heads * chsa_head_ratio)
            return EncoderStage(depth, lambda d: DRAMiTransformer(
                dim, heads, chsa, window_size, window_size // 2 if d % 2 else 0,
                qkv_bias=qkv_bias, hidden_ratio=hidden_ratio, mobivari=mobivari(dim),
            ))

        self.shallow = ShallowModule(3, dim)
        self.stage1 = stage(depths[0], num_heads[0])
        self.down1 = Downsizing(dim, mobivari(4 * dim, dim))
        self.stage2 = stage(depths[1], num_heads[1])
        self.down2 = Downsizing(dim, mobivari(4 * dim, dim))
        self.stage3 = stage(depths[2], num_heads[2])
        self.bottleneck = Bottleneck(
            dim, _mobivari(mv_ver, dim + dim // 4 + dim // 16, dim, mix_exp_factor, mix_expand_groups)
        )
        self.stage4 = stage(depths[3], num_heads[3])
        self.attn_mix = HRAMi(
            _mobivari(mv_ver, 2 * dim + dim // 4 + dim // 16, dim, mix_exp_factor, mix_expand_groups)
        )
        self.to_target = Reconstruction(
            dim, scale, [_mobivari(mv_ver, dim, None, tail_exp_factor, tail_expand_groups) for _ in range(tail_mv)]
        )
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        mean, std = self.mean.to(x.dtype), self.std.to(x.dtype)
        x = (pad_symmetric(x, self.unit) - mean) / std  # as the official tester pads, then img_norm
        shallow = self.shallow(x)
        o1, attn1 = self.stage1(shallow)
        o2, attn2 = self.stage2(self.down1(o1))
        o3, attn3 = self.stage3(self.down2(o2))
        o4, attn4 = self.stage4(self.bottleneck(shallow, [o1, o2, o3]))
        mix = self.attn_mix([attn1, attn2, attn3, attn4])
        out = self.to_target(o4 * mix + shallow) * std + mean
        return out[..., : h * self.scale, : w * self.scale]


def _init_weights(module: nn.Module) -> None:
    # The official initialisation (Swin V2's): LayerNorms at (1, 0); convolutions keep PyTorch's default.
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _args_from_weights(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The width and the stages' depths of RAMiT weights (the blocks are named ``stageN.blocks.blockD``)."""
    depths = tuple(
        len({key.split(".")[2] for key in state if key.startswith(f"stage{i}.blocks.")})
        for i in range(1, _NUM_STAGES + 1)
    )
    if not all(depths):
        raise KeyError("a RAMiT stage without blocks")
    return {"dim": state["shallow.conv.weight"].shape[0], "depths": depths}


def _info(paper_variant: str) -> ModelInfo:
    return ModelInfo(
        paper="Choi et al., 'Reciprocal Attention Mixing Transformer for Lightweight Image Restoration', "
        f"CVPRW 2024 ({paper_variant})",
        origin="https://github.com/rami0205/RAMiT",
        licence="unknown",
        scales=(2, 3, 4),
        # Stage 3 runs at 1/4 resolution in windows: sides must be multiples of 4 windows (32).
        size_multiple=lambda a: _DOWNSAMPLING * a["window_size"],
        pad_mode="inside",
        # The channel attention is global over the (padded) image, so no finite radius makes tiling
        # exact; two units (64 LR px) cover a window block's reach at 1/4 resolution twice over.
        receptive_radius=lambda a: 2 * _DOWNSAMPLING * a["window_size"],
        half_precision_safe=False,  # not verified: float16 was never run against the released weights
        args_from_weights=_args_from_weights,
    )


@register_model(_info("RAMiT"))
def ramit(
    *,
    scale: int,
    dim: int = 64,
    depths: tuple[int, int, int, int] = (6, 4, 4, 6),
    num_heads: tuple[int, int, int, int] = (4, 4, 4, 4),
    chsa_head_ratio: float = 0.25,
    window_size: int = 8,
    hidden_ratio: float = 2.0,
    mv_ver: int = 2,
    exp_factor: float = 1.2,
    expand_groups: int = 4,
    mix_exp_factor: float = 1.2,
    mix_expand_groups: int = 4,
) -> RAMiT:
    """RAMiT (``lightweight_sr/RAMiT.yml``): MobileNet-v2-like blocks, 940K / 948K / 961K parameters."""
    return RAMiT(
        scale=scale, dim=dim, depths=tuple(depths), num_heads=tuple(num_heads), chsa_head_ratio=chsa_head_ratio,
        window_size=window_size, hidden_ratio=hidden_ratio, qkv_bias=True, mv_ver=mv_ver, exp_factor=exp_factor,
        expand_groups=expand_groups, tail_exp_factor=exp_factor, tail_expand_groups=expand_groups,
        mix_exp_factor=mix_exp_factor, mix_expand_groups=mix_expand_groups, tail_mv=2,
    )


@register_model(_info("RAMiT-1"))
def ramit_1(
    *,
    scale: int,
    dim: int = 64,
    depths: tuple[int, int, int, int] = (6, 4, 4, 6),
    num_heads: tuple[int, int, int, int] = (4, 4, 4, 4),
    chsa_head_ratio: float = 0.25,
    window_size: int = 8,
    hidden_ratio: float = 2.0,
) -> RAMiT:
    """RAMiT-1 (``lightweight_sr/RAMiT-1.yml``): MobileNet-v1-like blocks, 823K / 832K / 844K parameters."""
    return RAMiT(
        scale=scale, dim=dim, depths=tuple(depths), num_heads=tuple(num_heads), chsa_head_ratio=chsa_head_ratio,
        window_size=window_size, hidden_ratio=hidden_ratio, qkv_bias=True, mv_ver=1, exp_factor=1.2,
        expand_groups=4, tail_exp_factor=1.2, tail_expand_groups=4, mix_exp_factor=1.2, mix_expand_groups=4,
        tail_mv=2,
    )


@register_model(_info("RAMiT-slimSR"))
def ramit_slimsr(
    *,
    scale: int,
    dim: int = 48,
    depths: tuple[int, int, int, int] = (8, 2, 2, 8),
    num_heads: tuple[int, int, int, int] = (4, 4, 4, 4),
    chsa_head_ratio: float = 0.25,
    window_size: int = 8,
    hidden_ratio: float = 2.0,
    mix_exp_factor: float = 2.0,
    mix_expand_groups: int = 1,
) -> RAMiT:
    """RAMiT-slimSR (``ramit_slimsr.py``, ``lightweight_sr/RAMiT-slimSR.yml``): 48 channels, deeper
    full-resolution stages, wider single-group bottleneck and H-RAMi blocks; 581K / 588K / 597K."""
    return RAMiT(
        scale=scale, dim=dim, depths=tuple(depths), num_heads=tuple(num_heads), chsa_head_ratio=chsa_head_ratio,
        window_size=window_size, hidden_ratio=hidden_ratio, qkv_bias=True, mv_ver=2, exp_factor=1.2,
        expand_groups=4, tail_exp_factor=1.2, tail_expand_groups=4, mix_exp_factor=mix_exp_factor,
        mix_expand_groups=mix_expand_groups, tail_mv=2,
    )
