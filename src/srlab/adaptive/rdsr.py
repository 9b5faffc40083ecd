"""``rdsr_adaptive`` through the adaptive engine: each LR patch leaves the network at one exit.

Routes are the exits of :class:`srlab.models.rdsr_adaptive.RDSRAdaptive`: route ``k`` runs the head and
the first ``k`` blocks, the last route is the full network. A network built with ``bicubic_route`` has
one more, cheapest route in front: route 0 is bicubic upscaling (no network; 0 MACs as
:func:`~srlab.models.complexity.count_macs` counts; in fact 4 taps a pass, ~15 multiply-adds per output
pixel over the three colours at x4, 0.2 % of the full path's), exit ``k`` is route ``k + 1``, and its
router predicts the bicubic output's difference to the full path too. The engine runs every route's
patches as one batch, and an exit keeps the shapes of the layers it runs, so the MACs it saves are CPU
time saved.

The knob is the PSNR an image may lose, in dB (``loss``): the router (the model's
:class:`~srlab.layers.router.ExitRouter`) predicts for each patch of the image the squared
difference each exit's output would have to the full path's, ``d[p, k]``, and the full path's own
squared error ``e[p]``; the image may add ``(10 ** (loss / 10) - 1) * sum(e)`` of squared error, and the
patches take the exits that spend the fewest MACs within that budget: ``argmin_k d[p, k] + lam *
macs[k]``, with the largest price ``lam`` whose routing stays within the budget (bisection; routing
by a price is what spends the budget where it saves the most MACs). Knob 0 puts every patch on the full
path without running the router. The budget is per call of :meth:`RdsrExitRouting.route`: one image in the region mode and in
``srlab eval`` (which routes one image at a time). The adaptive method ``rdsr_adaptive_rate``
(:class:`RdsrRateRouting`, ``--adaptive rdsr_adaptive_rate``) routes the same predictions at one exchange
rate instead, the same for every image: its knob ``rate`` is the PSNR (dB) an image's full-path MACs are
worth, so ``lam = rate * mean(e) / DB_PER_RELATIVE_ERROR`` with no bisection; it minimises the mean PSNR
change over a set of images at a given mean MAC share rather than giving each image the same predicted loss.

Blocks. ``srlab eval`` routes the 32x32 patches of the ClassSR/ARM protocol; the region mode
(``srlab upscale``, ``method.upscale``) routes 64x64 blocks, each predicted as the mean of its four
32x32 patches (the size the router is calibrated on). Each region the region mode runs costs
:attr:`RdsrExitRouting.region_margin` pixels of context on every side (4 until 2026-12-07, 2 since; the
figures here at 4), so a routing that changes exit from one 32x32 block to the next spends far
more than its exits' MACs: on the 2K test photos at knob 0.03, 0.485 of the full path's MACs in the
routes taken but 0.666 in the windows run; on 64x64 blocks 0.566 and 0.668, for a loss of 0.028
instead of 0.040 dB (``bench/rdsr_adaptive_oracle.py --regions``).

Execution (:attr:`RdsrExitRouting.execution`, ``method.upscale`` and ``srlab upscale``): ``"regions"``
runs the routes in the region mode; ``"shared"`` (:mod:`srlab.adaptive.rdsr_shared`) runs the network
depth by depth over one feature map per depth, each block only on the union of the blocks that still
need it with exact context paid once around each connected area, so a fragmented routing costs little
more than its routes (every block on the full exit: the whole-image forward, to float rounding);
``"cascade"`` (:mod:`srlab.adaptive.rdsr_cascade`, the default where the network has a trained feature
router) runs the region mode's windows, but the blocks the router sends past exit 0 first run the head
and the first block, and a second router that sees their output chooses their exit.
:attr:`RdsrExitRouting.raise_lone` raises a block whose exit is below all of its neighbours' (either
execution). Figures: ``bench/bench_adaptive_speed.py``.

Why the difference to the full path and not the error against the ground truth: the difference is a
function of the LR patch alone, so the router learns it from any image and without noise; the error
against the ground truth that an exit adds is this difference on average (the full path's error is
uncorrelated with what it computes from the input, as far as it is the best estimate), but for one
patch it also holds the ground truth's unpredictable part. Measured with per-patch errors known
(``bench/rdsr_adaptive_oracle.py``), an oracle that also uses that part saves more MACs than any
router can.

:func:`calibrate_router` trains the router on calibration images (never the test sets) and marks it
trained; it is saved and loaded with the weights.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srlab.adaptive.costs import route_macs as counted_route_macs
from srlab.adaptive.engine import PatchRoutedMethod
from srlab.adaptive.method import AdaptiveStats, register_adaptive
from srlab.adaptive.patches import check_batch, split_patches
from srlab.adaptive.rdsr_cascade import (
    CascadeRoutes, FirstBlock, deep_block_inputs, feature_targets, first_block_jobs,
)
from srlab.adaptive.rdsr_shared import shared_upscale
from srlab.adaptive.regions import (
    WindowSet, add_region_windows, adaptive_upscale_regions, routing_patches, run_window_sets, side_by_side,
)
from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_y
from srlab.models.complexity import count_macs
from srlab.models.create import create_model
from srlab.layers.router import ROUTER_EPS
from srlab.models.rdsr_adaptive import RDSRAdaptive
from srlab.models.weights import load_matching, read_checkpoint

LEVELS2 = 255.0**2  # squared errors of [0, 1] images in squared 8-bit levels
ROUTER_PATCH = 32  # the LR patch size the router is calibrated on (calibrate_router's default)


class _Route(nn.Module):
    """One route of the network (an exit, or bicubic upscaling) as a module of its own (shares the
    network's parameters)."""

    def __init__(self, network: RDSRAdaptive, route: int) -> None:
        super().__init__()
        self.network = network
        self.route = route

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.forward_route(x, self.route)


class RdsrExitRouting(PatchRoutedMethod):
    # The region mode (upscaling) routes 64x64 blocks, each predicted as the mean of its four 32x32
    # patches: on the 2K photos at the same loss (0.03 dB) it spends ~0.03 fewer of the full path's MACs than
    # 32x32 blocks (fewer region borders, each costing 4 pixels of context; and four predictions
    # average out some of the router's error). See bench/rdsr_adaptive_oracle.py --regions.
    region_block = 64
    knob_name = "loss"
    knob_range = (0.0, 10.0)
    # Cheap to expensive: the PSNR each image may lose, in dB; 0 is the full path everywhere.
    knob_sweep = (0.5, 0.2, 0.1, 0.05, 0.03, 0.0)

    # How upscale() runs the routes (whole_image=True): "regions", the region mode (each merged rectangle
    # of one exit from the input with region_margin pixels of context), "shared" (srlab.adaptive.rdsr_shared:
    # depth by depth on one feature map, each block on the union of the blocks that need it), or "cascade"
    # (srlab.adaptive.rdsr_cascade: the region mode with the deeper exits chosen by the feature router after
    # the first block; the default where the network has a trained feature router).
    executions = ("regions", "shared", "cascade", "cascade_shared")
    execution = "regions"
    # The cascade's first stage routes with the knob times this (its second stage with the knob itself): a
    # cautious first stage leaves more blocks to the better informed feature router (2K test photos, MACs
    # at -0.03 dB, cascade_shared, interpolated: share 1 0.540, 0.5 0.531, 0.25 0.533; share 2 loses
    # 0.079 dB at knob 0.04: the first stage spends the budget on blocks it is wrong about).
    first_stage_share = 0.5
    # The windows' context (LR pixels) in the region mode and the cascade: 2K test photos, MACs at -0.03 dB
    # (interpolated between knobs, 2026-12-07): cascade 4 pixels 0.566, 3 0.554, 2 0.544 (1: -0.08 dB at
    # any knob); region mode 4 0.635, 2 0.610. Per-route margins (2 for the cheap routes, 3-4 for the deep
    # ones) measured worse than 2 for all (0.549-0.556): the deep windows' context costs the most MACs.
    region_margin = 2
    # The cascade's first-block map: its windows' context (LR pixels; FIRST_RADIUS, 4, makes the map exact,
    # but the deeper exits' windows read it with region_margin pixels of context anyway) and its rectangles'
    # side (LR pixels at most). 2K test photos, cascade, MACs at -0.03 dB (interpolated between knobs,
    # 2026-12-07, the 4,000-step routers): context 4 0.545, 2 0.534 (on 13 of the training photos 0.627,
    # 0.620); the map's and the route windows' rectangles 256 instead of 128: 0.539, and with context 2 0.531
    # (training photos 0.615), but at 2 threads the route windows of 256 ran ~10 % slower than of 128 (fewer,
    # longer chunks leave a thread idle at the end); the map's alone of 256 cost no time.
    first_block_context = 2
    first_block_side = 256
    region_side = 128  # the cascade's route windows: rectangles of at most this many LR pixels a side
    shared_region = 128  # the shared mode's rectangles, LR pixels a side at most
    # Raise a block whose exit is below all of its (up to four) neighbours' to the lowest of theirs.
    raise_lone = False

    def __init__(self, network: RDSRAdaptive, *, knob: float) -> None:
        super().__init__(scale=network.scale, num_routes=network.num_routes, knob=knob)
        self.network = network
        self.routes = nn.ModuleList(_Route(network, r) for r in range(network.num_routes))
        # MACs depend on the patch size only; counting traces the network, so once per size.
        self._macs: dict[tuple[int, int], tuple[int, ...]] = {}
        self._router_macs: dict[tuple[int, int], int] = {}
        self._first_macs: dict[tuple, int] = {}
        self._feature_router_macs: dict[tuple[int, int], int] = {}
        self._after_first: dict[tuple[int, int], torch.Tensor] = {}
        if network.feature_router is not None and bool(network.feature_router_trained):
            self.execution = "cascade"

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        if self.knob == 0:  # no loss allowed: the full path everywhere, nothing to predict
            return torch.full((len(patches),), self.num_routes - 1, dtype=torch.long, device=patches.device)
        self._check_router()
        diffs, full = predict_per_patch(self.network.router, patches.float())
        routes = self.choose_routes(diffs, full, self.mac_fractions(tuple(patches.shape[-2:])).double(), self.knob)
        return routes.to(patches.device)

    def choose_routes(self, diffs: torch.Tensor, full: torch.Tensor, costs: torch.Tensor, knob: float) -> torch.Tensor:
        """(P,) routes of one image's blocks from their predicted (P, E) ``diffs`` and (P,) ``full`` errors
        and the routes' (E,) ``costs`` at ``knob``: within the loss budget (:func:`budget_routes`)."""
        return budget_routes(diffs, full, costs, knob)

    def choose_deep_routes(self, diffs: torch.Tensor, costs: torch.Tensor, *, errors: float, blocks: int,
                           added: float) -> torch.Tensor:
        """The cascade's second stage: (P,) routes of the blocks sent past exit 0, from the feature
        router's (P, E) ``diffs`` and the routes' ``costs`` after the first block; ``errors``: the full
        path's predicted squared error summed over the image's ``blocks`` blocks, ``added``: what the
        blocks the first stage kept add to it. What the kept blocks left of the image's budget."""
        return routes_within(diffs, costs, (10 ** (self.knob / 10) - 1) * errors - added)

    def _check_router(self) -> None:
        if not bool(self.network.router_trained):
            raise SrlabError(
                "this rdsr_adaptive model's router is not trained: run srlab.adaptive.rdsr.calibrate_router "
                "on calibration images (bench/rdsr_adaptive_curve.py --calibrate), or load weights saved after it"
            )

    def route_module(self, index: int) -> nn.Module:
        return self.routes[index]

    def route_names(self) -> tuple[str, ...]:
        exits = tuple(f"exit {k}" for k in range(self.network.num_exits))
        return ("bicubic", *exits) if self.network.bicubic_route else exits

    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        """``whole_image=False``: the ClassSR/ARM protocol (evaluation); True: :attr:`execution`'s way."""
        if self.execution not in self.executions:
            raise SrlabError(f"rdsr_adaptive execution must be one of {', '.join(self.executions)}, "
                             f"got {self.execution!r}")
        cascade = self.execution.startswith("cascade")
        # (the cascade at knob 0: every block on the full path, no router to run, as in the region mode)
        if not whole_image or (self.execution == "regions" and not self.raise_lone) or (cascade and self.knob == 0):
            return super().upscale(lr, whole_image=whole_image)
        if cascade and not (self.network.feature_router is not None and bool(self.network.feature_router_trained)):
            raise SrlabError("the cascade execution needs an rdsr_adaptive model with a trained feature router: "
                             "run srlab rdsr-router --feature_router on calibration images, or use the "
                             "regions execution")
        check_batch(lr)
        block, heaviest = self.region_block, self.num_routes - 1
        outputs, counts, spent, router, full = [], torch.zeros(self.num_routes, dtype=torch.long), 0, 0, 0
        with torch.no_grad():
            for image in lr.split(1):
                patches, rows, cols = routing_patches(image, block)
                if cascade:
                    sr, routes, macs = self._cascade(image, patches, (rows, cols), block)
                else:
                    routes = self.route(patches).view(rows, cols)
                    if self.raise_lone:
                        routes = raise_lone_blocks(routes)
                    if self.execution == "shared":
                        sr, macs = self._shared(image, routes, block)
                    else:
                        sr, regions = adaptive_upscale_regions(_FixedRoutes(self, routes.flatten()), image, block=block,
                                                                   margin=self.region_margin)
                        macs = regions.macs_spent
                outputs.append(sr)
                counts += torch.bincount(routes.flatten(), minlength=self.num_routes)
                spent += macs
                router += rows * cols * counted_route_macs(self, -1, (block, block))
                full += counted_route_macs(self, heaviest, tuple(image.shape[-2:]))
        # (one image: its output as it is; copying a 2K photo's output took ~4 % of the cascade's time at 2 threads)
        sr = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return sr, AdaptiveStats(
            route_counts=tuple(counts.tolist()), route_macs=(0,) * self.num_routes, route_names=self.route_names(),
            unit="block", out_hw=tuple(sr.shape[-2:]), router_macs=router, measured=(spent + router, full),
            grid_hw=(rows, cols),
        )

    def _shared(self, image: torch.Tensor, routes: torch.Tensor, block: int, *,
                after_first: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, int]:
        """The shared-feature execution of one image's (rows, cols) ``routes``, and the MACs it spent; the
        bicubic route's blocks (route 0 where the network has one) leave the network out and take the
        whole image's bicubic upscaling, which costs no MAC in ``count_macs``'s convention (the network's
        head and ESA still run on the whole image where any block takes an exit). ``after_first``: the
        cascade's second stage, the routes (rows, cols) decided from the first block's output."""
        offset = int(self.network.bicubic_route)
        shift = None if after_first is None else (lambda first: after_first(first) - offset)
        if offset and bool((routes == 0).all()):
            return self.network.forward_route(image, 0), 0
        sr, shared = shared_upscale(self.network, image, routes - offset, block=block, region=self.shared_region,
                                    after_first=shift)
        routes = shared.routes + offset
        if offset and bool((routes == 0).any()):
            bicubic = routes.eq(0).repeat_interleave(block * self.scale, 0).repeat_interleave(block * self.scale, 1)
            height, width = sr.shape[-2:]
            sr = torch.where(bicubic[:height, :width], self.network.forward_route(image, 0), sr)
        return sr, shared.macs

    def _cascade(self, image: torch.Tensor, patches: torch.Tensor, grid: tuple[int, int], block: int
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The cascade (:mod:`srlab.adaptive.rdsr_cascade`) of one image and its (rows * cols) routing
        ``patches``: the SR image, the (rows, cols) routes taken and the MACs spent (the LR router's not
        included, as in the other executions)."""
        self._check_router()
        network, offset = self.network, int(self.network.bicubic_route)
        router_dtype = network.router.head.weight.dtype
        # in T parts side by side, one thread each (as the feature router below)
        parts = [p for p in patches.to(router_dtype).tensor_split(torch.get_num_threads()) if len(p)]
        predictions = list(side_by_side(lambda part: predict_per_patch(network.router, part), parts))
        lr_diffs, lr_full = (torch.cat(values) for values in zip(*predictions))
        flat = self.choose_routes(lr_diffs, lr_full, self.mac_fractions(tuple(patches.shape[-2:])).double(),
                                  self.knob * self.first_stage_share)
        deep = (flat > offset).view(grid).clone()  # sent past exit 0: the head and the first block run there
        kept = ~deep.flatten()
        spent = 0

        def second_stage(first: torch.Tensor) -> torch.Tensor:
            """Route the deep blocks again from the first block's (1, C, H, W) output ``first`` (defined on
            them) within what the kept blocks left of the budget; the (rows, cols) routes."""
            nonlocal spent

            def predict(blocks: torch.Tensor) -> list[tuple[torch.Tensor, tuple[int, int], torch.Tensor, torch.Tensor]]:
                groups = deep_block_inputs(image, first, blocks, block=block, cols=grid[1])
                return [(index, tuple(inputs.shape[-2:]),
                         *predict_per_patch(network.feature_router, inputs.to(router_dtype)))
                        for index, inputs in groups]

            # The blocks in T parts side by side on one thread each: small convolutions and copies split
            # across threads far worse (2 threads: 1.5-2.5x slower than 1 thread, measured).
            parts = deep.flatten().nonzero().flatten().tensor_split(torch.get_num_threads())
            groups = [group for part in side_by_side(predict, [p for p in parts if len(p)]) for group in part]
            spent += sum(len(index) * self._feature_router_cost(hw) for index, hw, _, _ in groups)
            deep_full = torch.cat([e for _, _, _, e in groups])
            # The first router's predictions for the blocks it keeps, the feature router's for the others.
            flat[torch.cat([index for index, _, _, _ in groups])] = self.choose_deep_routes(
                torch.cat([d for _, _, d, _ in groups]), self._costs_after_first(tuple(patches.shape[-2:])),
                errors=float(lr_full[kept].sum()) + float(deep_full.sum()), blocks=len(flat),
                added=float(lr_diffs[kept].gather(1, flat[kept][:, None]).sum()))
            return flat.view(grid)

        if self.execution == "cascade_shared":
            sr, macs = self._shared(image, flat.view(grid), block, after_first=second_stage)
        else:
            sr, macs = self._cascade_windows(image, flat.view(grid), block, second_stage)
        return sr, flat.view(grid), spent + macs

    def _cascade_windows(self, image: torch.Tensor, routes: torch.Tensor, block: int,
                         second_stage: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The cascade in the region mode's windows: the first block on the blocks the first stage's
        (rows, cols) ``routes`` send past exit 0 and, side by side with it, the windows of the blocks it
        keeps (their routes are final: their windows fill the threads while the first block's last windows
        run); ``second_stage`` on the first block's output (which updates ``routes``), then the windows of the
        blocks it routed; the SR image and the MACs of what ran (routers aside)."""
        network, offset = self.network, int(self.network.bicubic_route)
        deep = routes > offset
        cascade = CascadeRoutes(network)
        kept = WindowSet(cascade, image, self._region_jobs(image, routes, ~deep, block))
        if not bool(deep.any()):
            sr = run_window_sets([kept], batch_size=64, channels_last=True)[0]
            return sr, self._windows_macs(cascade, kept.jobs)
        first_jobs = first_block_jobs(image, deep, block=block, margin=self.region_margin, region=self.first_block_side,
                                      context=self.first_block_context)
        first, sr = run_window_sets([WindowSet(FirstBlock(network), image, first_jobs), kept], batch_size=64,
                                    channels_last=True)
        routes = second_stage(first[:, 3:])
        sources = {route: first for route in range(offset + 1, self.num_routes)}
        routed = WindowSet(cascade, image, self._region_jobs(image, routes, deep, block), sources, out=sr)
        sr = run_window_sets([routed], batch_size=64, channels_last=True)[0]
        spent = sum(len(windows) * self._first_block_macs((h, w)) for (_, h, w), windows in first_jobs.items())
        return sr, spent + self._windows_macs(cascade, kept.jobs) + self._windows_macs(cascade, routed.jobs)

    def _region_jobs(self, image: torch.Tensor, routes: torch.Tensor, blocks: torch.Tensor, block: int) -> dict:
        """The region mode's windows (rectangles of at most :attr:`region_side`, :attr:`region_margin` pixels
        of context) of the (rows, cols) ``routes`` of the ``blocks`` (a mask of them) only."""
        jobs: dict[tuple[int, int, int], list] = defaultdict(list)
        height, width = image.shape[-2:]
        # the other blocks on a route of their own (-1), merged apart and dropped
        add_region_windows(jobs, 0, routes.masked_fill(~blocks, -1), block=block, margin=self.region_margin,
                           region=self.region_side, height=height, width=width)
        return {key: windows for key, windows in jobs.items() if key[0] >= 0}

    def _windows_macs(self, cascade: CascadeRoutes, jobs: dict) -> int:
        """MACs of the cascade's route windows ``jobs`` (an exit from 1 on without the first block it takes
        from the map; the head runs again)."""
        spent = 0
        for (route, h, w), windows in jobs.items():
            cost = counted_route_macs(self, route, (h, w))
            if cascade.from_first_block(route):
                cost -= self._block_one_macs((h, w))
            spent += len(windows) * cost
        return spent

    def _costs_after_first(self, hw: tuple[int, int]) -> torch.Tensor:
        """(routes,) what each route still costs on a block of ``hw`` whose first block has run, over the
        full path's MACs: nothing for bicubic, exit 0 as ever, exit k all but the first block (the
        cascade's windows run the head again: exits 0 and 1 then cost the same)."""
        if hw not in self._after_first:
            macs = torch.tensor([counted_route_macs(self, k, hw) for k in range(self.num_routes)], dtype=torch.float64)
            macs[int(self.network.bicubic_route) + 1 :] -= self._block_one_macs(hw)
            self._after_first[hw] = macs / counted_route_macs(self, self.num_routes - 1, hw)
        return self._after_first[hw]

    def _first_block_macs(self, hw: tuple[int, int]) -> int:
        """MACs of the head and the first block on ``hw``."""
        if hw not in self._first_macs:
            self._first_macs[hw] = count_macs(FirstBlock(self.network), hw)
        return self._first_macs[hw]

    def _block_one_macs(self, hw: tuple[int, int]) -> int:
        """MACs of the first block alone on ``hw`` (the head's counted once per size too)."""
        if ("head", hw) not in self._first_macs:
            self._first_macs[("head", hw)] = count_macs(self.network.head, hw)
        return self._first_block_macs(hw) - self._first_macs[("head", hw)]

    def _feature_router_cost(self, hw: tuple[int, int]) -> int:
        """The feature router's MACs on one deep block of ``hw``: on each of its ``ROUTER_PATCH`` sub-patches."""
        if hw not in self._feature_router_macs:
            rows, cols = (len(_router_starts(side)) for side in hw)
            sub_hw = tuple(min(ROUTER_PATCH, side) for side in hw)
            router = self.network.feature_router
            self._feature_router_macs[hw] = rows * cols * count_macs(router, sub_hw, channels=3 + router.features)
        return self._feature_router_macs[hw]

    def route_macs(self, index: int, patch_hw: tuple[int, int]) -> int:
        patch_hw = tuple(patch_hw)
        if patch_hw not in self._macs:
            self._macs[patch_hw] = tuple(super(RdsrExitRouting, self).route_macs(k, patch_hw)
                                         for k in range(self.num_routes))
        return self._macs[patch_hw][index]

    def router_macs(self, patch_hw: tuple[int, int]) -> int:
        if self.knob == 0:
            return 0  # route() does not run the router then
        patch_hw = tuple(patch_hw)
        if patch_hw not in self._router_macs:
            rows, cols = (len(_router_starts(side)) for side in patch_hw)
            sub_hw = tuple(min(ROUTER_PATCH, side) for side in patch_hw)
            self._router_macs[patch_hw] = rows * cols * count_macs(self.network.router, sub_hw)
        return self._router_macs[patch_hw]

    def mac_fractions(self, patch_hw: tuple[int, int]) -> torch.Tensor:
        """(exits,) MACs of each exit on a patch of ``patch_hw`` over the full network's."""
        macs = torch.tensor([self.route_macs(k, patch_hw) for k in range(self.num_routes)], dtype=torch.float64)
        return (macs / macs[-1]).float()


DB_PER_RELATIVE_ERROR = 10 / math.log(10)  # d(10 log10(1 + x)) / dx at 0: dB lost per relative squared error added


class RdsrRateRouting(RdsrExitRouting):
    """The same exits and routers at one exchange rate instead of a loss budget per image: the knob ``rate``
    is the PSNR (dB) an image's full-path MACs are worth, and each block takes the exit that minimises its
    predicted loss plus ``rate`` times its cost (as a share of the image's full path). A block's predicted
    loss is ``DB_PER_RELATIVE_ERROR * d / sum(e)`` (its squared difference to the full path over the image's
    predicted full-path error: the first-order PSNR change), so the routing is ``argmin_k d[p, k] + price *
    macs[k]`` with ``price = rate * mean(e) / DB_PER_RELATIVE_ERROR``: one price per image, no bisection.

    Why: over a set of images the mean PSNR change at a given mean MAC share is what a trade-off curve
    measures, and one rate for all images is the Lagrangian of exactly that (the loss budget gives every
    image the same predicted loss, spending MACs where they buy less). Measured in the README
    ("Content-adaptive compute"): on the 2K test photos the cascade spends ~0.49 instead of 0.506 of the MACs
    at -0.03 dB, on 13 training photos ~0.51 instead of 0.576; the knob no longer bounds each image's loss."""

    knob_name = "rate"
    knob_range = (0.0, 100.0)
    # Cheap to expensive: dB per full path's MACs; 0 is the full path everywhere.
    knob_sweep = (2.0, 1.0, 0.5, 0.32, 0.2, 0.1, 0.0)

    def choose_routes(self, diffs: torch.Tensor, full: torch.Tensor, costs: torch.Tensor, knob: float) -> torch.Tensor:
        return routes_at_price(diffs, costs, knob * float(full.mean()) / DB_PER_RELATIVE_ERROR)

    def choose_deep_routes(self, diffs: torch.Tensor, costs: torch.Tensor, *, errors: float, blocks: int,
                           added: float) -> torch.Tensor:
        return routes_at_price(diffs, costs, self.knob * errors / blocks / DB_PER_RELATIVE_ERROR)


def raise_lone_blocks(routes: torch.Tensor) -> torch.Tensor:
    """A (rows, cols) exit map with every block whose exit is below all of its neighbours' (up, down,
    left, right; those inside the grid) raised to the lowest of theirs: a lone shallow block among deeper
    ones saves its MACs only by cutting the deeper areas around it."""
    outside = int(routes.max()) + 1
    padded = F.pad(routes[None, None].float(), (1, 1, 1, 1), value=outside)[0, 0]
    neighbours = torch.stack((padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:])).amin(dim=0)
    lone = (routes < neighbours) & (neighbours < outside)
    return torch.where(lone, neighbours.long(), routes)


class _FixedRoutes(PatchRoutedMethod):
    """``method``'s exits with routes decided beforehand (for the region mode after raising lone blocks)."""

    def __init__(self, method: "RdsrExitRouting", routes: torch.Tensor) -> None:
        super().__init__(scale=method.scale, num_routes=method.num_routes)
        self.method, self.routes = method, routes

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        return self.routes

    def route_module(self, index: int) -> nn.Module:
        return self.method.route_module(index)

    def route_macs(self, index: int, patch_hw: tuple[int, int]) -> int:
        return self.method.route_macs(index, patch_hw)


def _router_starts(side: int) -> torch.Tensor:
    """Tops (lefts) of the router's patches in a patch of ``side`` pixels: every ``ROUTER_PATCH``, the last
    one ending at the border (one patch of the whole side where it is shorter)."""
    return torch.arange(0, side, ROUTER_PATCH).clamp(max=max(side - ROUTER_PATCH, 0))


def predict_per_patch(router: nn.Module, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``router.predict`` for (P, 3, h, w) patches of any size: the mean of its predictions (per-pixel
    mean squares) over each patch's ``ROUTER_PATCH`` sub-patches, the size it is calibrated on."""
    height, width = patches.shape[-2:]
    if height <= ROUTER_PATCH and width <= ROUTER_PATCH:
        return router.predict(patches)
    sub_h, sub_w = min(ROUTER_PATCH, height), min(ROUTER_PATCH, width)
    subs = [patches[..., top : top + sub_h, left : left + sub_w]
            for top in _router_starts(height).tolist() for left in _router_starts(width).tolist()]
    diffs, full = router.predict(torch.cat(subs))
    count = len(subs)
    return diffs.view(count, len(patches), -1).mean(dim=0), full.view(count, len(patches)).mean(dim=0)


def budget_routes(diffs: torch.Tensor, full: torch.Tensor, costs: torch.Tensor, loss_db: float) -> torch.Tensor:
    """(P,) exits of least total cost whose added squared error stays within the budget ``loss_db`` allows.

    ``diffs`` (P, E): each exit's added squared error per patch (0 on the last exit); ``full`` (P,): the
    last exit's squared error; ``costs`` (E,) increasing, the last the most. Each patch takes ``argmin_k
    diffs[p, k] + lam * costs[k]`` (ties to the costlier exit) for the largest ``lam`` (bisection, 60
    halvings) whose total added error is at most ``(10 ** (loss_db / 10) - 1) * full.sum()``."""
    return routes_within(diffs, costs, (10 ** (loss_db / 10) - 1) * float(full.sum()))


def routes_within(diffs: torch.Tensor, costs: torch.Tensor, budget: float) -> torch.Tensor:
    """(P,) routes of least total ``costs`` whose summed ``diffs`` (P, E) stay within ``budget`` (squared
    error), chosen as :func:`budget_routes` chooses them; a budget <= 0: the last route everywhere."""
    last = diffs.shape[1] - 1
    reversed_diffs, reversed_costs = diffs.flip(1), costs.flip(0)  # once, not at each of the 60 halvings

    def routes_at(lam: float) -> torch.Tensor:
        return _costliest_argmin(reversed_diffs, reversed_costs, lam)

    def added(routes: torch.Tensor) -> float:
        return float(diffs.gather(1, routes[:, None]).sum())

    cheapest = torch.zeros(len(diffs), dtype=torch.long)
    if budget <= 0 or len(diffs) == 0:
        return torch.full((len(diffs),), last, dtype=torch.long)
    if added(cheapest) <= budget:
        return cheapest
    # At ``high`` every patch is on exit 0: a price above any saving in error per cost of a step.
    steps = costs[1:] - costs[0]  # (routes may cost what route 0 costs: the cascade's exits 0 and 1)
    low, high = 0.0, float(diffs.max()) / float(steps[steps > 0].min()) + 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if added(routes_at(middle)) <= budget else (low, middle)
    return routes_at(low)


def routes_at_price(diffs: torch.Tensor, costs: torch.Tensor, price: float) -> torch.Tensor:
    """(P,) ``argmin_k diffs[p, k] + price * costs[k]`` over the (P, E) ``diffs``, ties to the costlier route."""
    return _costliest_argmin(diffs.flip(1), costs.flip(0), price)


def _costliest_argmin(reversed_diffs: torch.Tensor, reversed_costs: torch.Tensor, price: float) -> torch.Tensor:
    """:func:`routes_at_price` of the routes in reversed order (costliest first), so that argmin's first
    minimum is the costliest route: an exit must earn its place."""
    return reversed_diffs.shape[1] - 1 - torch.argmin(reversed_diffs + price * reversed_costs, dim=1)


def _as_network(model: nn.Module) -> RDSRAdaptive:
    if not isinstance(model, RDSRAdaptive):
        raise SrlabError(
            "adaptive methods rdsr_adaptive and rdsr_adaptive_rate run an rdsr_adaptive model, "
            f"got {type(model).__name__}: build it with --model rdsr_adaptive"
        )
    return model


@register_adaptive
def rdsr_adaptive(model: nn.Module, *, checkpoint: Path | None = None, knob: float = 0.03) -> RdsrExitRouting:
    """The exits of a built ``rdsr_adaptive`` model (its router trained), routed so that each image loses
    at most ``knob`` dB of PSNR as its router predicts."""
    return RdsrExitRouting(_as_network(model), knob=knob)


@register_adaptive
def rdsr_adaptive_rate(model: nn.Module, *, checkpoint: Path | None = None, knob: float = 0.32) -> RdsrRateRouting:
    """The exits of a built ``rdsr_adaptive`` model (its router trained), routed at one exchange rate: a
    block takes a cheaper exit where the PSNR it loses, as predicted, is less than ``knob`` dB times the
    share of the image's full-path MACs it saves."""
    return RdsrRateRouting(_as_network(model), knob=knob)


@torch.no_grad()
def exit_targets(
    model: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, patch: int = ROUTER_PATCH, stride: int = 16,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the router learns, per patch of the (LR (3, h, w), HR (3, h*s, w*s)) ``pairs``: the LR patches
    (P, 3, patch, patch), the mean squared Y difference of every route's clamped output to the full path's
    (P, routes) and the full path's mean squared Y error against the HR patch (P,), in 8-bit levels squared."""
    network = _as_network(model)
    scale = network.scale
    lr_all, diffs, errors = [], [], []
    for lr, hr in pairs:
        if tuple(hr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale):
            raise SrlabError(
                f"calibration pair: HR {tuple(hr.shape[-2:])} is not LR {tuple(lr.shape[-2:])} times {scale}"
            )
        lr_patches, _ = split_patches(lr[None], patch, stride)
        hr_patches, _ = split_patches(hr[None], patch * scale, stride * scale)
        outputs = [
            rgb_to_y(torch.cat([network.forward_route(chunk, r) for chunk in lr_patches.split(batch_size)]).clamp(0, 1))
            for r in range(network.num_routes)
        ]
        lr_all.append(lr_patches)
        diffs.append(torch.stack([(y - outputs[-1]).square().flatten(1).mean(dim=1) for y in outputs], dim=1))
        errors.append((outputs[-1] - rgb_to_y(hr_patches)).square().flatten(1).mean(dim=1))
    if not lr_all:
        raise SrlabError("router calibration needs at least one calibration image")
    return torch.cat(lr_all), torch.cat(diffs) * LEVELS2, torch.cat(errors) * LEVELS2


def calibrate_router(
    model: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, patch: int = ROUTER_PATCH, stride: int = 16,
    steps: int = 16000, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
) -> float:
    """Train ``model``'s router on calibration ``pairs`` (see :func:`exit_targets`; overlapping patches,
    ``stride``) and mark it trained: Adam with a cosine schedule, random flips and transposes of the
    patches; the squared differences are fitted in log space (they are exact functions of the patch), the
    full path's error with a Poisson loss (its prediction is then its mean: the ground truth's
    unpredictable part averages out over an image). Deterministic for a ``seed`` and a thread count (1 and
    2 threads round differently, and over 16,000 steps the weights drift apart); the global random state
    is left as it was. Returns the last step's loss. The model is left in eval mode."""
    network = _as_network(model).eval()
    patches, diffs, errors = exit_targets(network, pairs, patch=patch, stride=stride)
    loss = fit_router(network.router, patches, diffs[:, :-1], errors, patch=patch, steps=steps,
                       batch_size=batch_size, lr=lr, seed=seed, flip=True)
    network.router_trained.fill_(True)
    return loss


def calibrate_feature_router(
    model: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, patch: int = ROUTER_PATCH,
    stride: int = 32, flips: bool = True, steps: int = 16000, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
) -> float:
    """Train the cascade's feature router of ``model`` (built with ``feature_router``) on calibration
    ``pairs`` and mark it trained: :func:`srlab.adaptive.rdsr_cascade.feature_targets` (each image and, with
    ``flips``, three flips of it through the network; ``patch`` x ``patch`` blocks at ``stride``), fitted as
    :func:`calibrate_router` fits the first router (no random flips in training: a flipped feature map is
    not the flipped image's). Returns the last step's loss; the model is left in eval mode."""
    network = _as_network(model).eval()
    if network.feature_router is None:
        raise SrlabError("this rdsr_adaptive model has no feature router: build it with feature_router=True "
                         "(srlab rdsr-router --feature_router)")
    inputs, diffs, errors = feature_targets(network, pairs, patch=patch, stride=stride, flips=flips)
    loss = fit_router(network.feature_router, inputs, diffs, errors, patch=patch, steps=steps,
                       batch_size=batch_size, lr=lr, seed=seed, flip=False)
    network.feature_router_trained.fill_(True)
    return loss


def fit_router(router: nn.Module, inputs: torch.Tensor, diffs: torch.Tensor, errors: torch.Tensor, *, patch: int,
                steps: int, batch_size: int, lr: float, seed: int, flip: bool) -> float:
    """Fit ``router`` (fresh weights from ``seed``) to each cheaper route's squared difference ``diffs``
    (P, routes - 1) in log space and the full path's squared error ``errors`` (P,) by a Poisson loss, on
    batches of ``inputs`` (randomly flipped where ``flip``). Returns the last step's loss."""
    if len(inputs) < 2:
        raise SrlabError(
            f"router calibration needs at least 2 patches of {patch}x{patch}, got {len(inputs)}: "
            "give more or larger images"
        )
    log_diffs = (diffs + ROUTER_EPS).log()
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in router.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                layer.reset_parameters()
    router.requires_grad_(True)
    optimizer = torch.optim.Adam(router.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    router.train()
    loss = torch.zeros(())
    try:
        with torch.enable_grad():
            for _ in range(steps):
                index = torch.randint(len(inputs), (min(batch_size, len(inputs)),), generator=generator)
                batch = inputs[index].float()
                out = router(_dihedral(batch, generator) if flip else batch)
                poisson = (out[:, -1].exp() - errors[index] * out[:, -1]).mean()
                loss = F.mse_loss(out[:, :-1], log_diffs[index]) + poisson
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    finally:
        router.requires_grad_(False)
    router.eval()
    return float(loss.detach())


def with_router(path: str | Path, *, contrast: bool = False, bicubic_route: bool = False,
                feature_router: bool = False) -> RDSRAdaptive:
    """The rdsr_adaptive network of the srlab checkpoint ``path`` with a fresh router for these settings
    (``router_contrast``, ``bicubic_route``; a setting left False keeps the checkpoint's): every other
    weight as it is, for :func:`calibrate_router` to train the router. ``feature_router`` alone: the
    checkpoint's router as it is and a fresh feature router (the cascade's), for
    :func:`calibrate_feature_router`."""
    checkpoint = read_checkpoint(path)
    if checkpoint.model != "rdsr_adaptive":
        raise SrlabError(f"'{path}' holds no rdsr_adaptive weights written by srlab: give the weights of an "
                         "rdsr_adaptive run to calibrate its router")
    args = dict(checkpoint.args)
    args["router_contrast"] = contrast or bool(args.get("router_contrast", False))
    args["bicubic_route"] = bicubic_route or bool(args.get("bicubic_route", False))
    args["feature_router"] = feature_router or bool(args.get("feature_router", False))
    model = create_model("rdsr_adaptive", scale=checkpoint.scale, args=args)
    load_matching(model, checkpoint)  # all but a router's head whose inputs or outputs changed
    if contrast or bicubic_route or not feature_router:
        model.router_trained.fill_(False)
    if model.feature_router is not None and (feature_router or bicubic_route):
        model.feature_router_trained.fill_(False)  # new, or its routes changed
    return model


def _dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` flipped left-right, up-down and transposed, each with probability 1/2 (the exits' errors are
    nearly invariant to these: the network is trained on flipped and transposed patches)."""
    flips = torch.rand(3, generator=generator) < 0.5
    if flips[0]:
        x = x.flip(-1)
    if flips[1]:
        x = x.flip(-2)
    return x.transpose(-1, -2) if flips[2] else x
