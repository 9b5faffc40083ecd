"""TCFDN: a hybrid Transformer-CNN network with multi-level feature distillation.

Paper: "A hybrid of transformer and CNN for efficient single image super-resolution via multi-level
distillation", Displays (Elsevier), 2023 (as cited by the study in /work/shared/seed; authors and
volume not verifiable offline). Official code: none found (no repository, no released weights, no
entry in the reference state-dict listing or in paper-results.md), so this is a reconstruction written
for srlab from the paper's description. The paper's own name for the whole network could not be
confirmed offline; srlab calls it TCFDN (Transformer-CNN feature distillation network) after its
building block, the Transformer-CNN feature distillation block (TCFDB). Licence: srlab's own code.

Structure (paper, Sec. 3):
- shallow feature extraction: one 3x3 conv, 3 -> C (``fea_conv``);
- deep feature distillation: a stack of TCFDBs (``B1`` ... ``Bn``). Each TCFDB feeds its input to two
  paths in parallel: a *distillation* path of 1x1 convs that distil and reduce channels (IMDN/RFDN
  style), and a *refinement* path of cascaded enhanced Swin transformer layers (ESTL) that gradually
  refine the features. The distilled features and the (reduced) refined output are concatenated, fused
  by a 1x1 conv and re-weighted by enhanced spatial attention (ESA, RFANet's, :class:`srlab.layers.ESA`
  with ``grid_aligned=False``);
- ESTL: a Swin transformer layer, x + (S)W-MSA(LN(x)), then x + CFF(LN(x)), whose MLP is replaced by a
  convolutional feed-forward network (CFF): tokens are reshaped to a feature map around a depth-wise
  3x3 conv between the two linear layers;
- multi-level distillation across blocks: every TCFDB's output is concatenated, fused by a 1x1 conv
  (+ LeakyReLU) and a 3x3 conv, with a global skip from the shallow features;
- reconstruction: a 3x3 conv to 3 s^2 channels + PixelShuffle(s).

Choices made where the paper's text (as available here) does not fix them - every one is a guess,
stated so that nobody mistakes this model for a reproduction:
- the TCFDB follows RFDN's RFDB layout with the shallow residual blocks replaced by ESTLs: three stages
  each take a 1x1 distilled branch (C -> C/2, LeakyReLU 0.05) of the current features and refine them
  with one ESTL; a 3x3 conv (C -> C/2, LeakyReLU) reduces the last refined features; the four C/2 maps
  are concatenated, fused by a 1x1 conv (2C -> C) and gated by ESA. No block-level skip (as the RFDB;
  each ESTL is residual). Parameter names follow RFDN's (``c1_d``, ``c1_r``, ..., ``c5``, ``esa``);
- ESTLs alternate plain and shifted (by ws/2) windows over the whole network (layer k is shifted when
  k is odd), so consecutive blocks do not start on the same window grid;
- C = 48 channels, 6 TCFDBs (RFDN's configuration), 6 heads (head dim 8), 8x8 windows, CFF expansion
  ratio 2 with GELU after fc1 and after the depth-wise conv; Swin v1 attention with a learned relative
  position bias table (:class:`srlab.layers.swin.WindowAttention`); LayerNorm eps 1e-5;
- input and output in [0, 1] with no mean shift (no released weights fix a range); the input is
  reflect-padded (bottom/right) to a multiple of the window size and the output cropped back, as
  SwinIR does; shifted-window masks are computed for the padded size at forward time (cached per
  size), never stored;
- parameter counting follows SwinIR-light's convention (relative position bias tables left out,
  ``ModelInfo.uncounted_parameters``); the paper's own figures could not be found offline.
- the training-time contrastive loss of the paper (Sec. 3.4.2) is a loss, not part of the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers import ESA
from srlab.layers.upsamplers import image_head
from srlab.layers.padding import pad_to_multiple
from srlab.layers.swin import (
    WindowAttention,
    init_swin_weights,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from srlab.models.registry import ModelInfo, register_model

_NEG_SLOPE = 0.05  # RFDN's LeakyReLU slope, used on the distillation path


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, _NEG_SLOPE)


class CFF(nn.Module):
    """Convolutional feed-forward network: fc1 (C -> rC), GELU, depth-wise 3x3 conv on the token map,
    GELU, fc2 (rC -> C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        """x: (B, H*W, C) tokens in row-major order."""
        b, n, _ = x.shape
        h, w = x_size
        x = F.gelu(self.fc1(x))
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        x = F.gelu(self.dwconv(x))
        return self.fc2(x.flatten(2).transpose(1, 2))


class ESTL(nn.Module):
    """Enhanced Swin transformer layer on a feature map (B, C, H, W), H and W multiples of the window:
    x + (S)W-MSA(LN(x)), then x + CFF(LN(x))."""

    def __init__(self, dim: int, num_heads: int, *, window_size: int, shift_size: int, mlp_ratio: float) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size}")
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.cff = CFF(dim, int(dim * mlp_ratio))

    def _window_attention(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        h, w = x_size
        ws, shift = self.window_size, self.shift_size
        grid = x.view(b, h, w, c)
        mask = None
        if shift:
            grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
            mask = shifted_window_mask(h, w, ws, shift, device=x.device).to(x.dtype)
        windows = window_partition(grid, ws).view(-1, ws * ws, c)
        grid = window_reverse(self.attn(windows, mask).view(-1, ws, ws, c), ws, h, w)
        if shift:
            grid = torch.roll(grid, shifts=(shift, shift), dims=(1, 2))
        return grid.reshape(b, h * w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self._window_attention(self.norm1(tokens), (h, w))
        tokens = tokens + self.cff(self.norm2(tokens), (h, w))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class TCFDB(nn.Module):
    """Transformer-CNN feature distillation block: a 1x1 distillation path beside a path of cascaded
    ESTLs, concatenated, fused by a 1x1 conv and gated by ESA. ``first_layer``: the network-wide index
    of its first ESTL (odd layers use shifted windows)."""

    def __init__(
        self, channels: int, num_heads: int, *, window_size: int, mlp_ratio: float, first_layer: int
    ) -> None:
        super().__init__()
        distilled = channels // 2

        def estl(k: int) -> ESTL:
            shift = window_size // 2 if (first_layer + k) % 2 else 0
            return ESTL(channels, num_heads, window_size=window_size, shift_size=shift, mlp_ratio=mlp_ratio)

        self.c1_d = nn.Conv2d(channels, distilled, 1)
        self.c1_r = estl(0)
        self.c2_d = nn.Conv2d(channels, distilled, 1)
        self.c2_r = estl(1)
        self.c3_d = nn.Conv2d(channels, distilled, 1)
        self.c3_r = estl(2)
        self.c4 = nn.Conv2d(channels, distilled, 3, padding=1)
        self.c5 = nn.Conv2d(4 * distilled, channels, 1)
        self.esa = ESA(channels, grid_aligned=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = _lrelu(self.c1_d(x))
        r1 = self.c1_r(x)
        d2 = _lrelu(self.c2_d(r1))
        r2 = self.c2_r(r1)
        d3 = _lrelu(self.c3_d(r2))
        r3 = self.c3_r(r2)
        d4 = _lrelu(self.c4(r3))
        return self.esa(self.c5(torch.cat((d1, d2, d3, d4), dim=1)))


class TCFDN(nn.Module):
    """Shallow 3x3 conv, TCFDBs, multi-level fusion of all block outputs, pixel-shuffle reconstruction."""

    # No official checkpoints exist; nothing derived is stored (the masks are built per input size).
    derived_checkpoint_keys: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        scale: int,
        channels: int,
        num_blocks: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        upsampler: str = "subpixel",
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.window_size = window_size
        self.fea_conv = nn.Conv2d(3, channels, 3, padding=1)
        for i in range(num_blocks):
            block = TCFDB(channels, num_heads, window_size=window_size, mlp_ratio=mlp_ratio, first_layer=3 * i)
            self.add_module(f"B{i + 1}", block)
        self.c = nn.Sequential(nn.Conv2d(num_blocks * channels, channels, 1), nn.LeakyReLU(_NEG_SLOPE))
        self.LR_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsampler = image_head(upsampler, in_channels=channels, scale=scale)
        init_swin_weights(self)  # linear layers trunc-normal (std 0.02), LayerNorms at identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        shallow = self.fea_conv(pad_to_multiple(x, self.window_size, "reflect"))
        features = shallow
        outputs = []
        for i in range(1, self.num_blocks + 1):
            features = getattr(self, f"B{i}")(features)
            outputs.append(features)
        fused = self.LR_conv(self.c(torch.cat(outputs, dim=1))) + shallow
        out = self.upsampler(fused)
        return out[..., : h * self.scale, : w * self.scale]


_PAPER = (
    "A hybrid of transformer and CNN for efficient single image super-resolution via multi-level "
    "distillation (Displays 2023); network 'TCFDN' (srlab's name, built from TCFDBs and ESTLs); "
    "reconstruction, no official code"
)


def _radius(a: Mapping[str, Any]) -> int:
    """Per TCFDB: 3 ESTLs (window attention reaches ws - 1 tokens, the depth-wise conv 1), c4 (1) and
    ESA (~40 LR pixels through its strided conv, 7x7/3 pool and three 3x3 convs on the coarse grid);
    plus fea_conv, LR_conv and the upsampling conv."""
    return a["num_blocks"] * (3 * a["window_size"] + 1 + 40) + 3


@register_model(
    ModelInfo(
        paper=_PAPER,
        scales=(2, 3, 4),
        origin="srlab",
        licence="Apache-2.0",
        size_multiple=lambda a: a["window_size"],
        pad_mode="inside",
        receptive_radius=_radius,
        reparameterizable=False,
        half_precision_safe=False,  # not verified: no weights to test float16 with
        # SwinIR-light's convention (the paper's own counting convention could not be checked).
        uncounted_parameters=("relative_position_bias_table",),
    )
)
def tcfdn(
    *,
    scale: int,
    channels: int = 48,
    num_blocks: int = 6,
    num_heads: int = 6,
    window_size: int = 8,
    mlp_ratio: float = 2.0,
    upsampler: str = "subpixel",
) -> TCFDN:
    """TCFDN (reconstruction): 6 TCFDBs of 48 channels, 3 ESTLs each (6 heads, 8x8 windows, CFF ratio 2);
    no official weights."""
    return TCFDN(
        scale=scale, channels=channels, num_blocks=num_blocks, num_heads=num_heads,
        window_size=window_size, mlp_ratio=mlp_ratio, upsampler=upsampler,
    )
