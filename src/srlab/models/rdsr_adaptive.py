"""RDSR with early exits: srlab's own content-adaptive network (issue 12).

Design. ``rdsr_adaptive`` is ``rdsr_s`` (:mod:`srlab.models.rdsr`: 32 channels, 4 residual distillation
blocks) with an exit after every block and one before the first: exit ``k`` (``0 .. N``) runs the head
and the first ``k`` blocks, fuses what it has, and finishes through the network's ESA, long skip and
tail. Exit ``N`` is the full network. An earlier exit fuses its ``k`` block outputs (exit 0: the
shallow features) with a 1x1 conv whose weight is *derived* from the full fusion, the missing blocks'
outputs stood in for by the last one it has, plus a trained correction (``exit_fuse_delta.k``), and
its tail is the network's tail plus a trained correction (``exit_tail_delta.k``); both corrections
start at zero. So

* the weights of ``rdsr_s`` load into it unchanged (every name and shape of ``rdsr_s`` is here) and the
  eval forward is ``rdsr_s``'s forward: with ``rdsr_s``'s weights the full path computes exactly what
  ``rdsr_s`` computes;
* right after a warm start from ``rdsr_s`` every exit already gives an image (the full network with
  the later blocks skipped), and training adapts it;
* the new parameters are the corrections only (62,784 at x4: 7,296 for the fusions, 4 x 13,872 for
  the tails); an exit's own tail costs no MAC, since it replaces the shared one on that exit.

Why early exits, and not width slimming or block skipping: an exit drops whole layers while the
layers that remain keep their shapes, so a batch of patches on exit ``k`` costs on a CPU about what its
MACs say (measured, 128 patches of 32x32 at x4, 1 thread, two runs: time fractions 0.10-0.13 / 0.22 /
0.54-0.55 / 0.71-0.86 / 1 for MAC fractions 0.12 / 0.33 / 0.55 / 0.78 / 1; a slimmed conv's speed per
MAC depends on the width: a 24-channel 3x3 conv ran at about half the MACs per second of the 16- and
32-channel ones here). All exits train from one pass through the blocks with a plain loss, and the
full path keeps ``rdsr_s``'s weights and function; width slimming needs a sandwich-rule step and
retrains the full width, and skipping a middle block saves no more than an exit while its later
blocks see inputs they were not trained on. The blocks are ~86% of the MACs, the head ~1%, the
fusion, ESA and tail ~13% (MACs of a 32x32 LR patch at x4, exit 0 / 1 / 2 / 3 / 4: 11.6 / 33.2 / 55.4
/ 77.7 / 100 % of the full network's).

Training. The training forward returns ``(sr, {"exit_srs": (N, B, 3, H, W)})``: the full output and
the output of every early exit, computed from one pass through the blocks; the loss ``exit_l1``
(:mod:`srlab.losses.exits`) trains the exits next to the ``l1`` of the full output, towards the HR
patch and, weighted most, towards the full output (distillation: an exit that computes what the full
path computes costs nothing where the router stops a patch there). The eval forward runs the full path
only.

Routing. The router (:mod:`srlab.adaptive.rdsr`) sends each LR patch to one exit by what
:class:`ExitRouter`, a small CNN on the LR patch (0.4 % of the full network's MACs on a 32x32 patch),
predicts: the mean squared difference (Y, 8-bit levels squared) between each early exit's output and
the full path's, and the full path's own mean squared error. The first is a function of the LR patch
alone (no ground truth: learnable exactly, from any image), and it is the error an exit adds where the
full path is the best estimate it can be (the full path's error is then uncorrelated with anything
computed from the input). :func:`srlab.adaptive.rdsr.calibrate_router` trains it on images other than
the test sets; ``router_trained`` says it has been, and both are saved with the weights. With
``bicubic_route`` (off by default; ``srlab rdsr-router --bicubic_route`` adds it to trained weights) the
router also chooses bicubic upscaling, no network at all, for the patches where even exit 0 is not needed
(sky, walls, blur), as ARM's cheapest route does; measured in the README ("Content-adaptive compute").
With ``feature_router`` (``srlab rdsr-router --feature_router``) a second router of the same shape sees the
LR patch and the first block's output, and the cascade execution (:mod:`srlab.adaptive.rdsr_cascade`)
lets it choose the exit of every patch the first router sent past exit 0, once the first block has run.

Measured (``bench/rdsr_adaptive_curve.py``, 2026-12-06; the bundled weights: ``configs/rdsr_adaptive_x4.yaml``,
30 epochs on the wallpaper proxy set from the bundled ``rdsr_s``, then ``configs/rdsr_adaptive_x4_distill.yaml``,
30 more with the distillation weighted twice as much, the router with the bicubic route trained on the proxy
training photos (16,000 steps since 2026-12-07); PSNR-Y of the patch-wise output, 32/28 patches, MACs as a
share of the full path's, router included): Set5 / Set14 x4 full path 30.1043 / 27.4438 dB (bundled
``rdsr_s`` 29.9472 / 27.3948; whole image, ``srlab eval --adaptive off``: 30.6080 / 27.5858, ``rdsr_s``
30.4861 / 27.5556); knob 0.03: 30.0701 at 70.7 % / 27.4136 at 69.7 %; 0.1: 29.9819 at 50.3 % / 27.3578 at
49.3 %; 0.5: 29.4708 at 21.1 % / 26.9563 at 19.9 % (the 4,000-step router before: 0.03 30.0311 at 66.2 % /
27.3979 at 67.6 %, 0.1 29.8944 at 45.5 % / 27.3093 at 47.6 %). Every patch on one route instead (Set14): exit 3 27.4051 at 77.7 %, exit 2
27.3296 at 55.4 %, bicubic 25.9243. On the proxy validation photos and the 2K test photos the knob's
predicted loss is exceeded (the full path's error on very clean photos is over-predicted); the figures
and the bounds any router has with these exits are in ``bench/bench_adaptive_speed.py`` and
``bench/rdsr_adaptive_oracle.py`` (routed at one exchange rate instead of a loss per image, the adaptive method
``rdsr_adaptive_rate``, the cascade spends 0.489 of the MACs at -0.0296 dB on the 2K test photos); the weights bundled before 2026-12-06 (first stage only, no bicubic
route) in the README's "Content-adaptive compute".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.layers.router import ExitRouter
from srlab.models.rdsr import RDSR
from srlab.models.registry import ModelInfo, register_model


class RDSRAdaptive(RDSR):
    """RDSR whose exits ``0 .. num_blocks`` (``num_exits`` of them) share the head, blocks, ESA and tail.

    Its routes (what a router chooses from, ``num_routes``) are the exits, preceded where ``bicubic_route``
    by bicubic upscaling (route 0: no network at all, ARM's cheapest route), for the flattest patches."""

    def __init__(
        self, *, scale: int, channels: int, num_blocks: int, ca_reduction: int, init: str, router_width: int,
        router_contrast: bool = False, bicubic_route: bool = False, feature_router: bool = False,
    ) -> None:
        super().__init__(scale=scale, channels=channels, num_blocks=num_blocks, ca_reduction=ca_reduction, init=init)
        self.num_exits = num_blocks + 1
        self.bicubic_route = bicubic_route
        self.num_routes = self.num_exits + int(bicubic_route)
        # The trained corrections of early exit k's fusion (input: max(k, 1) feature maps) and tail, zero at first.
        self.exit_fuse_delta = nn.ModuleList(
            nn.Conv2d(max(k, 1) * channels, channels, 1) for k in range(num_blocks)
        )
        self.exit_tail_delta = nn.ModuleList(
            nn.Conv2d(channels, 3 * scale * scale, 3, padding=1) for _ in range(num_blocks)
        )
        for delta in (*self.exit_fuse_delta, *self.exit_tail_delta):
            nn.init.zeros_(delta.weight)
            nn.init.zeros_(delta.bias)
        # The router learns from the exits' outputs, not from the SR loss: srlab train leaves it alone (no
        # gradient reaches it there) and srlab.adaptive.rdsr.calibrate_router trains it afterwards.
        self.router = ExitRouter(num_routes=self.num_routes, width=router_width,
                                 contrast=router_contrast).requires_grad_(False)
        self.register_buffer("router_trained", torch.zeros((), dtype=torch.bool))
        # The cascade's second router (srlab.adaptive.rdsr_cascade): it sees the LR patch and the first block's
        # output, and chooses the exit of the patches the first router sent deeper than exit 0.
        self.feature_router = (
            ExitRouter(num_routes=self.num_routes, width=router_width, features=channels).requires_grad_(False)
            if feature_router else None
        )
        if feature_router:
            self.register_buffer("feature_router_trained", torch.zeros((), dtype=torch.bool))

    def exit_fusion(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of early exit ``k``'s 1x1 fusion: the full fusion with the columns of blocks
        ``k + 1 .. N`` added onto block ``k``'s (onto the shallow features' for ``k = 0``), plus the correction."""
        channels, blocks = self.fuse.out_channels, len(self.blocks)
        per_block = self.fuse.weight.reshape(channels, blocks, channels)
        kept = max(k, 1) - 1
        derived = torch.cat((per_block[:, :kept], per_block[:, kept:].sum(dim=1, keepdim=True)), dim=1)
        delta = self.exit_fuse_delta[k]
        return derived.reshape(delta.weight.shape) + delta.weight, self.fuse.bias + delta.bias

    def _finish(self, shallow: torch.Tensor, outputs: list[torch.Tensor], k: int) -> torch.Tensor:
        """Exit ``k``'s SR image from the shallow features and the first ``k`` block outputs."""
        if k == len(self.blocks):
            return self.upsample(self.tail(self.esa(self.fuse(torch.cat(outputs, dim=1))) + shallow))
        weight, bias = self.exit_fusion(k)
        fused = self.esa(F.conv2d(torch.cat(outputs[:k] or [shallow], dim=1), weight, bias)) + shallow
        tail = self.exit_tail_delta[k]
        return self.upsample(F.conv2d(fused, self.tail.weight + tail.weight, self.tail.bias + tail.bias, padding=1))

    def first_block(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The shallow features of LR ``x`` and the first block's output (what every exit from 1 on runs)."""
        shallow = F.relu(self.head(x))
        return shallow, self.blocks[0](shallow)

    def forward_exit_after_first(self, shallow: torch.Tensor, first: torch.Tensor, k: int) -> torch.Tensor:
        """The SR image of exit ``k`` >= 1 from :meth:`first_block`'s outputs: blocks 2 .. ``k`` and the exit."""
        if not 1 <= k < self.num_exits:
            raise ValueError(f"exit after the first block must be in 1..{self.num_exits - 1}, got {k}")
        features, outputs = first, [first]
        for block in self.blocks[1:k]:
            features = block(features)
            outputs.append(features)
        return self._finish(shallow, outputs, k)

    def forward_exit(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The SR image of exit ``k`` (``num_blocks``: the full network); computes only what it needs."""
        if not 0 <= k < self.num_exits:
            raise ValueError(f"exit must be in 0..{self.num_exits - 1}, got {k}")
        if k == 0:
            return self._finish(F.relu(self.head(x)), [], 0)
        return self.forward_exit_after_first(*self.first_block(x), k)

    def forward_route(self, x: torch.Tensor, route: int) -> torch.Tensor:
        """The SR image of route ``route``: bicubic upscaling for route 0 where :attr:`bicubic_route`, else
        an exit (:meth:`forward_exit`)."""
        if self.bicubic_route and route == 0:
            # MATLAB's kernel, unrounded: a window with 2 pixels of context gives the whole image's values.
            return bicubic_upscale(x, self.scale)
        return self.forward_exit(x, route - int(self.bicubic_route))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not self.training:
            return super().forward(x)
        shallow = F.relu(self.head(x))
        features, outputs = shallow, []
        for block in self.blocks:
            features = block(features)
            outputs.append(features)
        exits = [self._finish(shallow, outputs, k) for k in range(self.num_exits)]
        return exits[-1], {"exit_srs": torch.stack(exits[:-1])}


def _info() -> ModelInfo:
    return ModelInfo(
        paper="srlab: RDSR with early exits for patch-wise adaptive compute (issue 12)",
        origin="srlab",
        licence="Apache-2.0",
        adaptive="rdsr_adaptive",
        scales=(2, 3, 4),
        size_multiple=6,  # as rdsr: ESA's 6x coarser grid
        receptive_radius=lambda a: 6 * ((3 * a["num_blocks"] + 2 + 60) // 6 + 1),
    )


@register_model(_info())
def rdsr_adaptive(
    *, scale: int, channels: int = 32, num_blocks: int = 4, ca_reduction: int = 8, init: str = "bicubic",
    router_width: int = 16, router_contrast: bool = False, bicubic_route: bool = False, feature_router: bool = False,
) -> RDSRAdaptive:
    """``rdsr_s`` with an exit before and after every block (its weights load as they are);
    ``router_contrast``: the router of :class:`ExitRouter` ``contrast=True``; ``bicubic_route``: bicubic
    upscaling as one more, cheapest route (the router predicts one more difference); ``feature_router``: a
    second router on the LR patch and the first block's output, for the cascade execution
    (:mod:`srlab.adaptive.rdsr_cascade`). Weights written before any of these existed record no value and
    load with the plain router and the exits only."""
    return RDSRAdaptive(scale=scale, channels=channels, num_blocks=num_blocks, ca_reduction=ca_reduction,
                        init=init, router_width=router_width, router_contrast=router_contrast,
                        bicubic_route=bicubic_route, feature_router=feature_router)
