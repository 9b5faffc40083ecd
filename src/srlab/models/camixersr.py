"""CAMixerSR: content-aware mixing of convolution and window attention.

Paper: Yan Wang, Yi Liu, Shijie Zhao, Junlin Li, Li Zhang, "CAMixerSR: Only Details Need More
'Attention'", CVPR 2024. Official code: icandle/CAMixerSR (Apache-2.0, BasicSR-based),
``codes/basicsr/archs/CAMixerSR_arch.py`` (class ``CAMixerSR``), read at commit 41f3995.

The network: a 3x3 head conv (3 -> C), a global predictor (1x1 conv C -> 8, LeakyReLU(0.1), 3x3 conv
8 -> 2, LeakyReLU(0.1)) whose 2-channel map conditions every mixer, four groups of 4, 4, 6, 6 blocks
(each group ends in a 1x1 conv and a residual), a 3x3 body-tail conv with a long residual and a
sub-pixel head (3x3 conv + PixelShuffle). A block is post-norm: ``x = LN(x + CAMixer(x))`` then
``x = LN(x + GatedFFN(x))`` (channel LayerNorms, eps 1e-6; the FFN is 1x1 C -> 2C, depth-wise 3x3,
GELU gate, 1x1, no bias).

The CAMixer, on 16x16 windows: ``v = 1x1(x)``; a predictor reads ``[v, global condition, the window's
(row, column) coordinates in [-1, 1]]`` (C + 4 channels) through a 1x1 conv to (C + 4) / 4 channels,
LayerNorm and LeakyReLU, and predicts (a) offsets, ``8 * tanh`` of two 1x1 convs, by which ``x`` is
bilinearly warped (border padding) to build the keys ``k = x + warp(x)``, (b) a channel attention
``ca`` (global average pool, 1x1, sigmoid) and a spatial attention ``sa`` (3x3, sigmoid), and (c) per
window a two-way score (the channel mean of the window's pixels through Linear(ws^2 -> ws), LeakyReLU,
Linear(ws -> 2), softmax). The "complex" windows get single-head window self-attention (queries
``Linear(x)``, keys ``Linear(k)``, values ``v``; no scaling of the logits); the others just pass ``v *
sa``. The result ``y`` then goes through ``y + GELU(dw3x3(dw3x3 dilated 2 (y))) * ca`` and a 1x1 conv.

The content-adaptive compute knob, ``ratio`` (official default 0.5): at inference the windows are
ranked by their score and the top ``int(N * r * 2 * ratio)`` go to attention, where ``r`` is the
fraction of windows the predictor's hard decision marks complex; ``ratio = 1`` sends every window to
attention. So the fraction attended is ``2 * ratio * r`` (``r`` itself at the default 0.5). For a MAC
count (:func:`srlab.models.complexity.count_macs` runs on the ``meta`` device, without data) ``r`` is
taken to be 0.5, the official ``calculate_flops`` convention: ``ratio`` of the windows are attended.

Inference is deterministic here; the official eval forward is not. The official decision ``r`` is
``mean(gumbel_softmax(score, hard=True)[..., 0])``: Gumbel noise is drawn on every forward pass (on
the softmax probabilities, used as logits), so the number of attended windows, and the output, change
from run to run. srlab takes the same straight-through expression with the noise set to zero (the
noise-free hard decision ``argmax(score)``; the ranking of windows never had noise). The official
behaviour is available for comparison behind ``gumbel_seed``: each forward pass then draws the
official Gumbel noise with ``F.gumbel_softmax`` from the global generator reseeded with that seed
(and restored afterwards), so the noisy figure is reproducible too. The official test script instead
seeds once (``manual_seed: 0``) and lets the noise run on across images on the GPU, so its exact
draws cannot be reproduced on another device.

What the difference does, measured with the released CAMixerSR-S (x4, ratio 0.5, Set5, srlab's
protocol: Y channel, crop 4): the noise-free decision is nearly all-or-nothing per block (the
predictor's window probabilities mostly sit on one side of 0.5 throughout a block, so most blocks
attend every window or none; about half of the windows overall), while the noise makes every block attend a random ~half
(the Gumbel noise swamps probabilities used as logits). Deterministic: PSNR/SSIM 32.3365 / 0.8968;
seeded official noise (seeds 0 / 1 / 2): 32.3075 / 0.8963, 32.2717 / 0.8959, 32.2821 / 0.8961; all
windows attended (ratio 1): 32.3363 / 0.8969. The paper publishes no Set5 figure for CAMixerSR-S (its
large-image table is Test2K/4K/8K). Against the official module (eval mode, the same noise or none)
the outputs agree to 4e-5.

Training (``model.train()``): every window is computed, attention on the windows the noisy hard
decision marks complex (masked queries, keys and values) and ``v * sa`` on the others, and the forward
returns ``(sr, {"ratio_loss": 2 * ratio * (mean decision - 0.5)^2})``, as the official training
forward returns ``(image, ratio loss)`` (the mean decision over the batch, the windows and every block).
``srlab train`` hands the dict to the losses (``LossInputs.aux``); the official objective is
``l1 + ratio_loss`` (the ``aux_penalty`` loss with ``key: ratio_loss``, weight 1;
``configs/camixersr_x4.yaml``). Checked once against the official module in training mode (same
weights, same Gumbel draws; x2, C = 60, a 2x3x32x40 batch): SR within 1.7e-6, the ratio loss identical.
The published ``CAMixerSR`` class never stores its ``ratio`` argument, so its own training forward
stops with an AttributeError as released; the check set it, and srlab uses the model's ``ratio``.

Variants: ``camixersr`` (C = 60, the lightweight-SR model, x2 / x3 / x4: 745,846 / 753,961 / 765,322
parameters) and ``camixersr_s`` (C = 36, the large-image model, x4: 351,238 parameters; the released
``CAMixerSR_S.pth``). Input and output are RGB in [0, 1]; module and parameter names are the official
ones, so the official checkpoints (``params_ema``) load strictly.

Deviations from the official code (none changes the state dict):
- the deterministic decision above (official: a Gumbel sample per forward; ``gumbel_seed`` restores it);
- the official eval-mode ``tile`` option is left out (srlab's generic tiled inference does that job);
- the window size is a hyper-parameter (official: fixed 16); the input is reflect-padded to a multiple
  of it inside the forward, as the official ``check_image_size`` does, except that a pad not smaller
  than the side (an input under 9 pixels), where the official reflect pad raises, replicates the edge;
- the channel LayerNorm is ``F.layer_norm`` (:class:`srlab.layers.LayerNorm2d`; the official one
  writes the mean and variance out), equal up to float32 rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.ffn import GatedFeedForward
from srlab.layers.norm import LayerNorm2d
from srlab.layers.padding import pad_to_multiple
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model

OFFSET_RANGE = 8.0  # pixels: the predicted offsets are 8 * tanh(.)
ASSUMED_DECISION = 0.5  # the fraction r marked complex when no data is available (MAC counting)


def to_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, nW, ws*ws, C): windows in row-major order, pixels row-major inside."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // ws) * (w // ws), ws * ws, c)


def from_windows(windows: torch.Tensor, ws: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`."""
    b, _, _, c = windows.shape
    x = windows.view(b, height // ws, width // ws, ws, ws, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, height, width)


def warp(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` at each pixel moved by ``offsets`` (B, 2, H, W: x then y, in pixels); bilinear,
    border padding, ``align_corners=True`` (BasicSR's ``flow_warp`` as the official code calls it)."""
    _, _, h, w = x.shape
    grid_y, grid_x = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype), torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij"
    )
    moved = torch.stack((grid_x, grid_y), dim=2) + offsets.permute(0, 2, 3, 1)
    norm_x = 2.0 * moved[..., 0] / max(w - 1, 1) - 1.0
    norm_y = 2.0 * moved[..., 1] / max(h - 1, 1) - 1.0
    grid = torch.stack((norm_x, norm_y), dim=3)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def hard_decision(probs: torch.Tensor, noisy: bool) -> torch.Tensor:
    """Straight-through one-hot of the two-way window scores (B, N, 2): ``F.gumbel_softmax(hard=True)``
    when ``noisy``, otherwise the same expression with zero noise (argmax, first index on ties)."""
    if noisy:
        return F.gumbel_softmax(probs, hard=True, dim=-1)
    soft = probs.softmax(dim=-1)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    return hard - soft.detach() + soft


class PredictorLG(nn.Module):
    """Predicts, from the mixer's condition, the offsets, channel / spatial attention and window scores."""

    def __init__(self, dim: int, window_size: int) -> None:
        super().__init__()
        self.window_size = window_size
        cdim = dim + 4  # v, the 2-channel global condition, the 2 window coordinates
        self.in_conv = nn.Sequential(
            nn.Conv2d(cdim, cdim // 4, 1), LayerNorm2d(cdim // 4, eps=1e-6), nn.LeakyReLU(0.1, inplace=True)
        )
        self.out_offsets = nn.Sequential(
            nn.Conv2d(cdim // 4, cdim // 8, 1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(cdim // 8, 2, 1)
        )
        self.out_mask = nn.Sequential(
            nn.Linear(window_size**2, window_size),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(window_size, 2),
            nn.Softmax(dim=-1),
        )
        self.out_CA = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cdim // 4, dim, 1), nn.Sigmoid())
        self.out_SA = nn.Sequential(nn.Conv2d(cdim // 4, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, condition: torch.Tensor, noisy: bool):
        """Returns (per-window "complex" decision (B, N, 1), window scores (B, N), offsets, ca, sa)."""
        hidden = self.in_conv(condition)
        offsets = self.out_offsets(hidden).tanh().mul(OFFSET_RANGE)
        ca, sa = self.out_CA(hidden), self.out_SA(hidden)
        probs = self.out_mask(to_windows(hidden.mean(dim=1, keepdim=True), self.window_size).squeeze(-1))
        return hard_decision(probs, noisy)[..., :1], probs[..., 0], offsets, ca, sa


def attended_count(decision: torch.Tensor, ratio: float) -> int:
    """How many windows go to attention: ``int(N * r * 2 * ratio)`` capped at N (all when ratio is 1),
    with r the mean decision over the batch and windows (``ASSUMED_DECISION`` without data)."""
    n = decision.shape[1]
    if ratio == 1:
        return n
    if decision.device.type == "meta":
        return min(int(n * ASSUMED_DECISION * 2 * ratio), n)
    return min(int(n * decision.mean(dim=(0, 1)) * 2 * ratio), n)


def select_windows(windows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, N, T, C) windows at ``idx`` (B, K) -> (B, K, T, C)."""
    return windows.gather(1, idx[:, :, None, None].expand(-1, -1, *windows.shape[2:]))


class CAMixer(nn.Module):
    def __init__(self, dim: int, window_size: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.project_v = nn.Conv2d(dim, dim, 1)
        self.project_q = nn.Linear(dim, dim)
        self.project_k = nn.Linear(dim, dim)
        self.conv_sptial = nn.Sequential(  # (sic) the official name
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.Conv2d(dim, dim, 3, padding=2, groups=dim, dilation=2),
        )
        self.project_out = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.route = PredictorLG(dim, window_size)

    def window_coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W): each pixel's (row, column) position inside its window, in [-1, 1]."""
        ramp = torch.linspace(-1, 1, self.window_size, device=x.device, dtype=x.dtype)
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="ij"))
        b, _, h, w = x.shape
        return coords.unsqueeze(0).repeat(b, 1, h // self.window_size, w // self.window_size)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Single-head self-attention inside each window of (B, n, T, C) tensors, unscaled logits."""
        b, n, t, c = v.shape
        q, k, v = (z.reshape(b * n, t, c) for z in (self.project_q(q), self.project_k(k), v))
        return ((q @ k.transpose(-2, -1)).softmax(dim=-1) @ v).view(b, n, t, c)

    def forward(self, x: torch.Tensor, condition_global: torch.Tensor, ratio: float, noisy: bool):
        """Returns (output, mean decision per image (B, 1)); the decision is used in training only."""
        ws = self.window_size
        _, _, h, w = x.shape
        v = self.project_v(x)
        condition = torch.cat([v, condition_global, self.window_coordinates(x)], dim=1)
        decision, scores, offsets, ca, sa = self.route(condition, noisy)
        keys = x + warp(x, offsets)
        q_win, k_win = to_windows(x, ws), to_windows(keys, ws)
        v_win, vs_win = to_windows(v, ws), to_windows(v * sa, ws)
        if self.training:
            mask = decision[..., None]
            mixed = self.attend(q_win * mask, k_win * mask, v_win * mask) + vs_win * (1 - mask)
        else:
            order = torch.argsort(scores, dim=1, descending=True)
            chosen = order[:, : attended_count(decision, ratio)]
            attended = self.attend(*(select_windows(t, chosen) for t in (q_win, k_win, v_win)))
            index = chosen[:, :, None, None].expand(-1, -1, *vs_win.shape[2:])
            mixed = vs_win.scatter(1, index, attended)
        out = from_windows(mixed, ws, h, w)
        out = self.act(self.conv_sptial(out)) * ca + out
        return self.project_out(out), decision.mean(dim=1)


class Block(nn.Module):
    def __init__(self, n_feats: int, window_size: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(n_feats, eps=1e-6)
        self.mixer = CAMixer(n_feats, window_size)
        self.norm2 = LayerNorm2d(n_feats, eps=1e-6)
        self.ffn = GatedFeedForward(n_feats, 1.0, bias=False)

    def forward(self, x: torch.Tensor, condition_global: torch.Tensor, ratio: float, noisy: bool):
        res, decision = self.mixer(x, condition_global, ratio, noisy)
        x = self.norm1(x + res)
        return self.norm2(x + self.ffn(x)), decision


class Group(nn.Module):
    def __init__(self, n_feats: int, n_block: int, window_size: int) -> None:
        super().__init__()
        self.body = nn.ModuleList(Block(n_feats, window_size) for _ in range(n_block))
        self.body_tail = nn.Conv2d(n_feats, n_feats, 1)

    def forward(self, x: torch.Tensor, condition_global: torch.Tensor, ratio: float, noisy: bool):
        shortcut, decisions = x, []
        for block in self.body:
            x, decision = block(x, condition_global, ratio, noisy)
            decisions.append(decision)
        return self.body_tail(x) + shortcut, decisions


class CAMixerSR(nn.Module):
    """CAMixerSR; ``ratio`` (attribute, may be changed between calls) is the compute knob and
    ``gumbel_seed`` (None: deterministic) selects the official noisy decision, see the module docstring."""

    def __init__(
        self,
        *,
        scale: int,
        n_feats: int,
        n_blocks: tuple[int, ...],
        window_size: int,
        ratio: float,
        gumbel_seed: int | None,
        upsampler: str = "subpixel",
    ) -> None:
        super().__init__()
        if not 0 <= ratio <= 1:
            raise ValueError(f"ratio (the share of windows sent to attention) must be in [0, 1], got {ratio}")
        self.scale = scale
        self.window_size = window_size
        self.ratio = ratio
        self.gumbel_seed = gumbel_seed
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.global_predictor = nn.Sequential(
            nn.Conv2d(n_feats, 8, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(8, 2, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
        )
        self.body = nn.ModuleList(Group(n_feats, n, window_size) for n in n_blocks)
        self.body_tail = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.tail = image_head(upsampler, in_channels=n_feats, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The SR image; in training ``(sr, {"ratio_loss": ...})`` (see the module docstring)."""
        if self.training:
            sr, decisions = self._forward(x, noisy=True)
            share = torch.cat(decisions, dim=1).mean()
            return sr, {"ratio_loss": 2 * self.ratio * (share - 0.5) ** 2}
        if self.gumbel_seed is None:
            return self._forward(x, noisy=False)[0]
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.gumbel_seed)
            return self._forward(x, noisy=True)[0]

    def _forward(self, x: torch.Tensor, noisy: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(SR image, every block's mean decision per image (B, 1))."""
        height, width = x.shape[-2:]
        features = self.head(pad_to_multiple(x, self.window_size, "reflect"))
        condition_global = self.global_predictor(features)
        body, decisions = features, []
        for group in self.body:
            body, group_decisions = group(body, condition_global, self.ratio, noisy)
            decisions.extend(group_decisions)
        out = self.tail(self.body_tail(body) + features)
        return out[..., : height * self.scale, : width * self.scale], decisions


def _info(paper: str, scales: tuple[int, ...]) -> ModelInfo:
    return ModelInfo(
        adaptive="camixersr",
        paper=paper,
        origin="https://github.com/icandle/CAMixerSR",
        licence="Apache-2.0",
        scales=scales,
        size_multiple=lambda a: a["window_size"],
        pad_mode="inside",  # the official forward reflect-pads to the window size itself
        # Attention spans a window and the keys are warped by up to 8 px; the decision of which windows
        # are attended depends on the whole image, so tiled inference is close to, not equal to, untiled.
        receptive_radius=lambda a: 2 * a["window_size"],
        reparameterizable=False,
        half_precision_safe=False,  # unscaled attention logits; not checked in float16
    )


_PAPER = "Wang et al., CAMixerSR: Only Details Need More 'Attention', CVPR 2024"
_BLOCKS = (4, 4, 6, 6)


@register_model(_info(_PAPER + " (lightweight SR)", (2, 3, 4)))
def camixersr(
    *,
    scale: int,
    n_feats: int = 60,
    n_blocks: tuple[int, ...] = _BLOCKS,
    window_size: int = 16,
    ratio: float = 0.5,
    gumbel_seed: int | None = None,
    upsampler: str = "subpixel",
) -> CAMixerSR:
    """CAMixerSR, the lightweight-SR model (C = 60, ~0.75 M parameters)."""
    return CAMixerSR(
        scale=scale,
        n_feats=n_feats,
        n_blocks=tuple(n_blocks),
        window_size=window_size,
        ratio=ratio,
        gumbel_seed=gumbel_seed,
        upsampler=upsampler,
    )


@register_model(_info(_PAPER + " (CAMixerSR-S, large-image SR)", (4,)))
def camixersr_s(
    *,
    scale: int,
    n_feats: int = 36,
    n_blocks: tuple[int, ...] = _BLOCKS,
    window_size: int = 16,
    ratio: float = 0.5,
    gumbel_seed: int | None = None,
    upsampler: str = "subpixel",
) -> CAMixerSR:
    """CAMixerSR-S as released (``CAMixerSR_S.pth``, C = 36, x4, 351,238 parameters)."""
    return CAMixerSR(
        scale=scale,
        n_feats=n_feats,
        n_blocks=tuple(n_blocks),
        window_size=window_size,
        ratio=ratio,
        gumbel_seed=gumbel_seed,
        upsampler=upsampler,
    )
