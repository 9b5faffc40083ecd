"""PCSR: pixel-level classification that routes each output pixel to a light or a heavy upsampler.

Paper: Jeong, Kim, Jo, Kim, "Accelerating Image Super-Resolution Networks with Pixel-Level
Classification", ECCV 2024. Official code: 3587jjh/PCSR (no LICENSE file: licence unknown),
``models/pcsr.py`` (``pcsr-phase1``), ``models/sampler.py`` (``liif-sampler``), ``models/mlp.py``,
``models/carn.py``, ``models/fsrcnn.py``, ``models/utils.py``. Module and parameter names equal the
official ones, so the released ``save/{carn,fsrcnn}-pcsr-phase1/iter_last.pth`` (``model.sd``) load
with strict key matching.

Structure. A backbone without upsampling (``encoder``) computes LR features. Every HR pixel then gets
one query vector (LIIF-style, *without* feature unfolding or local ensemble, as the official sampler
says): the feature of its nearest LR pixel, the offset of the HR pixel centre from that LR centre in LR
pixel units, and the HR cell size in LR units. Three MLPs read the same query: ``classifier`` (2
logits: light, heavy), ``light_sampler`` and ``heavy_sampler`` (RGB). The RGB of the chosen sampler is
added to the bilinear (border-padded) upsampling of the backbone's input.

* ``pcsr_carn``: CARN-M-style encoder (``nf=52``, grouped residual-E blocks, group 4, the weights of
  each block shared three times) whose 1x1 cascade fusions are conv (no bias) + BatchNorm + ReLU (the
  ClassSR ``BasicBlock``); heavy MLP [74]*4, light [20]*3, classifier [10, 10]. The input is the
  [0, 1] image minus the DIV2K mean (0.4488, 0.4371, 0.4040), and the mean is added back to the output;
  both happen inside this model, so it maps [0, 1] to [0, 1].
* ``pcsr_fsrcnn``: FSRCNN encoder (d=48, s=12, m=4) with single-slope PReLUs and, as in the official
  code, no activation between the four 3x3 convs (one PReLU after them); heavy MLP [58]*4, light
  [10]*3, classifier a single linear layer. Input plain [0, 1].

Routing (eval mode). ``p = softmax(classifier)``; a pixel goes to the heavy sampler iff
``p_heavy / c_heavy**k > p_light / c_light**k`` (ties go light), where ``c`` are the official relative
costs: the FLOPs (the official ``flops.py`` convention: 2 per multiply-add of convs and linear layers,
2 per BatchNorm input element, 1 per PReLU input element) of the encoder on a 16x16 LR input plus those
of each sampler on its 64x64 HR queries, normalised to sum 1. ``k`` (hyper-parameter and ``forward``
argument, default 0 = the argmax of the classifier) is the paper's knob: larger k -> fewer heavy pixels.
``routing="heavy"`` / ``"light"`` send every pixel one way (for the all-heavy upper bound).
``routing="cluster"`` is the official ``adaptive_cluster`` decision: each image's heavy probabilities,
min-max normalised, are split in two by 2-means (:func:`cluster_heavy`, the official
``fast_pytorch_kmeans`` call transcribed; its split equals that package's, 0.2.2, on 200 random vectors
and on every Set5 and Set14 image of both released networks), the cluster holding the smallest
probability going light; ``k`` is not used. Set5 x4 (Y, whole images): CARN 31.7838 dB at 63.3 % of the
all-heavy MACs, FSRCNN 30.8506 at 47.1 % (Set14: 28.3365 at 62.9 %, 27.8036 at 41.4 %): on CARN between
``k = 0`` (31.8157 at 70.4 %) and ``k = 1`` (31.7630 at 58.6 %), i.e. on the knob's own curve.

Refinement (eval mode, ``refinement=True`` as in the official test): a light pixel with at least one
heavy pixel among its 3x3 neighbours (replicate padding) is replaced by the 3x3 mean of the output
around it, except on the outermost HR rows and columns. It runs on the normalised output, before the
mean is added back, as officially.

Training follows the official two phases (``train_pcsr.py``); the hyper-parameter ``trains`` selects
what a run trains (``configs/pcsr_carn_x4_phase{0,1}.yaml``):

* ``"backbone"`` (official phase 0, ``pcsr-phase0``): the encoder and the heavy sampler as a plain SR
  network, ``heavy + bilinear base`` on every pixel, loss L1; the light sampler and the classifier are
  frozen (``requires_grad`` False) and unused. It needs ``routing="heavy"``, so validation scores the
  network being trained.
* ``"classifier"`` (official phase 1, ``pcsr-phase1``, started from the phase-0 weights with
  ``init_from``): the official ``forward_train``, both samplers on every pixel mixed by the classifier's
  probabilities (``p_light * light + p_heavy * heavy``); the encoder and the heavy sampler are frozen and
  kept in eval mode (the CARN encoder's BatchNorm statistics stay fixed), as officially. Loss
  ``1000 * l1 + 3 * pcsr_average`` (the official ``loss_rgb_w``, ``loss_avg_w``).
* ``"all"`` (default): the same mixed forward with every part trained (not an official phase).

With ``"classifier"`` or ``"all"`` the training forward returns ``(sr, {"pcsr_probs": p})``, ``p`` the
softmax of the classifier per HR pixel, (N, 2, H, W) (light, heavy), which ``srlab train`` hands to the
losses (``pcsr_average``, srlab.losses.pcsr). The official phase-1 model also starts its light sampler
and classifier afresh; ``init_from`` loads them from the phase-0 weights, where they are still the
untrained initialisation of that run. The official phases crop the LR from each HR patch (bicubic);
srlab crops aligned patches of LR images made once per image. Checked once against the official
``pcsr-phase0`` / ``pcsr-phase1`` training forwards (CARN, same weights, frozen parts in eval mode for
phase 1, all HR pixels of a 2x3x8x6 batch as the queries): outputs within 6e-8, probabilities and the
phase-1 loss ``1000 * L1 + 3 * loss_avg`` identical.

Cost. :meth:`PCSR.upscale_routed` returns the output and the per-pixel heavy mask;
:meth:`PCSR.macs_spent` turns pixel counts into MACs (srlab convention, multiply-accumulates):
backbone MACs + classifier MACs x all pixels + light MACs x light pixels + heavy MACs x heavy pixels.
On the ``meta`` device (``srlab.models.count_macs``, ``srlab models``) there are no pixel values to
route, so the static count is the all-heavy upper bound.

Parameters. All parameters, BatchNorm affine ones included (running statistics are buffers):
``pcsr_carn`` 168,970 = the official log's "168.97K" (``compute_num_params``); ``pcsr_fsrcnn`` 24,502.
The log's "294.92K" is the plain CARN-M (nf 64) + upsampling baseline ``carn-x4`` the paper compares
with, not a PCSR network (that baseline is not registered here). The FLOPs rule above, applied to the
released ``carn-x4`` at the log's LR 276x420, gives its "130.91G" exactly.

Checked against the official code (its ``models`` package run on CPU with the released weights and
this module's cost list): identical heavy masks and bit-identical outputs at k = 0 and 1 on Set5 LR
images and an odd-sized random input, for both variants.

Measured (CPU, srlab eval: Set5 x4, PSNR on Y, whole images; the PCSR columns are asserted in
tests/models/test_pcsr.py, the baselines were run once through the official code, not kept as tests):

=============  ==========  =============  ============  ==========================================
variant        k=0 (dB)    heavy pixels   all heavy     released plain baseline (backbone + heavy)
=============  ==========  =============  ============  ==========================================
pcsr_carn      31.8157     40.8 %         31.8623       carn-x4 31.8229; PCSR k=0 at 70.6 % of its
                                                        official FLOPs (58.8 % at k=1)
pcsr_fsrcnn    30.8932     49.4 %         30.9310       fsrcnn-x4 30.6876; PCSR k=0 at 53.7 %
=============  ==========  =============  ============  ==========================================

The paper's own comparison (one Test2K image, RGB PSNR, CARN: 29.49 vs 29.48 dB at 57 % FLOPs) needs
Test2K, which is not available here.

Deviations from the official code:
* The official test script crops 32x32 LR patches (step 28) and averages the overlaps, or runs per
  image (``--per_image``). The model's forward is the per-image mode (whole images, or srlab's tiles);
  ``srlab eval`` scores the patch mode through the adaptive method (:mod:`srlab.adaptive.pcsr`; Set5 x4
  CARN k=0 31.2856 dB there, 31.8157 per image: the patches' borders and the crop cost 0.5 dB on Set5's
  small images).
* The 3x3 mean of the refinement is an average pooling; the official code averages an unfolded
  tensor (bit-identical in the check above; not guaranteed on every backend).
* The official cost list is measured with CUDA tensors at the first call; here it is a shape-only
  count at build time (same numbers; float64 instead of float32 until it meets the probabilities).
* The adaptive decision (``routing="cluster"``) clusters a batch's probabilities together, as officially
  (whole images run one at a time; the patch protocol's batches of 96 patches together); it computes the
  query vectors twice (once for the decision). Where every probability is equal the official code stops
  on an assertion; srlab sends every pixel light.
* The official configs score RGB PSNR (``psnr_type: rgb``); ``srlab eval`` scores Y by default
  (``--protocol rgb`` for theirs). With ``--tile`` the refinement sees each tile's own border.
* Queries are computed in chunks of ``pixel_chunk`` HR pixels (the official ``pixel_batch_size``);
  pixels are independent, so this changes nothing but memory.
* In eval mode the MLPs run on blocks of 4096 queries (``_MLP_ROWS``: ~3x faster on CPU, the blocks' activations
  staying in cache), and each sampler reads only its own pixels' queries, a block at a time. A matrix product
  over fewer rows may round differently: a few output values in 10^5 differ by one float32 ulp (6e-8) from
  one product over the whole chunk (the form checked bit for bit against the official code above); no
  8-bit output or score changes in the tests.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.mean_shift import DIV2K_RGB_MEAN
from srlab.models.carn import EfficientResidualUnit, cascade
from srlab.models.complexity import count_macs
from srlab.models.registry import ModelInfo, register_model

ROUTINGS = ("classifier", "cluster", "heavy", "light")
# The official adaptive decision: fast_pytorch_kmeans' KMeans(n_clusters=2, max_iter=20), its default tol.
_CLUSTER_MAX_ITER, _CLUSTER_TOL = 20, 1e-4
#: What the ``trains`` hyper-parameter accepts (see the module docstring).
TRAINED_PARTS = ("all", "backbone", "classifier")
# The official cost list is measured on a 16x16 LR input (and its 64x64 HR queries at x4).
_COST_LR_SIZE = 16
# Inference runs the MLPs on blocks of this many queries: a block's activations (74 floats a query in the
# heavy MLP) stay in the CPU cache, ~3x faster on CPU than one matrix product over a whole image's queries.
_MLP_ROWS = 4096


def _fusion(in_channels: int, out_channels: int) -> nn.Sequential:
    """ClassSR's ``BasicBlock`` as CARN-in-PCSR calls it: 1x1 conv without bias, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CarnBlock(nn.Module):
    """One residual-E unit ``b1`` applied three times, with the local cascade's fusions ``c1..c3``."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.b1 = EfficientResidualUnit(channels, group=group)
        self.c1 = _fusion(2 * channels, channels)
        self.c2 = _fusion(3 * channels, channels)
        self.c3 = _fusion(4 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cascade(x, [self.b1, self.b1, self.b1], [self.c1, self.c2, self.c3])


class CarnEncoder(nn.Module):
    """CARN-M features without upsampling (official ``carn`` with ``no_upsampling=True``)."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.out_dim = channels
        self.entry = nn.Conv2d(3, channels, 3, padding=1)
        self.b1 = CarnBlock(channels, group=group)
        self.b2 = CarnBlock(channels, group=group)
        self.b3 = CarnBlock(channels, group=group)
        self.c1 = _fusion(2 * channels, channels)
        self.c2 = _fusion(3 * channels, channels)
        self.c3 = _fusion(4 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cascade(self.entry(x), [self.b1, self.b2, self.b3], [self.c1, self.c2, self.c3])


class FsrcnnEncoder(nn.Module):
    """FSRCNN features without the deconvolution (official ``fsrcnn`` with ``no_upsampling=True``)."""

    def __init__(self, d: int, s: int, m: int) -> None:
        super().__init__()
        self.out_dim = d
        self.head_conv = nn.Sequential(nn.Conv2d(3, d, 5, padding=2), nn.PReLU())
        # As officially: the m 3x3 convs follow each other with one PReLU after the last.
        self.body_conv = nn.Sequential(
            nn.Sequential(nn.Conv2d(d, s, 1), nn.PReLU()),
            *[nn.Conv2d(s, s, 3, padding=1) for _ in range(m)],
            nn.PReLU(),
            nn.Sequential(nn.Conv2d(s, d, 1), nn.PReLU()),
        )
        # The official (ClassSR) initialisation: Kaiming-normal convs scaled by 0.1, zero biases.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
                module.weight.data.mul_(0.1)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body_conv(self.head_conv(x))


class MLP(nn.Module):
    """Linear layers with ReLU between them, under the official name ``layers``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            in_dim = width
        layers.append(nn.Linear(in_dim, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.is_meta or x.shape[-2] <= _MLP_ROWS:
            return self.layers(x)
        return torch.cat([self.layers(rows) for rows in x.split(_MLP_ROWS, dim=-2)], dim=-2)

    def macs_per_query(self) -> int:
        return sum(m.in_features * m.out_features for m in self.layers if isinstance(m, nn.Linear))


class Sampler(nn.Module):
    """Official ``liif-sampler``: an MLP ``imnet`` over (feature, relative coordinate, relative cell)."""

    def __init__(self, feat_dim: int, out_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.imnet = MLP(feat_dim + 4, out_dim, hidden)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return self.imnet(query)


def grid_centres(n: int, *, like: torch.Tensor) -> torch.Tensor:
    """Centres of ``n`` cells spanning [-1, 1] (the official ``make_coord`` along one axis)."""
    r = 1.0 / n
    return -1 + r + (2 * r) * torch.arange(n, device=like.device).to(like.dtype)


def hr_queries(out_size: tuple[int, int], *, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official coordinates (y, x) of every HR pixel centre, row-major (q, 2), and their cells (q, 2)."""
    height, width = out_size
    ys, xs = grid_centres(height, like=like), grid_centres(width, like=like)
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).view(-1, 2)
    cell = torch.empty_like(coord)
    cell[:, 0], cell[:, 1] = 2 / height, 2 / width
    return coord, cell


def query_vectors(feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """The sampler input of one image's queries: nearest LR feature, offset and cell in LR units.

    ``feat`` (1, C, h, w), ``coord``/``cell`` (n, 2) -> (1, n, C + 4).
    """
    h, w = feat.shape[-2:]
    grid = coord.flip(-1).view(1, 1, -1, 2)
    # The official code samples the features and the LR pixel centres with grid_sample(mode="nearest").
    # Sampling a map of flat pixel indices picks the same LR pixels (indices are exact in float32 up to
    # 2^24 pixels); the rows are then gathered from a (h * w, C) table, faster than sampling C channels
    # and transposing them (the same values: both copy the chosen pixels).
    index_map = torch.arange(h * w, device=feat.device).to(feat.dtype).view(1, 1, h, w)
    nearest = F.grid_sample(index_map, grid, mode="nearest", align_corners=False).view(-1).long()
    q_feat = feat[0].permute(1, 2, 0).reshape(h * w, -1).index_select(0, nearest)
    ys, xs = grid_centres(h, like=feat), grid_centres(w, like=feat)
    feat_coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).view(h * w, 2)
    rel_coord = coord - feat_coord.index_select(0, nearest)
    lr_units = torch.tensor([h, w], dtype=feat.dtype, device=feat.device)
    return torch.cat([q_feat, rel_coord * lr_units, cell * lr_units], dim=-1).unsqueeze(0)


def bilinear_base(lr: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """Bilinear (border-padded) samples of ``lr`` (1, 3, h, w) at ``coord`` (n, 2) -> (1, n, 3)."""
    grid = coord.flip(-1).view(1, 1, -1, 2)
    base = F.grid_sample(lr, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return base[:, :, 0, :].transpose(1, 2)


def _official_flops(module: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs as the official ``flops.py`` counts them (2 per multiply-add of convs and linear layers,
    2 per BatchNorm input element, 1 per PReLU input element; no bias, ReLU or resizing)."""
    total = 0

    def hook(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        x = args[0]
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):  # per output element, both
            total += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += 2 * (x.numel() // x.shape[-1]) * m.in_features * m.out_features
        elif isinstance(m, nn.BatchNorm2d):
            total += 2 * x.numel()
        elif isinstance(m, nn.PReLU):
            total += x.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


@dataclass(frozen=True)
class Routing:
    """Where the pixels of one forward went: per-pixel heavy mask (N, 1, H, W) and refined mask."""

    heavy: torch.Tensor
    refined: torch.Tensor

    @property
    def heavy_fraction(self) -> float:
        return self.heavy.float().mean().item()


class PCSR(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        *,
        scale: int,
        heavy: Sequence[int],
        light: Sequence[int],
        classifier: Sequence[int],
        input_mean: Sequence[float] | None,
        k: float,
        routing: str,
        refinement: bool,
        pixel_chunk: int,
        trains: str,
    ) -> None:
        super().__init__()
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
        if trains not in TRAINED_PARTS:
            raise ValueError(f"trains must be one of {', '.join(TRAINED_PARTS)}, got {trains!r}")
        if trains == "backbone" and routing != "heavy":
            raise ValueError("trains 'backbone' (official phase 0) trains no classifier: set routing: heavy")
        self.scale, self.trains = scale, trains
        self.k, self.routing, self.refinement, self.pixel_chunk = k, routing, refinement, pixel_chunk
        self.encoder = encoder
        dim = encoder.out_dim
        self.heavy_sampler = Sampler(dim, 3, heavy)
        self.light_sampler = Sampler(dim, 3, light)
        self.classifier = Sampler(dim, 2, classifier)
        mean = torch.tensor(input_mean or (0.0, 0.0, 0.0)).view(1, 3, 1, 1)
        self.register_buffer("input_mean", mean, persistent=False)
        # Computed once here (a shape-only count), not inside a forward that a MAC counter may watch.
        self._relative_costs = self._official_costs()
        # LR size -> the backbone's MACs (a meta-device trace, too slow to repeat on every image)
        self._encoder_macs: dict[tuple[int, int], int] = {}
        for part in self.frozen_parts():
            part.requires_grad_(False)

    def frozen_parts(self) -> list[nn.Module]:
        """The parts the ``trains`` setting leaves untrained (see the module docstring)."""
        if self.trains == "backbone":
            return [self.light_sampler, self.classifier]
        if self.trains == "classifier":
            return [self.encoder, self.heavy_sampler]
        return []

    def train(self, mode: bool = True) -> PCSR:
        """As ``nn.Module.train``, but the frozen parts stay in eval mode (fixed BatchNorm statistics)."""
        super().train(mode)
        for part in self.frozen_parts():
            part.eval()
        return self

    def relative_costs(self) -> tuple[float, float]:
        """Official ``cost_list``: (light, heavy) cost of a pixel incl. the backbone, summing to 1."""
        return self._relative_costs

    def _official_costs(self) -> tuple[float, float]:
        n = _COST_LR_SIZE
        # shapes are all the count needs: a meta copy leaves the model (and BN statistics) untouched
        encoder = copy.deepcopy(self.encoder).to("meta").eval()
        backbone = _official_flops(encoder, torch.empty(1, 3, n, n, device="meta"))
        queries = (n * self.scale) ** 2
        light = backbone + 2 * queries * self.light_sampler.imnet.macs_per_query()
        heavy = backbone + 2 * queries * self.heavy_sampler.imnet.macs_per_query()
        return light / (light + heavy), heavy / (light + heavy)

    def forward(
        self, x: torch.Tensor, *, k: float | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The SR image; in training see the module docstring (``trains``)."""
        if not self.training:
            return self.upscale_routed(x, k=k)[0]
        if self.trains == "backbone":
            return self._forward_heavy(x)
        return self._forward_mixed(x)

    def _forward_heavy(self, x: torch.Tensor) -> torch.Tensor:
        """Official phase-0 ``forward_train``: the heavy sampler on every pixel."""
        lr = x - self.input_mean
        feat = self.encoder(lr)
        coord, cell = hr_queries(self._out_size(x), like=feat)
        outs = []
        for i in range(x.shape[0]):
            query = query_vectors(feat[i : i + 1], coord, cell)
            outs.append(self.heavy_sampler(query) + bilinear_base(lr[i : i + 1], coord))
        return self._to_image(torch.cat(outs), x) + self.input_mean

    def _forward_mixed(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Official phase-1 ``forward_train``: both samplers everywhere, mixed by the classifier's
        probabilities; returns (sr, {"pcsr_probs": (N, 2, H, W)})."""
        lr = x - self.input_mean
        feat = self.encoder(lr)
        coord, cell = hr_queries(self._out_size(x), like=feat)
        outs, probs = [], []
        for i in range(x.shape[0]):
            query = query_vectors(feat[i : i + 1], coord, cell)
            prob = F.softmax(self.classifier(query), dim=-1)
            mixed = prob[..., 0:1] * self.light_sampler(query) + prob[..., 1:2] * self.heavy_sampler(query)
            outs.append(mixed + bilinear_base(lr[i : i + 1], coord))
            probs.append(prob)
        sr = self._to_image(torch.cat(outs), x) + self.input_mean
        return sr, {"pcsr_probs": self._to_image(torch.cat(probs), x)}

    def upscale_routed(self, x: torch.Tensor, *, k: float | None = None) -> tuple[torch.Tensor, Routing]:
        """Eval-mode SR of ``x`` (N, 3, h, w) in [0, 1] and where its pixels went (official ``forward_test``)."""
        lr = x - self.input_mean
        feat = self.encoder(lr)
        coord, cell = hr_queries(self._out_size(x), like=feat)
        preds, flags = [], []
        # The official adaptive decision clusters the whole batch's probabilities together.
        clustered = self._cluster_batch(feat, coord, cell) if self.routing == "cluster" and not feat.is_meta else None
        for i in range(x.shape[0]):
            given = None if clustered is None else clustered[i]
            pred, flag = self._route_image(feat[i : i + 1], lr[i : i + 1], coord, cell, self.k if k is None else k, given)
            preds.append(pred)
            flags.append(flag)
        pred, heavy = self._to_image(torch.cat(preds), x), self._to_image(torch.stack(flags).unsqueeze(-1), x)
        refined = torch.zeros_like(heavy)
        if self.refinement:
            pred, refined = _refine(pred, heavy)
        return pred + self.input_mean, Routing(heavy=heavy, refined=refined)

    def _chunks(self, q: int) -> list[tuple[int, int]]:
        return [(s, min(q, s + self.pixel_chunk)) for s in range(0, q, self.pixel_chunk)]

    def _route_image(
        self, feat: torch.Tensor, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, k: float,
        flag: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One image: (1, q, 3) prediction (normalised) and (q,) bool heavy flags (decided here unless given)."""
        chunks = self._chunks(coord.shape[0])
        queries = [query_vectors(feat, coord[s:e], cell[s:e]) for s, e in chunks]
        if flag is None:
            flag = self._decide(queries, k)
        pred = torch.cat([bilinear_base(lr, coord[s:e]) for s, e in chunks], dim=1)
        if feat.is_meta:  # no values to route: count the all-heavy upper bound
            return pred + self.heavy_sampler(torch.cat(queries, dim=1)), torch.ones_like(flag)
        for (s, e), query in zip(chunks, queries):
            part = flag[s:e]
            _add_sampled(pred[0, s:e], query[0], self.light_sampler, torch.where(~part)[0])
            _add_sampled(pred[0, s:e], query[0], self.heavy_sampler, torch.where(part)[0])
        return pred, flag

    def _decide(self, queries: list[torch.Tensor], k: float) -> torch.Tensor:
        """(q,) bool: whether each query of one image (its chunks ``queries``) goes to the heavy sampler."""
        if self.routing in ("heavy", "light"):
            q = sum(query.shape[1] for query in queries)
            return torch.full((q,), self.routing == "heavy", dtype=torch.bool, device=queries[0].device)
        prob = torch.cat([F.softmax(self.classifier(query), dim=-1) for query in queries], dim=1)[0]
        if self.routing == "cluster":  # reached on the meta device only (a MAC count): real batches cluster first
            return torch.ones(len(prob), dtype=torch.bool, device=prob.device)
        costs = torch.tensor(self.relative_costs(), dtype=prob.dtype, device=prob.device)
        return torch.argmax(prob / costs.pow(k), dim=-1) == 1

    def _cluster_batch(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """(N, q) heavy flags of the official adaptive decision over the batch ``feat`` (N images)."""
        heavy_prob = [
            F.softmax(self.classifier(query_vectors(feat[i : i + 1], coord[s:e], cell[s:e])), dim=-1)[0, :, 1]
            for i in range(len(feat)) for s, e in self._chunks(coord.shape[0])
        ]
        return cluster_heavy(torch.cat(heavy_prob)).view(len(feat), -1)

    def _out_size(self, x: torch.Tensor) -> tuple[int, int]:
        return x.shape[-2] * self.scale, x.shape[-1] * self.scale

    def _to_image(self, pixels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(N, H*W, C) row-major pixels -> (N, C, H, W)."""
        height, width = self._out_size(x)
        return pixels.transpose(1, 2).reshape(x.shape[0], -1, height, width)

    def macs_spent(self, lr_size: tuple[int, int], heavy_pixels: int) -> int:
        """MACs of one eval forward of an image of ``lr_size`` that sent ``heavy_pixels`` pixels heavy:
        backbone + classifier on every pixel + light / heavy MLP on its pixels (srlab convention)."""
        pixels = lr_size[0] * lr_size[1] * self.scale**2
        classifier = self.classifier.imnet.macs_per_query() if self.routing in ("classifier", "cluster") else 0
        size = (int(lr_size[0]), int(lr_size[1]))
        if size not in self._encoder_macs:
            self._encoder_macs[size] = count_macs(self.encoder, size)
        return (
            self._encoder_macs[size]
            + pixels * classifier
            + (pixels - heavy_pixels) * self.light_sampler.imnet.macs_per_query()
            + heavy_pixels * self.heavy_sampler.imnet.macs_per_query()
        )


def cluster_heavy(p_heavy: torch.Tensor) -> torch.Tensor:
    """The official ``adaptive_cluster`` decision for one image: (q,) heavy probabilities -> (q,) bool heavy.

    The probabilities, min-max normalised, are split by 2-means as ``fast_pytorch_kmeans.KMeans(n_clusters=2,
    max_iter=20).fit_predict(x, centroids=[[0.5]])`` splits them (transcribed because srlab does not depend
    on that package): the first step, with the single given centroid, gives the centroids (mean, 0); each
    step assigns every value to the most similar centroid (``2 x c - x^2 - c^2``, the first on a tie), moves
    the centroids to their members' means (0 for an empty cluster) and stops after the step whose move
    (summed squares) is at most 1e-4, returning that step's assignment. The cluster holding the smallest
    probability is the light one. Deviation: where every probability is equal the official code stops on an
    assertion; here every pixel goes light."""
    x = p_heavy.reshape(-1, 1)
    low, high = x.min(), x.max()
    if not bool(high > low):
        return torch.zeros(len(x), dtype=torch.bool, device=x.device)
    x = (x - low) / (high - low)
    centroids = x.new_tensor([[0.5]])
    clusters = torch.arange(2, device=x.device)[:, None]
    for _ in range(_CLUSTER_MAX_ITER):
        similarity = 2 * x @ centroids.T - x.square().sum(dim=1)[:, None] - centroids.square().sum(dim=1)[None, :]
        labels = similarity.max(dim=-1).indices
        members = (labels[None] == clusters).to(x.dtype)
        means = torch.nan_to_num(members @ x / members.sum(dim=-1)[:, None])
        moved = (means - centroids).square().sum()
        centroids = means
        if moved <= _CLUSTER_TOL:
            break
    heavy = labels == 1
    return ~heavy if bool(heavy[torch.min(x.flatten(), dim=0).indices]) else heavy


def _add_sampled(out: torch.Tensor, query: torch.Tensor, sampler: nn.Module, members: torch.Tensor) -> None:
    """``out[members] += sampler(query[members])`` for (q, C) ``out`` and ``query``, a block of rows at a time
    (gathered rows stay in the cache); when the sampler takes every row, nothing is gathered or scattered."""
    if len(members) == len(query):
        for start in range(0, len(query), _MLP_ROWS):
            out[start : start + _MLP_ROWS] += sampler(query[start : start + _MLP_ROWS])
        return
    for rows in members.split(_MLP_ROWS):
        out.index_add_(0, rows, sampler(query.index_select(0, rows)))


def _refine(pred: torch.Tensor, heavy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official refinement: light pixels next to a heavy one take the 3x3 mean (HR border excluded)."""
    mean = F.avg_pool2d(F.pad(pred, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    near_heavy = F.max_pool2d(F.pad(heavy.to(pred.dtype), (1, 1, 1, 1), mode="replicate"), 3, stride=1) > 0
    refined = ~heavy & near_heavy
    refined[..., [0, -1], :] = False
    refined[..., :, [0, -1]] = False
    return torch.where(refined, mean, pred), refined


def _info(paper: str, receptive_radius: int) -> ModelInfo:
    return ModelInfo(
        adaptive="pcsr",
        paper=paper,
        origin="https://github.com/3587jjh/PCSR",
        licence="unknown",
        scales=(4,),
        size_multiple=1,
        # The backbone's reach, plus one LR pixel for the bilinear base and the 3x3 refinement.
        receptive_radius=receptive_radius,
        reparameterizable=False,
        # In float16 the HR pixel coordinates run out of bits past 2048 pixels a side (2400: off by up
        # to 1.7 HR pixels), picking wrong LR features and offsets; the official code keeps them float32.
        half_precision_safe=False,
    )


PAPER = "Jeong et al., Accelerating Image Super-Resolution Networks with Pixel-Level Classification (ECCV 2024)"


@register_model(_info(PAPER, receptive_radius=21))  # entry 1 + 3 blocks x 3 units x 2 3x3 convs + 2
def pcsr_carn(
    *,
    scale: int,
    channels: int = 52,
    group: int = 4,
    k: float = 0.0,
    routing: str = "classifier",
    refinement: bool = True,
    pixel_chunk: int = 300_000,
    trains: str = "all",
) -> PCSR:
    """PCSR on a CARN-M backbone (released ``carn-pcsr-phase1``)."""
    return PCSR(
        CarnEncoder(channels, group=group), scale=scale, heavy=[74] * 4, light=[20] * 3, classifier=[10, 10],
        input_mean=DIV2K_RGB_MEAN, k=k, routing=routing, refinement=refinement, pixel_chunk=pixel_chunk,
        trains=trains,
    )


@register_model(_info(PAPER, receptive_radius=8))  # 5x5 head 2 + m 3x3 convs 4 + 2
def pcsr_fsrcnn(
    *,
    scale: int,
    d: int = 48,
    s: int = 12,
    m: int = 4,
    k: float = 0.0,
    routing: str = "classifier",
    refinement: bool = True,
    pixel_chunk: int = 300_000,
    trains: str = "all",
) -> PCSR:
    """PCSR on an FSRCNN backbone (released ``fsrcnn-pcsr-phase1``)."""
    return PCSR(
        FsrcnnEncoder(d, s, m), scale=scale, heavy=[58] * 4, light=[10] * 3, classifier=[],
        input_mean=None, k=k, routing=routing, refinement=refinement, pixel_chunk=pixel_chunk,
        trains=trains,
    )
