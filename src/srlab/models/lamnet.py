"""LAMNet: the linear adaptive mixer network for lightweight super-resolution.

Paper: Zhenyu Hu, Wanjie Sun, "Unifying Dimensions: A Linear Adaptive Mixer for Lightweight Image
Super-Resolution", arXiv:2409.17597 (first titled "... A Linear Adaptive Approach to ..."), IEEE TIP 2025.
Official code: zononhzy/LAMNet (CC BY-NC 4.0), read at commit 5b73a79 (2024-11-25):
``basicsr/archs/lamnet_arch.py`` (class ``LAMNet``), the focal separable attention extension
``basicsr/ops/fsa`` (``fsa_func.py``, ``src/cuda/fsa_im2col_cuda.cuh``) and the test options
``options/test_LAMNet_SRx{2,3,4}.yml`` / ``test_LAMNet_large_SRx{2,3,4}.yml``. This file is written from
that structure; module, parameter and buffer names are the official ones, so weights trained with the
official code load with strict key matching. The authors' weights are on Google Drive only (none in the
repository), so srlab registers none.

Structure, on RGB in [0, 1] less the DIV2K mean (added back at the end; ``img_range`` 1): a 3x3 conv
(3 -> 64); ``num_groups`` LAMixer groups, each ``num_blocks`` pairs of pre-norm residual blocks (a
channel layer norm, the layer, a learnt per-channel scale ``alpha``) -- an LSA mixer then a dual-gate
FFN -- with the group's own scaled skip; a 3x3 conv; the global skip scaled by ``alpha``; one 3x3 conv to
``3 * s^2`` channels and PixelShuffle (``UpsampleOneStep``).

- LSA mixer: a 1x1 conv, split in halves. The channel branch: 1x1 convs C/2 -> C/4 -> C/2 with ReLU.
  The spatial branch: focal separable attention (srlab.layers.focal_separable) along the rows, with
  per-pixel tap weights ``tanh`` of a depthwise (1 x patch) conv and a 1x1 conv to ``heads * K``
  channels, then along the columns with weights predicted the same way from the row result. The
  information exchange module crosses the two: the channel branch gated per pixel by
  ``sigmoid(mean_hw(spatial) . channel / C')`` (a sum over channels), the spatial branch per channel by
  ``sigmoid(spatial . mean_c(channel) / HW)`` (a sum over pixels); a 1x1 conv mixes the two.
- Dual-gate FFN: 1x1 conv to 2 x hidden, a 3x3 depthwise conv, halves x1, x2;
  ``gelu(x1) * x1`` and ``gelu(x1) * x2`` concatenated, 1x1 conv back.
- The layer norm normalises over channels per pixel (biased variance, eps 1e-5).

Variants (the test options): ``lamnet`` = 64 features, 4 groups of 6 blocks, K = 13 taps
(``kernel_loc`` (4, 6, 7), ``kernel_stride`` (1, 2, 4): a 23-pixel line), 4 heads, FFN expansion 1;
``lamnet_large`` = the same with 5 groups. Parameters of the official class (counted by running it):
lamnet 828,364 / 837,019 / 849,136 and lamnet_large 1,024,028 / 1,032,683 / 1,044,800 at x2 / x3 / x4
(the int32 ``kernel_map`` buffers are not parameters). No figure of the paper's tables was read here
(they were not available to this implementation), so no published figure is checked.

Cost: the tap weights and both exchange gates are computed from the image, but every operation runs
on every pixel, whatever the content: LAMNet's cost depends on the input's size only, not on its
content, so it does not join the adaptive-compute quality-cost curves. MACs: the focal separable
attention counts one multiply-add per tap and output element (the segment means are additions), the
exchange module's two products one per element pair, as matrix products are counted.

Deviations from the official code: the CUDA op is plain PyTorch here (runs on any device, exports to
ONNX, same values: tests/models/test_lamnet.py checks it against a per-pixel transcription of the
kernel, forward and gradients). With the same random weights the whole network equals the official
class run with that transcription in place of the extension (float64, difference 0.0; checked once from
/tmp, not part of the suite). The official mean is a plain tensor attribute re-cast on every call;
here it is a non-persistent buffer (not in the state dict, as in the official listing). Initialisation
as the official: truncated normal (std 0.02, cut at +-2 absolute) for every conv weight, zero biases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.focal_separable import FocalSeparableAggregation, focal_kernel_map, focal_patch_size
from srlab.models.registry import ModelInfo, register_model

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class LayerNormUnchanged(nn.Module):
    """Layer norm over the channels of every pixel of a (B, C, H, W) map, with per-channel affine."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        std = x.var(dim=1, keepdim=True, correction=0).add(self.eps).sqrt()
        return self.alpha * (x - mean) / std + self.beta


class PreNormResidual(nn.Module):
    """``x + alpha * fn(norm(x))``."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = LayerNormUnchanged(dim)
        self.fn = fn
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x)) * self.alpha + x


class DGFN(nn.Module):
    """Dual-gate FFN: ``project_out(cat(gelu(x1) * x1, gelu(x1) * x2))`` after a 1x1 and a depthwise 3x3."""

    def __init__(self, dim: int, expansion_factor: float) -> None:
        super().__init__()
        hidden = int(dim * expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2)
        self.project_out = nn.Conv2d(hidden * 2, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        gate = F.gelu(x1)
        return self.project_out(torch.cat([gate * x1, gate * x2], dim=1))


def spatial_interaction(channel_map: torch.Tensor, spatial_map: torch.Tensor) -> torch.Tensor:
    """Per-pixel gate on the channel branch (B, C, HW): its channels weighted by the spatial branch's
    channel means, summed, divided by C (the official divides by the mean vector's last size, C)."""
    means = spatial_map.mean(dim=-1).unsqueeze(1)  # (B, 1, C)
    return torch.sigmoid(means @ channel_map / means.shape[2]) * channel_map


def channel_interaction(channel_map: torch.Tensor, spatial_map: torch.Tensor) -> torch.Tensor:
    """Per-channel gate on the spatial branch (B, C, HW): its pixels weighted by the channel branch's
    pixel means, summed, divided by HW."""
    means = channel_map.mean(dim=1).unsqueeze(2)  # (B, HW, 1)
    return torch.sigmoid(spatial_map @ means / spatial_map.shape[2]) * spatial_map


class LSAMixer(nn.Module):
    """The dual-branch token mixer: a channel branch and focal separable attention, crossed by the
    information exchange module (see the module docstring)."""

    def __init__(
        self, dim: int, kernel_size: int, kernel_loc: tuple[int, ...], kernel_stride: tuple[int, ...], num_heads: int
    ) -> None:
        super().__init__()
        half = dim // 2
        if dim % 2 or half % num_heads:
            raise ValueError(f"dim / 2 must be a multiple of num_head: got dim {dim}, num_head {num_heads}")
        kernel_map = focal_kernel_map(kernel_size, tuple(kernel_loc), tuple(kernel_stride))
        patch = focal_patch_size(kernel_map)
        self.dim = half
        # (start, length) per tap, int32 as the official buffer (in its state dict); the op reads the
        # same map from Python so that it also runs on the meta device.
        self.register_buffer("kernel_map", torch.tensor(kernel_map, dtype=torch.int32))
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.h_kernel = nn.Sequential(
            nn.Conv2d(half, half, (1, patch), padding=(0, patch // 2), groups=half),
            nn.Conv2d(half, num_heads * kernel_size, 1),
        )
        self.v_kernel = nn.Sequential(
            nn.Conv2d(half, half, (patch, 1), padding=(patch // 2, 0), groups=half),
            nn.Conv2d(half, num_heads * kernel_size, 1),
        )
        self.channel_branch = nn.Sequential(nn.Conv2d(half, dim // 4, 1), nn.ReLU(), nn.Conv2d(dim // 4, half, 1))
        self.horizontal = FocalSeparableAggregation(kernel_map, num_heads, "horizontal")
        self.vertical = FocalSeparableAggregation(kernel_map, num_heads, "vertical")
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x1, x2 = self.proj_in(x).chunk(2, dim=1)
        channel = self.channel_branch(x1).reshape(b, self.dim, h * w)
        rows = self.horizontal(x2, torch.tanh(self.h_kernel(x2)))
        spatial = self.vertical(rows, torch.tanh(self.v_kernel(rows))).reshape(b, self.dim, h * w)
        gated_channel = spatial_interaction(channel, spatial).reshape(b, self.dim, h, w)
        gated_spatial = channel_interaction(channel, spatial).reshape(b, self.dim, h, w)
        return self.proj_out(torch.cat([gated_channel, gated_spatial], dim=1))


class LAMixerBlock(nn.Module):
    """``num_blocks`` (LSA mixer, dual-gate FFN) pairs with a scaled skip: ``x + alpha * mixers(x)``."""

    def __init__(
        self, dim: int, num_blocks: int, kernel_size: int, kernel_loc: tuple[int, ...], kernel_stride: tuple[int, ...],
        num_head: int, expansion_factor: float,
    ) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for _ in range(num_blocks):
            body.append(PreNormResidual(dim, LSAMixer(dim, kernel_size, kernel_loc, kernel_stride, num_head)))
            body.append(PreNormResidual(dim, DGFN(dim, expansion_factor)))
        self.mixers = nn.Sequential(*body)
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixers(x) * self.alpha + x


class LAMNet(nn.Module):
    def __init__(
        self, *, scale: int, dim: int, num_groups: int, num_blocks: int, kernel_size: int,
        kernel_loc: tuple[int, ...], kernel_stride: tuple[int, ...], num_head: int, expansion_factor: float,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"LAMNet supports scales 2, 3 and 4, got {scale}")
        self.scale = scale
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.shallow_feature_extraction = nn.Conv2d(3, dim, 3, padding=1)
        groups = [
            LAMixerBlock(dim, num_blocks, kernel_size, kernel_loc, kernel_stride, num_head, expansion_factor)
            for _ in range(num_groups)
        ]
        self.deep_feature_extraction = nn.Sequential(*groups, nn.Conv2d(dim, dim, 3, padding=1))
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.upsample = nn.Sequential(nn.Conv2d(dim, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02)  # cut at +-2 absolute, as timm's (the official's)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - self.mean
        features = self.shallow_feature_extraction(x)
        features = self.deep_feature_extraction(features) * self.alpha + features
        return self.upsample(features) + self.mean


def _reach(a) -> int:
    """Local reach in LR pixels: per mixer the row weights' depthwise conv and the op (patch // 2 each),
    along both axes; 1 per 3x3 conv. (The exchange module's means make every output depend a little on
    the whole image, as channel attention does.)"""
    patch = focal_patch_size(focal_kernel_map(a["kernel_size"], a["kernel_loc"], a["kernel_stride"]))
    return a["num_groups"] * a["num_blocks"] * (2 * (patch // 2) + 1) + 3


def _focal_layout(kernel_map: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """``kernel_loc`` and ``kernel_stride`` back from a (K, 2) kernel map: one stride per run of equal
    segment lengths right of the centre, each run's location the tap after it."""
    lengths = [length for _, length in kernel_map.tolist()[kernel_map.shape[0] // 2 + 1 :]]
    locs = [tap + 1 for tap in range(1, len(lengths) + 1) if tap == len(lengths) or lengths[tap] != lengths[tap - 1]]
    return {"kernel_loc": tuple(locs), "kernel_stride": tuple(lengths[loc - 2] for loc in locs)}


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Width from the first conv, depths from the names, taps from the kernel map's shape (and the focal
    layout from its values, where the state dict holds them), heads from the tap-weight conv."""
    groups = {int(m[1]) for k in weights if (m := re.fullmatch(r"deep_feature_extraction\.(\d+)\.alpha", k))}
    blocks = {int(m[1]) for k in weights if (m := re.fullmatch(r"deep_feature_extraction\.0\.mixers\.(\d+)\.alpha", k))}
    mixer = "deep_feature_extraction.0.mixers.0.fn"
    kernel_map = weights[f"{mixer}.kernel_map"]
    dim = weights["shallow_feature_extraction.weight"].shape[0]
    args: dict[str, Any] = {
        "dim": dim,
        "num_groups": len(groups),
        "num_blocks": len(blocks) // 2,
        "kernel_size": kernel_map.shape[0],
        "num_head": weights[f"{mixer}.h_kernel.1.weight"].shape[0] // kernel_map.shape[0],
        "expansion_factor": weights["deep_feature_extraction.0.mixers.1.fn.project_in.weight"].shape[0] / (2 * dim),
    }
    if kernel_map.device.type != "meta":  # a state dict built on the meta device has shapes only
        args.update(_focal_layout(kernel_map))
    return args


def _info(variant: str) -> ModelInfo:
    return ModelInfo(
        paper="Hu, Sun, Unifying Dimensions: A Linear Adaptive Mixer for Lightweight Image Super-Resolution, "
        f"arXiv 2024 / IEEE TIP 2025 ({variant})",
        origin="https://github.com/zononhzy/LAMNet",
        licence="CC-BY-NC-4.0",
        scales=(2, 3, 4),
        receptive_radius=_reach,
        args_from_weights=_args_from_weights,
    )


@register_model(_info("LAMNet"))
def lamnet(
    *, scale: int, dim: int = 64, num_groups: int = 4, num_blocks: int = 6, kernel_size: int = 13,
    kernel_loc: tuple[int, ...] = (4, 6, 7), kernel_stride: tuple[int, ...] = (1, 2, 4), num_head: int = 4,
    expansion_factor: float = 1.0,
) -> LAMNet:
    """LAMNet (options/test_LAMNet_SRx*.yml): 64 features, 4 groups of 6 blocks, 13 taps, 4 heads."""
    return LAMNet(
        scale=scale, dim=dim, num_groups=num_groups, num_blocks=num_blocks, kernel_size=kernel_size,
        kernel_loc=kernel_loc, kernel_stride=kernel_stride, num_head=num_head, expansion_factor=expansion_factor,
    )


@register_model(_info("LAMNet-large"))
def lamnet_large(
    *, scale: int, dim: int = 64, num_groups: int = 5, num_blocks: int = 6, kernel_size: int = 13,
    kernel_loc: tuple[int, ...] = (4, 6, 7), kernel_stride: tuple[int, ...] = (1, 2, 4), num_head: int = 4,
    expansion_factor: float = 1.0,
) -> LAMNet:
    """LAMNet-large (options/test_LAMNet_large_SRx*.yml): lamnet with 5 groups."""
    return LAMNet(
        scale=scale, dim=dim, num_groups=num_groups, num_blocks=num_blocks, kernel_size=kernel_size,
        kernel_loc=kernel_loc, kernel_stride=kernel_stride, num_head=num_head, expansion_factor=expansion_factor,
    )
