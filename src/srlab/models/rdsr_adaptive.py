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
(:mod:`srlab.losses.exits`) trains the exits next to the ``l1`` of the full output. The eval forward
runs the full path only.

Routing. The router (:mod:`srlab.adaptive.rdsr`) sends each LR patch to one exit by its edge score
and a table calibrated on patches of images other than the test sets: for score bins
(``router_edges``) the mean squared error that each exit adds to the full path's (``router_error``, Y
channel, [0, 1] units). Both are buffers, saved with the weights; they are NaN until
:func:`srlab.adaptive.rdsr.calibrate_router` fills them.

Measured (``bench/rdsr_adaptive_curve.py``; x4, 7 + 3 epochs on the wallpaper proxy set from the
bundled ``rdsr_s``, router calibrated on one 144x144 LR crop of each wallpaper photo; Set14, PSNR-Y of
the patch-wise output, 32/28 patches): the full path 27.408 dB (bundled ``rdsr_s`` 27.395; whole
image, ``srlab eval``: 27.5558 / 0.7556, ``rdsr_s`` 27.5556 / 0.7554); price 8: 27.383 dB at 93.8% of
the MACs, 16: 27.249 dB at 80.0%, 32: 27.010 dB at 57.4%, 64: 26.680 dB at 28.5%. Every patch on one
exit instead: exit 3 27.164 dB at 77.7%, exit 2 26.818 dB at 55.4%, so routing by content beats a
fixed exit of about the same cost by 0.09-0.19 dB. Set14 and Set5 are small, detailed images; the
curve on larger, flatter photos is not measured here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.models.rdsr import RDSR
from srlab.models.registry import ModelInfo, register_model


class RDSRAdaptive(RDSR):
    """RDSR whose exits ``0 .. num_blocks`` (``num_exits`` of them) share the head, blocks, ESA and tail."""

    def __init__(
        self, *, scale: int, channels: int, num_blocks: int, ca_reduction: int, init: str, router_bins: int
    ) -> None:
        super().__init__(scale=scale, channels=channels, num_blocks=num_blocks, ca_reduction=ca_reduction, init=init)
        self.num_exits = num_blocks + 1
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
        self.register_buffer("router_edges", torch.full((router_bins - 1,), float("nan")))
        self.register_buffer("router_error", torch.full((router_bins, self.num_exits), float("nan")))

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

    def forward_exit(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The SR image of exit ``k`` (``num_blocks``: the full network); computes only what it needs."""
        if not 0 <= k < self.num_exits:
            raise ValueError(f"exit must be in 0..{self.num_exits - 1}, got {k}")
        shallow = F.relu(self.head(x))
        features, outputs = shallow, []
        for block in self.blocks[:k]:
            features = block(features)
            outputs.append(features)
        return self._finish(shallow, outputs, k)

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
    router_bins: int = 12,
) -> RDSRAdaptive:
    """``rdsr_s`` with an exit before and after every block (its weights load as they are)."""
    return RDSRAdaptive(scale=scale, channels=channels, num_blocks=num_blocks, ca_reduction=ca_reduction,
                        init=init, router_bins=router_bins)
