"""ResShift: an efficient few-step diffusion model for SR that shifts the residual between LR and HR.

Paper: Zongsheng Yue, Jianyi Wang, Chen Change Loy, "ResShift: Efficient Diffusion Model for Image
Super-resolution by Residual Shifting", NeurIPS 2023. Official code: zsyOAOA/ResShift (NTU S-Lab License
1.0, non-commercial): ``models/gaussian_diffusion.py`` (the process, its schedule and sampler),
``models/respace.py``, ``models/unet.py`` (``UNetModelSwin``), ``models/swin_transformer.py``,
``trainer.py`` and ``configs/realsr_swinunet_realesrgan256.yaml`` (15 steps) / ``bicx4_swinunet_lpips.yaml``
(4 steps). This module is srlab's own code written from those facts.

The process. With ``x_0`` the HR image and ``y_0`` the bicubic upsampling of the LR image (both in [-1, 1]),
``x_t = x_0 + eta_t (y_0 - x_0) + kappa sqrt(eta_t) eps`` for t = 1..T: the chain moves the residual
``y_0 - x_0`` onto the image while adding noise, and ends near ``y_0`` (``eta_T = etas_end^2 ~ 0.98``), so
sampling starts from ``y_0 + kappa sqrt(eta_T) eps`` and needs few steps. The schedule (the official
``exponential`` one): ``sqrt(eta_t) = start * b^(((t-1)/(T-1))^p (T-1))`` with ``start = min(min_noise_level
/ kappa, min_noise_level)``, ``b = (etas_end / start)^(1/(T-1))`` and ``p = power``: from ``start`` at t = 1
(noise std ``kappa * start = min_noise_level``) to ``etas_end`` at t = T, slowly at first for p < 1.
The denoiser predicts ``x_0`` (the official ``predict_type: xstart``) from ``x_t`` divided by
``3 kappa sqrt(eta_t) + 1`` (the official ``normalize_input`` for pixel inputs, ``latent_flag: False``),
the step index t - 1 (sinusoidal embedding, cos then sin) and the condition ``y_0`` concatenated to its
input. Sampling is ancestral: the posterior ``q(x_{t-1} | x_t, x_0)`` has mean
``eta_{t-1}/eta_t x_t + (eta_t - eta_{t-1})/eta_t x_0`` and variance ``kappa^2 eta_{t-1}/eta_t (eta_t -
eta_{t-1})``, evaluated at the predicted ``x_0`` clipped to [-1, 1]; the last step returns its mean,
which is the predicted ``x_0`` itself (``eta_0 = 0``).

Training (``step: diffusion``, :mod:`srlab.train.diffusion_step`, loss ``diffusion`` with ``norm: l2``): a
step uniform in 1..T per image and a noise from the run's RNG (in that order, as the official trainer), and
the mean squared error between the predicted and the true ``x_0`` (the official ``mse`` loss;
``weighted_mse: False``). srlab's options, off by default: ``train_step_weights`` (one weight per step t = 1..T:
how often a draw picks it, the same in expectation as weighting the loss per step; ``None``, uniform, draws
exactly as before), ``prediction="preconditioned"`` (see ``PREDICTIONS``) and the sampler's ``temperature``
(every noise the sampler draws, the start's included, is scaled by it: 1 is the official sampler, 0 follows the
chain's posterior means from ``y_0`` and gives the same output for every seed).

Steps. The number of diffusion steps T (``train_steps``) is part of what a model learnt. ``steps`` (``srlab
upscale --steps``) may be T (the default) or fewer: then the chain is respaced as the official
``timestep_respacing`` does (steps ``int(T / S * i)`` for i < S, the denoiser given their original indices);
more than T is refused. One step (S = 1: ``x_0`` predicted once from ``y_0 + kappa sqrt(eta_1) eps``) runs
here; the official respacing fails for it (its clipped posterior log-variance reads a second step). All
noise is drawn from a CPU ``torch.Generator`` seeded with ``seed`` (moved to the input's device), so a
sample is a pure function of (weights, LR batch, steps, seed).

The denoiser: the official ``UNetModelSwin`` with its parameter and buffer names (``time_embed``,
``input_blocks``, ``middle_block``, ``output_blocks``, ``out``; Swin layers ``patch_embed.proj``,
``blocks.i.{norm1,attn.{qkv,proj,relative_position_bias_table,relative_position_index},norm2,mlp.fc1,mlp.fc2,
attn_mask}``, ``patch_unembed.proj``), at ``use_scale_shift_norm: True``, ``conv_resample: True``,
``resblock_updown: False``, ``patch_norm: False`` (the official configs), so an official pixel-space state dict
of the same sizes loads strictly. Per level ``i``: ``res_blocks[i]`` residual blocks (GroupNorm, SiLU, 3x3
conv; the step embedding as a scale and shift of the second GroupNorm; SiLU, dropout, 3x3 conv), the first
followed by a Swin layer (1x1 conv to ``swin_embed_dim``, ``swin_depth`` blocks of GroupNorm + window
attention with relative position bias, alternately shifted by half a window, and GroupNorm + 1x1-conv MLP
with GELU, then a 1x1 conv back) at the levels in ``swin_levels`` (the official ``attention_resolutions``
as level indices); a strided 3x3 conv between levels; a middle of residual block, Swin layer, residual
block; a decoder of ``res_blocks[i] + 1`` blocks on the concatenated skips, nearest x2 + 3x3 conv up; out:
GroupNorm, SiLU, 3x3 conv. ``image_size`` is the official ``image_size`` (the training crop): it fixes the
shifted windows' attention masks kept as buffers, and a level no larger than the window attends over
the whole level, unshifted, whatever the input size later (as the official construction does). Two
properties of the official mask are reproduced, as official weights were trained with them: its
``calculate_mask`` labels a ``(1, 1, H, W)`` tensor as if it were ``(1, H, W, 1)``, so the shifted regions
are told apart by rows only, and it flattens each window column by column while tokens run row by row.

Deviations from the official pipeline. ResShift runs in the latent space of a VQGAN autoencoder (VQ-f4,
``autoencoder: VQModelTorch``): srlab has no such autoencoder weights and trains on a CPU, so srlab's variant
runs in pixel space (``x_0``, ``y_0`` are images, the noise has image shape). The official code was written
with that case in mind (``first_stage_model=None`` returns its input in ``decode_first_stage``; the
sampler clips ``x_0`` only without an autoencoder; ``latent_flag: False`` selects the pixel input scaling),
but at the released commit it does not run without one (``encode_first_stage`` reads
``first_stage_model.parameters()`` before its ``None`` test; the trainer reads ``configs.autoencoder``
unconditionally). In latent space the LR image itself has the latent's size (f4 at x4) and is concatenated as
``lq``; in pixel space the condition is its bicubic upsampling ``y_0`` (``lq_size == image_size``: no feature
extractor, as the official UNet builds it then). The official sampler pads the LR image by reflection to a
multiple of 16; srlab pads ``y_0`` (replicate) to the U-Net's multiple inside the model and crops. The
GroupNorm group count is a hyper-parameter (official: 32; resshift_tiny uses 8). The official training adds
LPIPS in its journal version and uses Real-ESRGAN degradations; srlab trains on its own data pipeline.

Checked against the official classes (random weights, float32; the official code run outside srlab with
stubs for its timm and autoencoder imports): the same U-Net outputs (difference 0, shifted masks at the
construction size and at others), the schedule to 4e-16, samples (all and respaced steps, the same noise) and
the training ``x_t`` and forward to < 1e-6.

Complexity: MACs (:func:`srlab.models.count_macs`, ``srlab models``) count ONE denoiser evaluation (and the
bicubic upsampling): on the meta device the forward evaluates the denoiser once and returns shapes only. A
sample costs ``steps`` times that. Tiled inference and ONNX export are refused (a tile's sample draws other
noise than the whole image's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.models.diffusion_training import DiffusionDraw
from srlab.models.registry import ModelInfo, register_model


# What the denoiser's output is: "clean", x_0 itself (official); "residual", x_0 - y_0, the correction of the
# bicubic upsampling (srlab's option, as SRDiff diffuses the residual over the upsampled LR): the same process,
# sampler and loss on x_0, the output read as x_0 = y_0 + output, with the U-Net's last conv zero-initialised so
# that an untrained model samples y_0 (the bicubic upsampling) and training starts from there; "preconditioned"
# (srlab's option), x_0 = y_0 + c_t (x_t - y_0) + output, where c_t (:func:`skip_weights`) is the least-squares
# linear estimate of the residual x_0 - y_0 from x_t - y_0 for a residual of std ``residual_std`` (EDM's c_skip,
# Karras et al. 2022, for this process): near 1 at the small-noise steps, where x_t nearly holds x_0, near 0 at
# the top step. The network then learns corrections at every step rather than having to reproduce x_t at the
# small-noise steps, which a small network does poorly, and the sampler's later steps keep what the earlier ones
# predicted (README, "Diffusion SR: ResShift").
PREDICTIONS = ("clean", "residual", "preconditioned")


def eta_schedule(steps: int, *, kappa: float, min_noise_level: float, etas_end: float, power: float) -> Tensor:
    """The official ``exponential`` schedule: ``sqrt(eta_t)`` for t = 1..T (float64), from
    ``min(min_noise_level / kappa, min_noise_level)`` to ``etas_end`` (module docstring)."""
    if steps < 2:
        raise ValueError(f"train_steps must be at least 2, got {steps}")
    start = min(min_noise_level / kappa, min_noise_level)
    base = math.exp(math.log(etas_end / start) / (steps - 1))
    exponents = torch.linspace(0, 1, steps, dtype=torch.float64) ** power * (steps - 1)
    return base**exponents * start


def respaced_steps(train_steps: int, steps: int) -> list[int]:
    """The step indices (0-based, ascending) a ``steps``-step sampler visits: the official
    ``space_timesteps``, ``int(T / S * i)`` for i < S."""
    return sorted({int(train_steps / steps * i) for i in range(steps)})


def skip_weights(sqrt_etas: Tensor, *, kappa: float, residual_std: float) -> Tensor:
    """Per step, c_t = (1 - eta_t) s^2 / ((1 - eta_t)^2 s^2 + kappa^2 eta_t), s = ``residual_std``: the
    least-squares c in ``x_0 - y_0 ~ c (x_t - y_0)`` when x_0 - y_0 has std s (x_t - y_0 = (1 - eta_t)(x_0 - y_0)
    + kappa sqrt(eta_t) eps)."""
    etas = sqrt_etas.square()
    signal = (1 - etas) * residual_std**2
    return signal / ((1 - etas) * signal + kappa**2 * etas)


def step_probabilities(weights: tuple[float, ...] | None, train_steps: int) -> Tensor | None:
    """How often a training draw picks each step t = 1..T: ``weights`` normalised to sum 1 (float64), or
    ``None`` for the official uniform draw."""
    if weights is None:
        return None
    weights = tuple(float(w) for w in weights)
    if len(weights) != train_steps or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"train_step_weights needs {train_steps} finite weights >= 0 (one per step t = 1..T, "
                         f"not all 0), got {weights}")
    probabilities = torch.tensor(weights, dtype=torch.float64)
    return probabilities / probabilities.sum()


def timestep_embedding(steps: Tensor, dim: int, dtype: torch.dtype) -> Tensor:
    """Sinusoids of the step index: ``cos(t * 10^(-4 k / (dim/2)))`` then ``sin(...)`` for k < dim/2."""
    half = dim // 2
    frequencies = torch.exp(-math.log(1e4) * torch.arange(half, dtype=dtype, device=steps.device) / half)
    angles = steps.to(dtype)[:, None] * frequencies
    embedding = torch.cat([angles.cos(), angles.sin()], dim=1)
    return F.pad(embedding, (0, dim % 2))


class EmbedSequential(nn.Sequential):
    """Layers in order; the residual blocks among them also take the step embedding."""

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, embedding) if isinstance(layer, ResBlock) else layer(x)
        return x


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv; GroupNorm scaled and shifted by the step embedding, SiLU, dropout, conv
    (zero-initialised, as the official ``zero_module``); plus the input (1x1 conv where widths differ)."""

    def __init__(self, cin: int, embed: int, cout: int, *, dropout: float, groups: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(embed, 2 * cout))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, cout), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1),
        )
        nn.init.zeros_(self.out_layers[3].weight)
        nn.init.zeros_(self.out_layers[3].bias)
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb_layers(embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def relative_position_index(window: int) -> Tensor:
    """For each pair of a window's positions (row-major), the index of their offset in the bias table."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # (2, N)
    offsets = (coords[:, :, None] - coords[:, None, :]) + (window - 1)  # (2, N, N), each in 0..2w-2
    return offsets[0] * (2 * window - 1) + offsets[1]


def partition_windows(x: Tensor, window: int) -> Tensor:
    """(B, C, H, W) -> (B * windows, window^2, C), windows in row-major order, positions row-major."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // window, window, w // window, window).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, window * window, c)


def merge_windows(windows: Tensor, window: int, b: int, h: int, w: int) -> Tensor:
    """The inverse of :func:`partition_windows`."""
    x = windows.view(b, h // window, w // window, window, window, -1).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, -1, h, w)


def shifted_window_mask(h: int, w: int, window: int, shift: int, device: torch.device | None = None) -> Tensor:
    """The official shifted-window mask (windows, N, N): -100 between positions of different regions, 0 else.
    As the official ``calculate_mask`` computes it (module docstring): regions by rows only (rows above
    ``h - window``, then up to ``h - shift``, then the rest), each window's labels flattened column-major."""
    rows = torch.zeros(h, device=device)
    rows[h - window:] = 1
    rows[h - shift:] = 2
    labels = rows[:, None].expand(h, w).reshape(h // window, window, w // window, window).permute(0, 2, 3, 1)
    labels = labels.reshape(-1, window * window)  # per window, position (col, row) -> col * window + row
    return (labels[:, None, :] != labels[:, :, None]).float() * -100.0


class WindowAttention(nn.Module):
    """Multi-head self-attention within windows, plus a learnt bias per relative offset and head."""

    def __init__(self, dim: int, window: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attention = (q * self.scale) @ k.transpose(-2, -1) + bias.permute(2, 0, 1)
        if mask is not None:
            windows = mask.shape[0]
            attention = (attention.view(-1, windows, self.heads, n, n) + mask[None, :, None]).view(b, self.heads, n, n)
        out = (attention.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SwinBlock(nn.Module):
    """GroupNorm + (shifted) window attention, GroupNorm + MLP, each with a residual, on (B, C, H, W).
    A level no larger than the window (at ``resolution``, the construction size) is one unshifted window."""

    def __init__(
        self, dim: int, *, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float, groups: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.window, self.shift, self.resolution = window, shift, resolution
        self.norm1 = nn.GroupNorm(groups, dim)
        self.attn = WindowAttention(dim, window, heads, dropout)
        self.norm2 = nn.GroupNorm(groups, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
        # Kept as a buffer, as the official code does (its state dicts hold it); recomputed for other sizes.
        self.register_buffer("attn_mask", shifted_window_mask(resolution, resolution, window, shift) if shift else None)

    def _mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        if not self.shift:
            return None
        if h == w == self.resolution:
            return self.attn_mask
        return shifted_window_mask(h, w, self.window, self.shift, device)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(2, 3))
        mask = self._mask(h, w, x.device)
        y = merge_windows(self.attn(partition_windows(y, self.window), mask), self.window, b, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(2, 3))
        x = x + y
        return x + self.mlp(self.norm2(x))


class Projection(nn.Module):
    """A 1x1 conv named ``proj``, as the official patch (un)embedding with patch size 1 and no norm."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class SwinLayer(nn.Module):
    """1x1 conv to ``embed_dim``, ``depth`` Swin blocks (every second one shifted), 1x1 conv back; no
    residual around the layer (as the official ``BasicLayer``)."""

    def __init__(
        self, channels: int, *, embed_dim: int, heads: int, window: int, depth: int, resolution: int,
        mlp_ratio: float, groups: int, dropout: float,
    ) -> None:
        super().__init__()
        self.patch_embed = Projection(channels, embed_dim)
        self.blocks = nn.ModuleList([
            SwinBlock(embed_dim, resolution=resolution, heads=heads, window=window,
                      shift=0 if i % 2 == 0 else window // 2, mlp_ratio=mlp_ratio, groups=groups, dropout=dropout)
            for i in range(depth)
        ])
        self.patch_unembed = Projection(embed_dim, channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.patch_unembed(x)


def swin_windows(image_size: int, levels: int, swin_levels: tuple[int, ...], window: int) -> dict[int, int]:
    """The window size of each level that has Swin layers (the middle, at the last level, always has)."""
    windows = {}
    for level in {*swin_levels, levels - 1}:
        resolution = image_size // 2**level
        windows[level] = resolution if resolution <= window else window
    return windows


def unet_multiple(image_size: int, levels: int, swin_levels: tuple[int, ...], window: int) -> int:
    """The multiple the HR-sized input must have: every level halves it, every Swin level tiles it."""
    multiple = 2 ** (levels - 1)
    for level, size in swin_windows(image_size, levels, swin_levels, window).items():
        multiple = math.lcm(multiple, 2**level * size)
    return multiple


class UNetSwin(nn.Module):
    """ResShift's denoiser (the official ``UNetModelSwin``): ``forward(x, steps, lq)`` predicts the clean
    image from the scaled noisy image ``x``, the step indices and the condition ``lq`` (module docstring)."""

    def __init__(
        self, *, image_size: int, channels: int, channel_multipliers: tuple[int, ...], res_blocks: tuple[int, ...],
        swin_levels: tuple[int, ...], groups: int, dropout: float, swin_depth: int, swin_embed_dim: int,
        head_channels: int, window_size: int, mlp_ratio: float,
    ) -> None:
        super().__init__()
        levels = len(channel_multipliers)
        if len(res_blocks) != levels:
            raise ValueError(f"res_blocks needs one count per level ({levels}), got {res_blocks}")
        if any(not 0 <= level < levels for level in swin_levels):
            raise ValueError(f"swin_levels must be in 0..{levels - 1}, got {swin_levels}")
        embed = 4 * channels
        block = dict(dropout=dropout, groups=groups)

        def swin(width: int, resolution: int) -> SwinLayer:
            return SwinLayer(width, embed_dim=swin_embed_dim, heads=swin_embed_dim // head_channels,
                             window=window_size, depth=swin_depth, resolution=resolution, mlp_ratio=mlp_ratio,
                             groups=groups, dropout=dropout)

        self.channels = channels
        self.time_embed = nn.Sequential(nn.Linear(channels, embed), nn.SiLU(), nn.Linear(embed, embed))
        width = first = channels * channel_multipliers[0]
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(6, width, 3, padding=1))])
        widths, size = [width], image_size
        for level, multiplier in enumerate(channel_multipliers):
            for j in range(res_blocks[level]):
                layers: list[nn.Module] = [ResBlock(width, embed, channels * multiplier, **block)]
                width = channels * multiplier
                if level in swin_levels and j == 0:
                    layers.append(swin(width, size))
                self.input_blocks.append(EmbedSequential(*layers))
                widths.append(width)
            if level < levels - 1:
                self.input_blocks.append(EmbedSequential(Downsample(width)))
                widths.append(width)
                size //= 2
        self.middle_block = EmbedSequential(
            ResBlock(width, embed, width, **block), swin(width, size), ResBlock(width, embed, width, **block),
        )
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(levels)):
            for i in range(res_blocks[level] + 1):
                layers = [ResBlock(width + widths.pop(), embed, channels * channel_multipliers[level], **block)]
                width = channels * channel_multipliers[level]
                if level in swin_levels and i == 0:
                    layers.append(swin(width, size))
                if level and i == res_blocks[level]:
                    layers.append(Upsample(width))
                    size *= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(first, 3, 3, padding=1))

    def forward(self, x: Tensor, steps: Tensor, lq: Tensor) -> Tensor:
        embedding = self.time_embed(timestep_embedding(steps, self.channels, x.dtype))
        h = torch.cat([x, lq], dim=1)
        skips = []
        for module in self.input_blocks:
            h = module(h, embedding)
            skips.append(h)
        h = self.middle_block(h, embedding)
        for module in self.output_blocks:
            h = module(torch.cat([h, skips.pop()], dim=1), embedding)
        return self.out(h)


class ResShift(nn.Module):
    """The denoiser, its residual-shift schedule and its sampler settings (module docstring).

    ``forward(lr)``: a sample, RGB in [0, 1]. ``forward(lr, noisy=x_t, step=t)``: the denoiser's prediction
    of ``x_0`` (HR-sized, in [-1, 1]) for ``x_t`` at 0-based step indices ``t``, the training forward."""

    def __init__(
        self, *, scale: int, image_size: int, channels: int, channel_multipliers: tuple[int, ...],
        res_blocks: tuple[int, ...], swin_levels: tuple[int, ...], groups: int, dropout: float, swin_depth: int,
        swin_embed_dim: int, head_channels: int, window_size: int, mlp_ratio: float, train_steps: int, kappa: float,
        min_noise_level: float, etas_end: float, power: float, steps: int, seed: int, prediction: str,
        train_step_weights: tuple[float, ...] | None, residual_std: float, temperature: float,
    ) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        if not residual_std > 0:
            raise ValueError(f"residual_std must be > 0, got {residual_std}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.scale, self.kappa, self.prediction, self.temperature = scale, kappa, prediction, temperature
        self.sqrt_etas = eta_schedule(train_steps, kappa=kappa, min_noise_level=min_noise_level, etas_end=etas_end,
                                      power=power)
        self.skip_weights = skip_weights(self.sqrt_etas, kappa=kappa, residual_std=residual_std)
        self.train_step_probabilities = step_probabilities(train_step_weights, train_steps)
        if not 1 <= steps <= train_steps:
            raise ValueError(f"steps must be in 1..train_steps ({train_steps}), got {steps}")
        self.steps, self.seed = steps, seed
        levels, swin_levels = len(channel_multipliers), tuple(swin_levels)
        self.multiple = unet_multiple(image_size, levels, swin_levels, window_size)
        self.denoiser = UNetSwin(
            image_size=image_size, channels=channels, channel_multipliers=tuple(channel_multipliers),
            res_blocks=tuple(res_blocks), swin_levels=swin_levels, groups=groups, dropout=dropout,
            swin_depth=swin_depth, swin_embed_dim=swin_embed_dim, head_channels=head_channels,
            window_size=window_size, mlp_ratio=mlp_ratio,
        )
        if prediction != "clean":  # an untrained model returns y_0, or its linear estimate (see PREDICTIONS)
            nn.init.zeros_(self.denoiser.out[2].weight)
            nn.init.zeros_(self.denoiser.out[2].bias)

    @property
    def train_steps(self) -> int:
        return len(self.sqrt_etas)

    def set_sampler(self, *, steps: int | None = None, seed: int | None = None) -> None:
        """Set the number of denoiser evaluations of a sample (T or fewer: a respaced chain) and its seed
        (``None``: unchanged)."""
        if steps is not None:
            if not 1 <= steps <= self.train_steps:
                raise SrlabError(f"--steps must be in 1..{self.train_steps} (ResShift's trained chain; fewer respace "
                                 f"it), got {steps}")
            self.steps = steps
        if seed is not None:
            self.seed = seed

    def upsample(self, lr: Tensor) -> Tensor:
        """``y_0``: the bicubic upsampling of ``lr`` in [-1, 1] (HR-sized, not padded)."""
        return F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False) * 2 - 1

    def _pad(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return F.pad(x, (0, -w % self.multiple, 0, -h % self.multiple), mode="replicate")

    def _denoise(self, noisy: Tensor, condition: Tensor, step: Tensor) -> Tensor:
        """The predicted ``x_0`` for padded ``x_t`` and ``y_0`` at 0-based steps ``step`` (B,)."""
        sqrt_eta = self.sqrt_etas.to(step.device)[step].to(noisy.dtype).view(-1, 1, 1, 1)
        output = self.denoiser(noisy / (3 * self.kappa * sqrt_eta + 1), step, condition)
        if self.prediction == "residual":
            return condition + output
        if self.prediction == "preconditioned":
            skip = self.skip_weights.to(step.device)[step].to(noisy.dtype).view(-1, 1, 1, 1)
            return condition + skip * (noisy - condition) + output
        return output

    def draw_training(self, lr: Tensor, hr: Tensor) -> DiffusionDraw:
        """A step per image (uniform in 1..T, or drawn with ``train_step_weights``) and a noise, from the global
        RNG of ``hr``'s device; ``x_t`` from them; the target is ``x_0`` (``hr`` in [-1, 1])."""
        if self.train_step_probabilities is None:
            step = torch.randint(0, self.train_steps, (hr.shape[0],), device=hr.device)
        else:
            step = torch.multinomial(self.train_step_probabilities.to(hr.device), hr.shape[0], replacement=True)
        noise = torch.randn_like(hr)
        sqrt_eta = self.sqrt_etas.to(hr.device)[step].to(hr.dtype).view(-1, 1, 1, 1)
        clean = hr * 2 - 1
        noisy = clean + sqrt_eta.square() * (self.upsample(lr) - clean) + self.kappa * sqrt_eta * noise
        return DiffusionDraw(inputs={"noisy": noisy, "step": step}, target=clean,
                             clean=lambda predicted: ((predicted + 1) / 2).clamp(0, 1))

    def forward(self, lr: Tensor, noisy: Tensor | None = None, step: Tensor | None = None) -> Tensor:
        if noisy is None:
            return self.sample(lr)
        if step is None:
            raise ValueError("the training forward needs step with noisy")
        h, w = noisy.shape[-2:]
        return self._denoise(self._pad(noisy), self._pad(self.upsample(lr)), step)[..., :h, :w]

    @torch.no_grad()  # sampling is never differentiated (a chain's graph would grow with the steps)
    def sample(self, lr: Tensor) -> Tensor:
        """A sample for ``lr`` with the model's ``steps`` and ``seed``; RGB in [0, 1]."""
        condition = self._pad(self.upsample(lr))
        h, w = lr.shape[-2] * self.scale, lr.shape[-1] * self.scale
        batch = lr.shape[0]
        if lr.device.type == "meta":  # MAC counting (module docstring): one denoiser evaluation, shapes only
            step = torch.zeros(batch, dtype=torch.long, device=lr.device)
            return self.denoiser(condition, step, condition)[..., :h, :w]
        generator = torch.Generator().manual_seed(self.seed)

        def noise() -> Tensor:  # drawn on the CPU: the same noise on every device; scaled by the temperature
            drawn = torch.randn(condition.shape, generator=generator, dtype=condition.dtype)
            return drawn.to(lr.device) * self.temperature

        etas = self.sqrt_etas.square().tolist()
        visited = respaced_steps(self.train_steps, self.steps)
        x = condition + self.kappa * math.sqrt(etas[visited[-1]]) * noise()
        for i in reversed(range(len(visited))):
            eta, eta_prev = etas[visited[i]], etas[visited[i - 1]] if i > 0 else 0.0
            step = torch.full((batch,), visited[i], dtype=torch.long, device=lr.device)
            clean = self._denoise(x, condition, step).clamp(-1, 1)
            x = eta_prev / eta * x + (eta - eta_prev) / eta * clean
            if i > 0:
                x = x + self.kappa * math.sqrt(eta_prev / eta * (eta - eta_prev)) * noise()
        return ((x[..., :h, :w].clamp(-1, 1) + 1) / 2)


_PAPER = ("Yue, Wang, Loy, ResShift: Efficient Diffusion Model for Image Super-resolution by Residual Shifting, "
          "NeurIPS 2023 (pixel space: srlab's variant)")
_ORIGIN = "https://github.com/zsyOAOA/ResShift"
_REFUSAL = ("diffusion sampling draws its noise for the whole image: a tile's sample differs from the whole "
            "image's; drop --tile")


def _multiple(args) -> int:
    return unet_multiple(args["image_size"], len(args["channel_multipliers"]), tuple(args["swin_levels"]),
                         args["window_size"])


def _info(paper: str) -> ModelInfo:
    # Tiling is refused; the radius (the default tile overlap) is nominal: the U-Net's size multiple.
    return ModelInfo(
        paper=paper, origin=_ORIGIN, licence="LicenseRef-S-Lab-1.0", scales=(2, 4), size_multiple=_multiple,
        pad_mode="inside", receptive_radius=_multiple, tiling_refusal=_REFUSAL, half_precision_safe=False,
    )


@register_model(_info(_PAPER))
def resshift(
    *, scale: int, image_size: int = 256, channels: int = 160, channel_multipliers: tuple[int, ...] = (1, 2, 2, 4),
    res_blocks: tuple[int, ...] = (2, 2, 2, 2), swin_levels: tuple[int, ...] = (0, 1, 2, 3), groups: int = 32,
    dropout: float = 0.0, swin_depth: int = 2, swin_embed_dim: int = 192, head_channels: int = 32,
    window_size: int = 8, mlp_ratio: float = 4.0, train_steps: int = 15, kappa: float = 2.0,
    min_noise_level: float = 0.04, etas_end: float = 0.99, power: float = 0.3, steps: int = 15, seed: int = 1,
    prediction: str = "clean", train_step_weights: tuple[float, ...] | None = None, residual_std: float = 0.1,
    temperature: float = 1.0,
) -> ResShift:
    """ResShift at the official real-SR configuration (configs/realsr_swinunet_realesrgan256.yaml): 160
    channels, multipliers 1,2,2,4, two blocks per level, Swin layers (embedding 192, 6 heads, window 8,
    MLP ratio 4, depth 2) at every level, 15 steps with kappa 2, min_noise_level 0.04, etas_end 0.99,
    power 0.3; in pixel space on 256x256 HR crops (the official 64x64 latents of 256x256 crops)."""
    return ResShift(
        scale=scale, image_size=image_size, channels=channels, channel_multipliers=channel_multipliers,
        res_blocks=res_blocks, swin_levels=swin_levels, groups=groups, dropout=dropout, swin_depth=swin_depth,
        swin_embed_dim=swin_embed_dim, head_channels=head_channels, window_size=window_size, mlp_ratio=mlp_ratio,
        train_steps=train_steps, kappa=kappa, min_noise_level=min_noise_level, etas_end=etas_end, power=power,
        steps=steps, seed=seed, prediction=prediction, train_step_weights=train_step_weights,
        residual_std=residual_std, temperature=temperature,
    )


@register_model(_info(_PAPER.replace("srlab's variant", "srlab's CPU-sized variant")))
def resshift_tiny(
    *, scale: int, image_size: int = 64, channels: int = 16, channel_multipliers: tuple[int, ...] = (1, 2, 2),
    res_blocks: tuple[int, ...] = (1, 1, 1), swin_levels: tuple[int, ...] = (2,), groups: int = 8,
    dropout: float = 0.0, swin_depth: int = 2, swin_embed_dim: int = 32, head_channels: int = 8,
    window_size: int = 8, mlp_ratio: float = 2.0, train_steps: int = 4, kappa: float = 0.5,
    min_noise_level: float = 0.05, etas_end: float = 0.99, power: float = 0.3, steps: int = 4, seed: int = 1,
    prediction: str = "residual", train_step_weights: tuple[float, ...] | None = None, residual_std: float = 0.1,
    temperature: float = 1.0,
) -> ResShift:
    """A small ResShift that trains on a CPU in minutes: 16 channels, three levels, one block per level, Swin
    layers (embedding 32, 4 heads, window 8) at the last level and in the middle, on 64x64 HR crops; 4 steps
    (as the official configs/bicx4_swinunet_lpips.yaml) with kappa 0.5 and min_noise_level 0.05 instead of its 2
    and 0.2, and ``prediction="residual"``. Why: kappa sets the noise of the chain, the paper's fidelity-realism
    knob (smaller: higher PSNR), and the official values are sized for VQ-f4 latents, while this model diffuses
    pixels in [-1, 1] where noise of std 0.2-2 buries an image that a 346K-parameter model must recover within
    CPU minutes. Measured (7 scikit-image photos, 64x64 HR patches, batch 8, lr 5e-4, EMA 0.99; validation on
    ``coffee`` x4, PSNR-Y / SSIM-Y, 4 steps): after 140 iterations (about a minute) 27.65 / 0.7718 with these
    values, 27.44 / 0.7451 with kappa 2 and min_noise_level 0.2; MATLAB bicubic 27.29 / 0.7648, the untrained
    model (its y_0) 27.38 / 0.7669. Both decline with longer training on those 7 photos (27.10 / 0.7228
    and 27.31 / 0.7110 after 560 iterations). configs/resshift_tiny_x4.yaml trains it with kappa 0.1,
    ``prediction="preconditioned"`` and samples at temperature 0: its 4-step chain then keeps its first step's
    quality and stays near or above bicubic for longer (README, "Diffusion SR: ResShift")."""
    return ResShift(
        scale=scale, image_size=image_size, channels=channels, channel_multipliers=channel_multipliers,
        res_blocks=res_blocks, swin_levels=swin_levels, groups=groups, dropout=dropout, swin_depth=swin_depth,
        swin_embed_dim=swin_embed_dim, head_channels=head_channels, window_size=window_size, mlp_ratio=mlp_ratio,
        train_steps=train_steps, kappa=kappa, min_noise_level=min_noise_level, etas_end=etas_end, power=power,
        steps=steps, seed=seed, prediction=prediction, train_step_weights=train_step_weights,
        residual_std=residual_std, temperature=temperature,
    )
