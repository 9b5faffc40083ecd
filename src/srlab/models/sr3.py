"""SR3: image super-resolution via iterative refinement (a conditional denoising diffusion model).

Paper: Chitwan Saharia, Jonathan Ho, William Chan, Tim Salimans, David J. Fleet, Mohammad Norouzi, "Image
Super-Resolution via Iterative Refinement", IEEE TPAMI 2022 (arXiv 2104.07636). Google released no code.
The structure facts below come from the paper and from the widely used reimplementation
Janspiry/Image-Super-Resolution-via-Iterative-Refinement (Apache-2.0): ``model/sr3_modules/unet.py``,
``model/sr3_modules/diffusion.py`` and ``config/sr_sr3_16_128.json``. This module is srlab's own code.

The model. HR images are mapped to [-1, 1]. A noisy image ``y_t = g * y_0 + sqrt(1 - g^2) * eps`` (``g`` the
square root of the cumulative product of ``1 - beta``, "the noise level") is concatenated with the
bicubic upsampling of the LR image (6 channels) and a U-Net predicts ``eps`` from it and from ``g``.
The U-Net (as the reimplementation): a 3x3 conv to C channels; per level ``i`` ``res_blocks`` residual
blocks of ``C * channel_multipliers[i]`` channels (GroupNorm, Swish, 3x3 conv, plus a per-channel bias
from the noise embedding, GroupNorm, Swish, dropout, 3x3 conv; a 1x1 conv on the skip when the width
changes), then a stride-2 3x3 conv except at the last level; a middle of two residual blocks, the first
followed by single-head self-attention; the decoder mirrors the encoder with ``res_blocks + 1`` blocks per
level on the skip features concatenated, nearest x2 + 3x3 conv to go up; out: GroupNorm, Swish, 3x3 conv
to 3 channels. Self-attention (GroupNorm, 1x1 qkv conv without bias, softmax(q k / sqrt(C)), 1x1 conv,
residual) follows every residual block of the levels listed in ``attention_levels``. The noise level is
embedded continuously, as SR3 conditions on ``g`` directly rather than on the step index: sinusoids
``sin(g * 10^(-4 k / (C/2)))``, ``cos(...)`` for ``k < C/2``, then Linear(C, 4C), Swish, Linear(4C, C).

Training (``step: diffusion``, :mod:`srlab.train.diffusion_step`, loss ``diffusion``): a step ``t`` is
drawn uniformly in 1..T per image and ``g`` uniformly between the noise levels of steps ``t - 1`` and
``t`` (SR3's continuous noise-level sampling, so any sampling schedule may be used afterwards); the loss
compares the predicted with the true noise.

Sampling (``forward(lr)``, train or eval mode, always without autograd): ``steps`` denoiser evaluations on
a sub-sequence of the training schedule (steps ``round((i + 1) * T / steps)``, as the respacing of improved
DDPM / DDIM), ending at the clean image; ``sampler="ddpm"``: ancestral sampling with the posterior variance
of the respaced chain; ``sampler="ddim"``: DDIM (Song et al. 2021) with ``eta`` (0: deterministic given the
start noise). The clean-image estimate is clipped to [-1, 1] at each step, as the reimplementation does.
All noise is drawn from a CPU ``torch.Generator`` seeded with ``seed`` (and moved to the input's device),
so a sample is a pure function of (weights, LR batch, steps, seed), on any device up to its arithmetic's
rounding; a batch's images draw their noise in order,
so an image's sample depends on its place in the batch. ``srlab upscale --steps N --seed S`` sets them.

Complexity: MACs (:func:`srlab.models.count_macs`, ``srlab models``) count ONE denoiser evaluation (and
the bicubic upsampling): on PyTorch's meta device, where MACs are counted, the forward evaluates the
denoiser once and returns shapes only, since counting a 2000-step chain would take minutes. A sample
costs ``steps`` times the denoiser's count.

Input size: the U-Net halves the HR-sized image ``len(channel_multipliers) - 1`` times. The model pads
the upsampled LR image (replicate) to a multiple of that itself and crops (``pad_mode="inside"``); the
declared LR ``size_multiple`` is that factor (always enough at any scale). Tiled inference is refused: a
diffusion sample of a tile differs from the whole image's sample (other noise, global attention).

Deviations from the reimplementation: the attention levels are given as level indices (its
``attn_res=[16]`` at 128x128 is level 3 of 5), so the network runs at any size; the step ``t`` is drawn
per image (the reimplementation draws one per batch); the loss is averaged (it sums); sampling with fewer
steps than the training schedule uses the respaced sub-sequence above (the reimplementation runs a
separately configured schedule); the bicubic upsampling is PyTorch's (``align_corners=False``), the
reimplementation precomputes it with PIL; the noisy image is padded as the condition for odd sizes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.models.diffusion_training import DiffusionDraw
from srlab.models.registry import ModelInfo, register_model

SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddpm", "ddim")


def linear_betas(steps: int, start: float, end: float) -> Tensor:
    """DDPM's linear schedule: ``steps`` betas evenly spaced from ``start`` to ``end`` (float64)."""
    return torch.linspace(start, end, steps, dtype=torch.float64)


def cosine_betas(steps: int, offset: float = 8e-3) -> Tensor:
    """Nichol & Dhariwal's cosine schedule: ``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos((t/T + s) / (1 + s)
    * pi / 2)^2``, ``beta_t = 1 - alpha_bar(t) / alpha_bar(t - 1)`` clipped to 0.999 (float64)."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2).square()
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)


def make_betas(schedule: str, steps: int, start: float, end: float) -> Tensor:
    if schedule == "linear":
        return linear_betas(steps, start, end)
    if schedule == "cosine":
        return cosine_betas(steps)
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def noise_levels(betas: Tensor) -> Tensor:
    """``g_t = sqrt(prod_{s <= t} (1 - beta_s))`` for t = 0..T, with ``g_0 = 1`` (the clean image)."""
    return torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(1 - betas, 0).sqrt()])


def respaced_steps(train_steps: int, steps: int) -> list[int]:
    """The training steps a ``steps``-step sampler visits, ascending: ``round((i + 1) * T / steps)``."""
    return [round((i + 1) * train_steps / steps) for i in range(steps)]


def ddim_update(x: Tensor, eps: Tensor, a: float, a_prev: float, eta: float, noise: Tensor | None) -> Tensor:
    """One DDIM step from ``alpha_bar = a`` to ``a_prev`` given the predicted noise ``eps``: the clean
    estimate (clipped to [-1, 1]) moved to ``a_prev`` along ``eps``, plus ``sigma * noise`` (eta > 0)."""
    x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    out = math.sqrt(a_prev) * x0 + math.sqrt(max(0.0, 1 - a_prev - sigma**2)) * eps
    return out if noise is None or sigma == 0 else out + sigma * noise


def ddpm_update(x: Tensor, eps: Tensor, a: float, a_prev: float, noise: Tensor | None) -> Tensor:
    """One ancestral step: the mean of q(x_prev | x, x0) at the clipped clean estimate, plus the
    posterior's standard deviation times ``noise`` (none at the last step)."""
    x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
    alpha = a / a_prev
    mean = (math.sqrt(a_prev) * (1 - alpha) * x0 + math.sqrt(alpha) * (1 - a_prev) * x) / (1 - a)
    variance = (1 - alpha) * (1 - a_prev) / (1 - a)
    return mean if noise is None else mean + math.sqrt(variance) * noise


class NoiseEmbedding(nn.Module):
    """Sinusoids of the continuous noise level, then Linear(C, 4C), Swish, Linear(4C, C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, channels))

    def forward(self, level: Tensor) -> Tensor:
        half = self.channels // 2
        frequencies = torch.exp(-math.log(1e4) * torch.arange(half, dtype=level.dtype, device=level.device) / half)
        angles = level.view(-1, 1) * frequencies
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


def _norm_act_conv(cin: int, cout: int, groups: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.GroupNorm(groups, cin), nn.SiLU(), nn.Dropout(dropout) if dropout else nn.Identity(),
        nn.Conv2d(cin, cout, 3, padding=1),
    )


class ResBlock(nn.Module):
    """Norm-act-conv, plus the noise embedding's per-channel bias, norm-act-dropout-conv; a residual."""

    def __init__(self, cin: int, cout: int, *, embed: int, groups: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.block1 = _norm_act_conv(cin, cout, groups)
        self.noise = nn.Linear(embed, cout)
        self.block2 = _norm_act_conv(cout, cout, groups, dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.attention = SelfAttention(cout, groups) if attention else None

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        h = self.block1(x) + self.noise(embedding)[:, :, None, None]
        x = self.block2(h) + self.skip(x)
        return x if self.attention is None else self.attention(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions, with a residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).chunk(3, dim=1)  # (b, c, hw) each
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # (b, hw, hw)
        return x + self.out((v @ weights.transpose(1, 2)).view(b, c, h, w))


class UNet(nn.Module):
    """SR3's denoiser: ``forward(x, level)`` predicts the noise in ``x[:, 3:]`` given the condition
    ``x[:, :3]`` and the noise level (module docstring)."""

    def __init__(
        self, *, channels: int, channel_multipliers: tuple[int, ...], res_blocks: int,
        attention_levels: tuple[int, ...], groups: int, dropout: float,
    ) -> None:
        super().__init__()
        levels = len(channel_multipliers)
        if any(not 0 <= level < levels for level in attention_levels):
            raise ValueError(f"attention_levels must be in 0..{levels - 1}, got {attention_levels}")
        block = dict(embed=channels, groups=groups, dropout=dropout)
        self.embedding = NoiseEmbedding(channels)
        self.head = nn.Conv2d(6, channels, 3, padding=1)
        self.down = nn.ModuleList()
        widths, width = [channels], channels
        for level, multiplier in enumerate(channel_multipliers):
            for _ in range(res_blocks):
                self.down.append(ResBlock(width, channels * multiplier, attention=level in attention_levels, **block))
                width = channels * multiplier
                widths.append(width)
            if level < levels - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                widths.append(width)
        self.middle = nn.ModuleList([
            ResBlock(width, width, attention=True, **block), ResBlock(width, width, attention=False, **block),
        ])
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            out = channels * channel_multipliers[level]
            for _ in range(res_blocks + 1):
                self.up.append(ResBlock(width + widths.pop(), out, attention=level in attention_levels, **block))
                width = out
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(width, width, 3, padding=1)))
        self.tail = _norm_act_conv(width, 3, groups)

    def forward(self, x: Tensor, level: Tensor) -> Tensor:
        embedding = self.embedding(level)
        x = self.head(x)
        skips = [x]
        for layer in self.down:
            x = layer(x, embedding) if isinstance(layer, ResBlock) else layer(x)
            skips.append(x)
        for layer in self.middle:
            x = layer(x, embedding)
        for layer in self.up:
            x = layer(torch.cat([x, skips.pop()], dim=1), embedding) if isinstance(layer, ResBlock) else layer(x)
        return self.tail(x)


class SR3(nn.Module):
    """The denoiser, its training schedule and its sampler settings (module docstring).

    ``forward(lr)``: a sample, RGB in [0, 1]. ``forward(lr, noisy=y_t, noise_level=g)``: the denoiser's
    predicted noise for ``y_t`` (HR-sized, in [-1, 1] units), the training forward."""

    def __init__(
        self, *, scale: int, channels: int, channel_multipliers: tuple[int, ...], res_blocks: int,
        attention_levels: tuple[int, ...], groups: int, dropout: float, schedule: str, train_steps: int,
        beta_start: float, beta_end: float, sampler: str, steps: int, eta: float, seed: int,
    ) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if not 1 <= steps <= train_steps:
            raise ValueError(f"steps must be in 1..train_steps ({train_steps}), got {steps}")
        self.scale = scale
        self.multiple = 2 ** (len(channel_multipliers) - 1)
        self.betas = make_betas(schedule, train_steps, beta_start, beta_end)
        self.sampler, self.eta = sampler, eta
        self.steps, self.seed = steps, seed
        self.denoiser = UNet(channels=channels, channel_multipliers=tuple(channel_multipliers),
                             res_blocks=res_blocks, attention_levels=tuple(attention_levels),
                             groups=groups, dropout=dropout)

    @property
    def train_steps(self) -> int:
        return len(self.betas)

    def set_sampler(self, *, steps: int | None = None, seed: int | None = None) -> None:
        """Set the number of denoiser evaluations of a sample and its seed (``None``: unchanged)."""
        if steps is not None:
            if not 1 <= steps <= self.train_steps:
                raise SrlabError(f"--steps must be in 1..{self.train_steps} (the training schedule's length), got {steps}")
            self.steps = steps
        if seed is not None:
            self.seed = seed

    def condition(self, lr: Tensor) -> Tensor:
        """The bicubic upsampling of ``lr`` in [-1, 1], padded (replicate) to the U-Net's multiple."""
        up = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False) * 2 - 1
        return self._pad(up)

    def _pad(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return F.pad(x, (0, -w % self.multiple, 0, -h % self.multiple), mode="replicate")

    def draw_training(self, lr: Tensor, hr: Tensor) -> DiffusionDraw:
        """The training draw of ``step: diffusion`` (:mod:`srlab.models.diffusion_training`): the training
        forward's ``noisy`` and ``noise_level`` from :meth:`draw_training_noise`, the noise as the target,
        and the clean image ``(noisy - sqrt(1 - g^2) * eps) / g`` a predicted noise implies."""
        noisy, level, noise = self.draw_training_noise(hr)
        g = level.view(-1, 1, 1, 1)

        def clean(predicted: Tensor) -> Tensor:
            return (((noisy - (1 - g.square()).sqrt() * predicted) / g + 1) / 2).clamp(0, 1)

        return DiffusionDraw(inputs={"noisy": noisy, "noise_level": level}, target=noise, clean=clean)

    def draw_training_noise(self, hr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(noisy, noise_level, noise)`` for an HR batch in [0, 1], drawn from the global RNG of ``hr``'s
        device (seeded by ``step: diffusion``): step t uniform in 1..T per image, the level uniform between
        those of t - 1 and t."""
        levels = noise_levels(self.betas).to(hr.device)
        t = torch.randint(1, self.train_steps + 1, (hr.shape[0],), device=hr.device)
        u = torch.rand(hr.shape[0], device=hr.device, dtype=torch.float64)
        level = (levels[t] + u * (levels[t - 1] - levels[t])).to(hr.dtype)
        noise = torch.randn_like(hr)
        g = level.view(-1, 1, 1, 1)
        return g * (hr * 2 - 1) + (1 - g.square()).sqrt() * noise, level, noise

    def forward(self, lr: Tensor, noisy: Tensor | None = None, noise_level: Tensor | None = None) -> Tensor:
        if noisy is None:
            return self.sample(lr)
        if noise_level is None:
            raise ValueError("the training forward needs noise_level with noisy")
        h, w = noisy.shape[-2:]
        eps = self.denoiser(torch.cat([self.condition(lr), self._pad(noisy)], dim=1), noise_level)
        return eps[..., :h, :w]

    @torch.no_grad()  # never differentiated: autograd would keep every step's activations (memory x steps)
    def sample(self, lr: Tensor) -> Tensor:
        """A sample for ``lr`` with the model's sampler, ``steps`` and ``seed``; RGB in [0, 1]. Runs without
        autograd, in train mode too: training differentiates the training forward only."""
        condition = self.condition(lr)
        h, w = lr.shape[-2] * self.scale, lr.shape[-1] * self.scale
        if lr.device.type == "meta":  # MAC counting (module docstring): one denoiser evaluation, shapes only
            level = torch.ones(lr.shape[0], device=lr.device, dtype=condition.dtype)
            eps = self.denoiser(torch.cat([condition, torch.empty_like(condition)], dim=1), level)
            return eps[..., :h, :w]
        generator = torch.Generator().manual_seed(self.seed)

        def noise() -> Tensor:  # drawn on the CPU: the same noise on every device
            return torch.randn(condition.shape, generator=generator, dtype=condition.dtype).to(lr.device)

        alpha_bar = noise_levels(self.betas).square().tolist()
        visited = respaced_steps(self.train_steps, self.steps)
        x = noise()
        for i in reversed(range(self.steps)):
            a, a_prev = alpha_bar[visited[i]], alpha_bar[visited[i - 1]] if i > 0 else 1.0
            level = torch.full((lr.shape[0],), math.sqrt(a), device=lr.device, dtype=condition.dtype)
            eps = self.denoiser(torch.cat([condition, x], dim=1), level)
            if self.sampler == "ddim":
                x = ddim_update(x, eps, a, a_prev, self.eta, noise() if self.eta > 0 and i > 0 else None)
            else:
                x = ddpm_update(x, eps, a, a_prev, noise() if i > 0 else None)
        return ((x[..., :h, :w] + 1) / 2).clamp(0, 1)


_PAPER = "Saharia et al., Image Super-Resolution via Iterative Refinement (SR3), TPAMI 2022"
_ORIGIN = "https://github.com/Janspiry/Image-Super-Resolution-via-Iterative-Refinement"
_REFUSAL = ("diffusion sampling draws its noise for the whole image and attends over all of it: a tile's "
            "sample differs from the whole image's; drop --tile")


def _info(paper: str) -> ModelInfo:
    # The attention makes one output pixel depend on every input pixel; tiling is refused, so the radius
    # (the default tile overlap) is nominal: the U-Net's size multiple.
    multiple = lambda a: 2 ** (len(a["channel_multipliers"]) - 1)  # noqa: E731
    return ModelInfo(
        paper=paper, origin=_ORIGIN, licence="Apache-2.0", scales=(4, 8), size_multiple=multiple,
        pad_mode="inside", receptive_radius=multiple, tiling_refusal=_REFUSAL, half_precision_safe=False,
    )


@register_model(_info(_PAPER))
def sr3(
    *, scale: int, channels: int = 64, channel_multipliers: tuple[int, ...] = (1, 2, 4, 8, 8), res_blocks: int = 2,
    attention_levels: tuple[int, ...] = (3,), groups: int = 32, dropout: float = 0.2, schedule: str = "linear",
    train_steps: int = 2000, beta_start: float = 1e-6, beta_end: float = 1e-2, sampler: str = "ddpm",
    steps: int = 2000, eta: float = 0.0, seed: int = 1,
) -> SR3:
    """SR3 at the reimplementation's 16->128 configuration (config/sr_sr3_16_128.json): 64 channels,
    multipliers 1,2,4,8,8, two blocks per level, attention at 16x16 of 128x128, dropout 0.2, linear betas
    1e-6..1e-2 over 2000 steps, sampled by the full ancestral chain."""
    return SR3(scale=scale, channels=channels, channel_multipliers=channel_multipliers, res_blocks=res_blocks,
               attention_levels=attention_levels, groups=groups, dropout=dropout, schedule=schedule,
               train_steps=train_steps, beta_start=beta_start, beta_end=beta_end, sampler=sampler, steps=steps,
               eta=eta, seed=seed)


@register_model(_info(_PAPER + " (srlab's CPU-sized configuration)"))
def sr3_tiny(
    *, scale: int, channels: int = 16, channel_multipliers: tuple[int, ...] = (1, 1, 2, 2), res_blocks: int = 1,
    attention_levels: tuple[int, ...] = (), groups: int = 8, dropout: float = 0.0, schedule: str = "linear",
    train_steps: int = 2000, beta_start: float = 1e-6, beta_end: float = 1e-2, sampler: str = "ddim",
    steps: int = 4, eta: float = 0.0, seed: int = 1,
) -> SR3:
    """A small SR3 that trains on a CPU in minutes (16 channels, four levels, self-attention only in the
    middle, at 1/8 of the HR size like sr3's: attention costs grow with the square of the area), sampled by 4 DDIM steps
    (cheap validation; ``srlab upscale --steps`` takes more)."""
    return SR3(scale=scale, channels=channels, channel_multipliers=channel_multipliers, res_blocks=res_blocks,
               attention_levels=attention_levels, groups=groups, dropout=dropout, schedule=schedule,
               train_steps=train_steps, beta_start=beta_start, beta_end=beta_end, sampler=sampler, steps=steps,
               eta=eta, seed=seed)
