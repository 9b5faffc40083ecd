"""SAFMN and SAFMN++: spatially-adaptive feature modulation for efficient super-resolution.

Paper: Long Sun, Jiangxin Dong, Jinhui Tang, Jinshan Pan, "Spatially-Adaptive Feature Modulation for
Efficient Image Super-Resolution", ICCV 2023. Official code: sunny2109/SAFMN (Apache-2.0, licence file
in the repository's ``LICENSE/`` folder; BasicSR-based), ``basicsr/archs/safmn_arch.py`` (class
``SAFMN``), read at commit abe5ffd. SAFMN++ is the authors' NTIRE 2024 Efficient SR entry (team 23):
``models/team23_safmnpp.py`` (class ``SAFMNPP``) of the challenge repository Amazingren/NTIRE2024_ESR
(MIT), read from the copy the authors publish in sunny2109/SAFMN ``NTIRE2024_ESR/`` (commit ed962b6);
its ``test_demo.py`` builds ``SAFMNPP(dim=36, n_blocks=6, ffn_scale=1.5, upscaling_factor=4)`` and loads
``params_ema`` from ``model_zoo/team23_safmnpp.pth`` with data range 1.

SAFMN: a 3x3 conv (3 -> C), N attention blocks with a long residual around them, and a 3x3 conv to
3*s^2 channels + PixelShuffle(s). An attention block is ``x + SAFM(LN(x))`` then ``x + CCM(LN(x))``
with channel LayerNorms (eps 1e-6, weight and bias). The SAFM splits the channels into four chunks:
the first goes through a depth-wise 3x3 conv at full resolution, chunk i (i = 1, 2, 3) is adaptively
max-pooled to (H // 2^i, W // 2^i), filtered by a depth-wise 3x3 conv and upsampled back (nearest);
the chunks are concatenated, mixed by a 1x1 conv, passed through GELU and multiply the block input.
The CCM is a 3x3 conv (C -> 2C) + GELU + 1x1 conv (2C -> C). SAFMN: C=36, N=8; SAFMN-L (the
classic-SR model): C=128, N=16.

SAFMN++: bias-free convolutions throughout; a bilinearly upsampled copy of the input
(``align_corners=False``) is added to the output; no LayerNorms and no long residual. Its block is
``x + CCM(SimpleSAFM(x))``: SimpleSAFM projects with a 3x3 conv (C -> C), splits off C/3 channels which
are max-pooled to (H // 8, W // 8), filtered depth-wise (3x3), upsampled bilinearly, passed through GELU
and multiplied with themselves (the unpooled C/3 channels); the result is concatenated with the other
2C/3 channels, passed through GELU and a 1x1 conv. Its CCM is a 3x3 conv (C -> 1.5C) + GELU + 1x1 conv.
C=36, six blocks, x4 only.

Input and output are RGB in [0, 1], as in the official code (no mean shift, no 255 scaling). Module
and parameter names are the official ones, so the official checkpoints load strictly.

Input size: the official models need no size multiple: adaptive pooling accepts any size, and the
published results were computed on unpadded images (padding to a multiple of 8 would move the pooling
grid and change the output), so ``size_multiple`` is 1. They do need at least 8 pixels per side
(H // 8 >= 1); the official code fails below that. Because the pooling grid follows the size of the
input, tiled inference is close to, not bit-equal with, untiled inference.

Note on SAFMN++'s released weights: its gate multiplies features by a function of themselves, so on
out-of-distribution input such as uniform noise the features grow block after block (to ~1e27 in
float32, and overflow in float16), with the official code as here; on natural images they stay below
~1 and float16 agrees with float32 to ~3e-3.

Deviations from the official code (none change the function in float32 or the state dict): the
LayerNorm is ``F.layer_norm`` (:class:`srlab.layers.LayerNorm2d`), whose statistics are accumulated in
float32 for half-precision inputs (the official one computes them in the input's dtype); inputs
smaller than 8 pixels in a side, which the official code rejects, are replicate-padded to 8 and the
output cropped.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.norm import LayerNorm2d
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ArgsReader, Derived, ModelInfo, register_model

MIN_SIDE = 8  # SAFM pools to H // 8 (SAFMN's coarsest level, SAFMN++'s only one)


def max_pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_max_pool2d(x, size)``, through ``F.max_pool2d`` where ``size`` divides the input's: the
    same windows, so the same values, and on bfloat16 channels_last maps 0.44x the time (36 x 180 x 320).
    Where it does not divide, compiled graphs take :func:`_adaptive_max_pool_by_sliding_windows` (the same
    values), which inductor fuses, where ``adaptive_max_pool2d`` stays a call of its own (9 x 180 x 320 ->
    22 x 40, AMD EPYC Zen 4, 1 thread: 0.09-0.24 against 0.9-1.0 ms, float32 or bfloat16; eager, the
    sliding form is the slow one: 6-21 ms)."""
    (height, width), (out_h, out_w) = x.shape[-2:], size
    if height % out_h or width % out_w:
        if torch.compiler.is_compiling():
            return _adaptive_max_pool_by_sliding_windows(_adaptive_max_pool_by_sliding_windows(x, out_h, 2), out_w, 3)
        return F.adaptive_max_pool2d(x, size)
    return F.max_pool2d(x, (height // out_h, width // out_w))


def _adaptive_max_pool_by_sliding_windows(x: torch.Tensor, out: int, dim: int) -> torch.Tensor:
    """``adaptive_max_pool2d`` along ``dim`` (2: rows, 3: columns) alone. Its window i spans
    ``[floor(i * n / out), ceil((i + 1) * n / out))`` of the ``n`` positions, k or k + 1 of them: the maximum
    of the k-long window sliding from each start, and for the longer windows of the position after it too."""
    n = x.shape[dim]
    starts = [(i * n) // out for i in range(out)]
    lengths = [((i + 1) * n + out - 1) // out - start for i, start in enumerate(starts)]
    k = min(lengths)
    sliding = F.max_pool2d(x, (k, 1) if dim == 2 else (1, k), stride=1)
    pooled = sliding.index_select(dim, torch.tensor(starts, device=x.device))
    if max(lengths) == k:
        return pooled
    after = x.index_select(dim, torch.tensor([min(start + k, n - 1) for start in starts], device=x.device))
    longer = torch.tensor([length > k for length in lengths], device=x.device).view((-1, 1) if dim == 2 else (1, -1))
    return torch.where(longer, torch.maximum(pooled, after), pooled)


class CCM(nn.Module):
    """Convolutional channel mixer: 3x3 conv (C -> hidden) + GELU + 1x1 conv (hidden -> C)."""

    def __init__(self, dim: int, growth: float) -> None:
        super().__init__()
        hidden = int(dim * growth)
        self.ccm = nn.Sequential(nn.Conv2d(dim, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation over ``levels`` scales (chunk i pooled by 2^i)."""

    def __init__(self, dim: int, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        chunk = dim // levels
        self.mfr = nn.ModuleList(nn.Conv2d(chunk, chunk, 3, padding=1, groups=chunk) for _ in range(levels))
        self.aggr = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        parts = []
        for level, (chunk, conv) in enumerate(zip(x.chunk(self.levels, dim=1), self.mfr)):
            if level == 0:
                parts.append(conv(chunk))
                continue
            pooled = max_pool_to(chunk, (height // 2**level, width // 2**level))
            parts.append(F.interpolate(conv(pooled), size=(height, width), mode="nearest"))
        return self.act(self.aggr(torch.cat(parts, dim=1))) * x


class AttBlock(nn.Module):
    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.norm2 = LayerNorm2d(dim, eps=1e-6)
        self.safm = SAFM(dim)
        self.ccm = CCM(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(self.norm1(x)) + x
        return self.ccm(self.norm2(x)) + x


class SimpleSAFM(nn.Module):
    """SAFMN++'s single-level modulation: a third of the projected channels gated at 1/8 resolution."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.dim = dim
        self.chunk_dim = dim // ratio
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.dwconv = nn.Conv2d(self.chunk_dim, self.chunk_dim, 3, padding=1, groups=self.chunk_dim, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        gated, rest = self.proj(x).split([self.chunk_dim, self.dim - self.chunk_dim], dim=1)
        coarse = self.dwconv(max_pool_to(gated, (height // 8, width // 8)))
        coarse = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        modulated = self.act(coarse) * gated
        return self.out(self.act(torch.cat((rest, modulated), dim=1)))


class CCMPlus(nn.Module):
    """SAFMN++'s channel mixer (bias-free; official names ``conv1``, ``conv2``)."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        hidden = int(dim * ffn_scale)
        self.conv1 = nn.Conv2d(dim, hidden, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(hidden, dim, 1, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class AttBlockPlus(nn.Module):
    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        self.conv1 = SimpleSAFM(dim, ratio=3)
        self.conv2 = CCMPlus(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


def _pad_to_min_side(x: torch.Tensor) -> torch.Tensor:
    height, width = x.shape[-2:]
    pad_h, pad_w = max(0, MIN_SIDE - height), max(0, MIN_SIDE - width)
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


class SAFMN(nn.Module):
    def __init__(
        self, *, scale: int, dim: int, n_blocks: int, ffn_scale: float, upsampler: str = "subpixel"
    ) -> None:
        super().__init__()
        if dim % 4:
            raise ValueError(f"dim must be a multiple of 4 (the SAFM's four levels), got {dim}")
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1)
        self.feats = nn.Sequential(*(AttBlock(dim, ffn_scale) for _ in range(n_blocks)))
        self.to_img = image_head(upsampler, in_channels=dim, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        features = self.to_feat(_pad_to_min_side(x))
        out = self.to_img(self.feats(features) + features)
        return out[..., : height * self.scale, : width * self.scale]


class SAFMNPP(nn.Module):
    def __init__(
        self, *, scale: int, dim: int, n_blocks: int, ffn_scale: float, upsampler: str = "subpixel"
    ) -> None:
        super().__init__()
        if dim < 3:
            raise ValueError(f"dim must be >= 3, got {dim}")
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.feats = nn.Sequential(*(AttBlockPlus(dim, ffn_scale) for _ in range(n_blocks)))
        self.to_img = image_head(upsampler, in_channels=dim, scale=scale, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = _pad_to_min_side(x)
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        out = self.to_img(self.feats(self.to_feat(x))) + base
        return out[..., : height * self.scale, : width * self.scale]


# Receptive radius per block, in LR pixels, for the large tiles tiling uses: a pooled cell is about 8
# pixels (a little more where H is not a multiple of 8); the depth-wise 3x3 on the pooled grid reaches
# one cell each way (nearest upsampling: ~2 cells = 17 px) or, with bilinear upsampling, two (~25 px);
# plus the 3x3 convs of the block, rounded up.
_SAFMN_BLOCK_RADIUS = 20  # 2 * 8 + 1 (pooled path) + 1 (CCM 3x3), with margin
_SAFMNPP_BLOCK_RADIUS = 28  # 1 (proj 3x3) + 3 * 8 + 1 (pooled path, bilinear) + 1 (CCM 3x3), with margin


def _safmn_args(weights: Mapping[str, torch.Tensor]) -> dict[str, int | float]:
    """Width from the first convolution, depth from the blocks' names, the FFN's expansion from its first conv."""
    dim = weights["to_feat.weight"].shape[0]
    return {
        "dim": dim,
        "n_blocks": sum(1 for k in weights if k.startswith("feats.") and k.endswith(".norm1.weight")),
        "ffn_scale": weights["feats.0.ccm.ccm.0.weight"].shape[0] / dim,
    }


def _info(
    paper: str, scales: tuple[int, ...], radius: Derived, *, origin: str, licence: str,
    args_from_weights: ArgsReader | None = None,
) -> ModelInfo:
    return ModelInfo(
        paper=paper,
        origin=origin,
        licence=licence,
        scales=scales,
        size_multiple=1,  # adaptive pooling takes any size >= 8 (see the module docstring)
        receptive_radius=radius,
        reparameterizable=False,
        half_precision_safe=True,
        args_from_weights=args_from_weights,
    )


_PAPER = "Sun et al., Spatially-Adaptive Feature Modulation for Efficient Image Super-Resolution, ICCV 2023"
_OFFICIAL = {"origin": "https://github.com/sunny2109/SAFMN", "licence": "Apache-2.0", "args_from_weights": _safmn_args}


@register_model(_info(_PAPER, (2, 3, 4), lambda a: a["n_blocks"] * _SAFMN_BLOCK_RADIUS + 2, **_OFFICIAL))
def safmn(
    *, scale: int, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0, upsampler: str = "subpixel"
) -> SAFMN:
    """SAFMN, the efficient-SR model (~0.23 M parameters)."""
    return SAFMN(scale=scale, dim=dim, n_blocks=n_blocks, ffn_scale=ffn_scale, upsampler=upsampler)


@register_model(
    _info(_PAPER + " (SAFMN-L, classic SR)", (2, 3, 4), lambda a: a["n_blocks"] * _SAFMN_BLOCK_RADIUS + 2, **_OFFICIAL)
)
def safmn_l(
    *, scale: int, dim: int = 128, n_blocks: int = 16, ffn_scale: float = 2.0, upsampler: str = "subpixel"
) -> SAFMN:
    """SAFMN-L, the large model of the paper's classic-SR comparison (~5.6 M parameters)."""
    return SAFMN(scale=scale, dim=dim, n_blocks=n_blocks, ffn_scale=ffn_scale, upsampler=upsampler)


@register_model(
    _info(
        "SAFMN++, NTIRE 2024 Efficient SR challenge entry (team 23) by the SAFMN authors",
        (4,),
        lambda a: a["n_blocks"] * _SAFMNPP_BLOCK_RADIUS + 3,
        origin="https://github.com/Amazingren/NTIRE2024_ESR",
        licence="MIT",
    )
)
def safmn_pp(
    *, scale: int, dim: int = 36, n_blocks: int = 6, ffn_scale: float = 1.5, upsampler: str = "subpixel"
) -> SAFMNPP:
    """SAFMN++ as released for NTIRE 2024 (x4, ~0.21 M parameters)."""
    return SAFMNPP(scale=scale, dim=dim, n_blocks=n_blocks, ffn_scale=ffn_scale, upsampler=upsampler)
