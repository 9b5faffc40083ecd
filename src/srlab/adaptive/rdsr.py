"""``rdsr_adaptive`` through the adaptive engine: each LR patch leaves the network at one exit.

Routes are the exits of :class:`srlab.models.rdsr_adaptive.RDSRAdaptive`: route ``k`` runs the head and
the first ``k`` blocks, the last route is the full network. The engine runs every route's patches as
one batch, and an exit keeps the shapes of the layers it runs, so the MACs it saves are CPU time saved.

The router is a lookup, deterministic and nearly free: a patch's edge score (mean |dx| + |dy| of the
LR patch, :func:`srlab.adaptive.reference.mean_gradient_magnitude`) picks a score bin, and the model's
calibration table gives, per bin, the mean squared error (Y, in 8-bit levels squared) that each exit
adds to the full network's. The patch takes the exit that minimises

    added error + knob * MAC fraction of the exit

so the knob is the price of compute: how many squared 8-bit levels of added error one full network's
worth of MACs is worth. Knob 0: the most accurate exit (the full network where it is the best);
larger knobs move patches to cheaper exits, flat patches first; a huge knob puts every patch on
exit 0. Minimising the sum of added errors at a price is what maximises the image's PSNR for the
MACs spent, as far as the table predicts the patches.

:func:`calibrate_router` fills the table from calibration images (never the test sets) and stores it in
the model's buffers, so it is saved and loaded with the weights. ``knob_sweep`` and the default price
(8: within 0.03 dB of the full path on Set14 x4) come from the measured curve
(``bench/rdsr_adaptive_curve.py``; figures in :mod:`srlab.models.rdsr_adaptive`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from srlab.adaptive.engine import PatchRoutedMethod
from srlab.adaptive.method import register_adaptive
from srlab.adaptive.patches import split_patches
from srlab.adaptive.reference import mean_gradient_magnitude
from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_y
from srlab.models.rdsr_adaptive import RDSRAdaptive

LEVELS2 = 255.0**2  # the table's [0, 1] squared errors in squared 8-bit levels


class _Exit(nn.Module):
    """One exit of the network as a module of its own (shares the network's parameters)."""

    def __init__(self, network: RDSRAdaptive, k: int) -> None:
        super().__init__()
        self.network = network
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.forward_exit(x, self.k)


class RdsrExitRouting(PatchRoutedMethod):
    knob_name = "price"
    knob_range = (0.0, 1e4)
    # Cheap to expensive: from most patches on early exits down to the most accurate exit everywhere.
    knob_sweep = (64.0, 32.0, 16.0, 8.0, 0.0)

    def __init__(self, network: RDSRAdaptive, *, knob: float) -> None:
        super().__init__(scale=network.scale, num_routes=network.num_exits, knob=knob)
        self.network = network
        self.exits = nn.ModuleList(_Exit(network, k) for k in range(network.num_exits))
        # MACs depend on the patch size only; counting traces the network, so once per size.
        self._macs: dict[tuple[int, int], tuple[int, ...]] = {}

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        table = self.network.router_error
        if torch.isnan(table).any() or torch.isnan(self.network.router_edges).any():
            raise SrlabError(
                "this rdsr_adaptive model's router is not calibrated: run "
                "srlab.adaptive.rdsr.calibrate_router on validation images, or load weights saved after it"
            )
        bins = torch.bucketize(mean_gradient_magnitude(patches).float(), self.network.router_edges.float())
        price = self.knob * self.mac_fractions(tuple(patches.shape[-2:])).to(table.device)
        return torch.argmin(table[bins].float() * LEVELS2 + price, dim=1).to(patches.device)

    def route_module(self, index: int) -> nn.Module:
        return self.exits[index]

    def route_macs(self, index: int, patch_hw: tuple[int, int]) -> int:
        patch_hw = tuple(patch_hw)
        if patch_hw not in self._macs:
            self._macs[patch_hw] = tuple(super(RdsrExitRouting, self).route_macs(k, patch_hw)
                                         for k in range(self.num_routes))
        return self._macs[patch_hw][index]

    def mac_fractions(self, patch_hw: tuple[int, int]) -> torch.Tensor:
        """(exits,) MACs of each exit on a patch of ``patch_hw`` over the full network's."""
        macs = torch.tensor([self.route_macs(k, patch_hw) for k in range(self.num_routes)], dtype=torch.float64)
        return (macs / macs[-1]).float()


def _as_network(model: nn.Module) -> RDSRAdaptive:
    if not isinstance(model, RDSRAdaptive):
        raise SrlabError(
            f"adaptive method rdsr_adaptive runs an rdsr_adaptive model, got {type(model).__name__}: "
            "build it with --model rdsr_adaptive"
        )
    return model


@register_adaptive
def rdsr_adaptive(model: nn.Module, *, checkpoint: Path | None = None, knob: float = 8.0) -> RdsrExitRouting:
    """The exits of a built (and calibrated) ``rdsr_adaptive`` model, routed at price ``knob``."""
    return RdsrExitRouting(_as_network(model), knob=knob)


@torch.no_grad()
def exit_errors(
    model: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, patch: int = 32, stride: int = 28,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per patch of the (LR (3, h, w), HR (3, h*s, w*s)) ``pairs``: its edge score (P,) and the mean
    squared error on Y of every exit's clamped output against the HR patch (P, exits), in [0, 1] units."""
    network = _as_network(model)
    scale = network.scale
    scores, errors = [], []
    for lr, hr in pairs:
        if tuple(hr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale):
            raise SrlabError(
                f"calibration pair: HR {tuple(hr.shape[-2:])} is not LR {tuple(lr.shape[-2:])} times {scale}"
            )
        lr_patches, _ = split_patches(lr[None], patch, stride)
        hr_patches, _ = split_patches(hr[None], patch * scale, stride * scale)
        hr_y = rgb_to_y(hr_patches)
        scores.append(mean_gradient_magnitude(lr_patches))
        per_exit = []
        for k in range(network.num_exits):
            sr = torch.cat([network.forward_exit(chunk, k) for chunk in lr_patches.split(batch_size)])
            per_exit.append((rgb_to_y(sr.clamp(0, 1)) - hr_y).square().flatten(1).mean(dim=1))
        errors.append(torch.stack(per_exit, dim=1))
    if not scores:
        raise SrlabError("router calibration needs at least one validation image")
    return torch.cat(scores), torch.cat(errors)


def _weighted_quantiles(scores: torch.Tensor, weights: torch.Tensor, bins: int) -> torch.Tensor:
    """The ``bins - 1`` scores that split the patches into ``bins`` groups of equal total weight."""
    order = scores.argsort()
    mass = weights[order].cumsum(0)
    if mass[-1] <= 0:  # no exit adds error anywhere: equal counts
        mass = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    levels = torch.arange(1, bins, dtype=scores.dtype) / bins * mass[-1]
    return scores[order][torch.searchsorted(mass, levels).clamp(max=len(scores) - 1)]


@torch.no_grad()
def calibrate_router(
    model: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, patch: int = 32, stride: int = 28
) -> None:
    """Fill ``model``'s router table from calibration ``pairs`` (see :func:`exit_errors`): score bins that
    share the error exit 0 adds equally (so the bins are finest where routing decides the most, the
    busy patches, and not where most patches are, the flat ones), and per bin the mean error each
    exit adds to the full network's. The model runs in eval mode; it is left in eval mode."""
    network = _as_network(model).eval()
    scores, errors = exit_errors(network, pairs, patch=patch, stride=stride)
    bins = network.router_error.shape[0]
    if len(scores) < bins:
        raise SrlabError(f"router calibration needs at least {bins} patches, got {len(scores)}: give more images")
    added = (errors - errors[:, -1:]).double()
    edges = _weighted_quantiles(scores.double(), added[:, 0].clamp(min=0), bins).float()
    index = torch.bucketize(scores, edges)
    table = torch.full((bins, network.num_exits), float("nan"), dtype=torch.float64)
    for b in range(bins):
        members = added[index == b]
        if len(members):
            table[b] = members.mean(dim=0)
    # A bin no patch fell into (tied scores) borrows the costliest errors seen: it never routes cheaper.
    empty = torch.isnan(table[:, 0])
    table[empty] = table[~empty].amax(dim=0)
    network.router_edges.copy_(edges)
    network.router_error.copy_(table.float())
