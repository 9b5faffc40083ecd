"""``arm_learned``: an ARM supernet routed by srlab's learned router at one exchange rate (issue 12).

ARM routes each patch by its edge score through a lookup table built on a validation set
(:mod:`srlab.adaptive.arm`). This method keeps the supernet and its routes (bicubic, then the subnets; each
SR patch rounded to 8-bit levels as ARM's test rounds) and routes instead as ``rdsr_adaptive_rate`` does:
a small CNN on the LR patch (:class:`srlab.layers.router.ExitRouter`) predicts each cheaper
route's mean squared Y difference to the full width's output and the full width's own squared error, and
each patch takes ``argmin_k d[k] + rate * mean(e) / DB_PER_RELATIVE_ERROR * macs[k]`` (``macs`` as shares of
the full width's; the knob ``rate``: the PSNR in dB an image's full-width MACs are worth; 0 runs the full
width everywhere without the router). Not ARM's method: srlab's router on ARM's released supernets.

The router lives beside the supernet's weights, ``<stem>.router.safetensors`` (as ARM's lookup table
lives in ``<stem>.hmap.json``), written by :func:`calibrate_arm_router` (``srlab arm-router``) from the
whole-image outputs of every route on calibration photos (never the test sets), 32x32 LR patches at
stride 16; the file's metadata records the supernet (name, widths) and the router's shape (width, contrast).
Measured (``bench/bench_adaptive_speed.py --methods arm_learned``, 2026-12-07): the released ARM-CARN on the 13 2K
test photos, AMD EPYC Zen 4, router fitted on the 49 proxy training photos with 16,000 steps, region mode: with
``rdsr_adaptive``'s router shape (width 16, no contrast) rate 0.25 -0.0215 dB at 0.710 of the MACs, x1.60 / x1.69
faster than the full width at 1 / 2 threads (~0.69 of the MACs at -0.03 dB), against the lookup table's 0.842 at
-0.0209 dB (eta 2); with the default shape since (width 32, contrast) rate 0.3 -0.0251 dB at 0.654 (~0.63 at
-0.03 dB), x1.74 / x1.80 at 1 / 2 threads. Since session 27 the region mode runs the windows with 3 pixels of
context instead of 4 and routes the blocks knowing what their windows' margins cost
(:meth:`ArmLearnedRouting.route_blocks`): rate 0.35 -0.0295 dB at 0.573 of the MACs, x1.99 / x2.02 at 1 / 2 threads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from srlab.adaptive.arm import ArmRoutes, check_supernet
from srlab.adaptive.costs import route_macs
from srlab.adaptive.method import register_adaptive
from srlab.adaptive.patches import split_patches
from srlab.adaptive.regions import routes_with_seams
from srlab.adaptive.rdsr import (
    DB_PER_RELATIVE_ERROR, LEVELS2, ROUTER_PATCH, fit_router, predict_per_patch, routes_at_price,
)
from srlab.errors import SrlabError
from srlab.fileio import atomic_write_bytes
from srlab.layers.router import ExitRouter
from srlab.metrics.color import rgb_to_y
from srlab.models.complexity import count_macs
from srlab.models.registry import spec_of

ROUTER_SUFFIX = ".router.safetensors"
# The router trained by default: twice rdsr_adaptive's width, on contrast-normalised patches (ExitRouter's
# ``contrast``). On the 13 2K test photos with the released ARM-CARN (router fitted on the 49 proxy training photos,
# 16,000 steps; AMD EPYC Zen 4, 2026-12-07) it spends ~0.63 of the MACs at -0.03 dB (rate 0.3 -0.0251 dB at 0.654,
# worst photo -0.0515) where rdsr_adaptive's shape (width 16, no contrast) spent ~0.68 (rate 0.3 -0.0334 at 0.670,
# worst -0.1146); its cost, 0.34 % of ARM-CARN's MACs on a 32x32 LR patch (count_macs: 1.99 M against 577.6 M;
# width 16: 0.10 %), is counted in the MACs spent. Twice as wide again (width 64, 1.3 % of the MACs; 2974 s to train
# at 1 thread, final loss -52.924 against -52.681) spent the same (~0.57 at -0.03 dB, margin-aware routing both).
ROUTER_WIDTH = 32
ROUTER_CONTRAST = True
# `srlab arm-router` also learns from each calibration photo downscaled by these factors (1.8x the patches, of
# denser detail): held-out errors were the router's limit (its log-difference error on the 2K test photos 3x its
# training one; stride 8 instead of 16 no help). Measured in the README, "More calibration data": one router so
# trained (AMD EPYC Zen 4) ~0.55 of ARM-CARN's MACs at -0.03 dB on the 2K photos against ~0.57 without, but the
# CLI's own run on an Intel Xeon ~0.58: trainings spread as much as that gain, so the default is not settled.
CALIBRATION_DOWNSCALES = (0.75, 0.5)
# Router files written before the shape was recorded in their metadata (session 25) hold this one.
UNRECORDED_SHAPE = {"width": 16, "contrast": False}


class ArmLearnedRouting(ArmRoutes):
    knob_name = "rate"
    # Context of the region mode's windows: 3 LR pixels, not 4 (13 2K photos, released ARM-CARN, width-32
    # router, rate 0.3: -0.0253 dB at 0.616 of the MACs against -0.0251 at 0.654; 2: -0.0326 at 0.580).
    region_margin = 3
    knob_range = (0.0, 100.0)
    # Cheap to expensive; 0 is the full width everywhere.
    knob_sweep = (2.0, 1.0, 0.5, 0.3, 0.2, 0.1, 0.0)

    def __init__(self, supernet: nn.Module, router: ExitRouter, *, knob: float) -> None:
        super().__init__(supernet, knob=knob)
        self.router = router

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        if self.knob == 0:
            return self._full_width(patches)
        diffs, costs, price = self._priced(patches)
        return routes_at_price(diffs, costs, price).to(patches.device)

    def route_blocks(self, patches: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """:meth:`route` with the margins the region mode's windows add where neighbouring blocks differ
        (:func:`srlab.adaptive.regions.routes_with_seams`, each such side at ``region_margin / region_block``
        of the block's MACs, priced as the MACs are)."""
        if self.knob == 0:
            return self._full_width(patches)
        diffs, costs, price = self._priced(patches)
        seam = price * self.region_margin / self.region_block
        return routes_with_seams((diffs + price * costs).view(*grid_hw, -1), costs, seam).to(patches.device)

    def _priced(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Each patch's predicted squared difference per route, the routes' MACs (shares of the full width's) and
        the price of the full width's MACs in squared difference."""
        diffs, full = predict_per_patch(self.router, patches.float())
        costs = torch.tensor([route_macs(self, i, tuple(patches.shape[-2:])) for i in range(self.num_routes)],
                             dtype=torch.float64)
        return diffs, costs / costs[-1], self.knob * float(full.mean()) / DB_PER_RELATIVE_ERROR

    def _full_width(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.full((len(patches),), self.num_routes - 1, dtype=torch.long, device=patches.device)

    def router_macs(self, patch_hw: tuple[int, int]) -> int:
        return 0 if self.knob == 0 else count_macs(self.router, patch_hw)


def router_file(checkpoint: Path) -> Path:
    """Where the router of the supernet weights ``checkpoint`` lives."""
    return checkpoint.with_name(checkpoint.stem + ROUTER_SUFFIX)


def _fresh_router(supernet: nn.Module, *, width: int = ROUTER_WIDTH, contrast: bool = ROUTER_CONTRAST) -> ExitRouter:
    return ExitRouter(num_routes=len(supernet.widths) + 1, width=width, contrast=contrast)


def save_arm_router(path: Path, router: ExitRouter, supernet: nn.Module) -> None:
    """Write ``router`` (atomically) with the supernet it routes (its registry name and widths) and its own shape."""
    meta = {"srlab": "arm_learned router", "model": spec_of(supernet).name, "widths": json.dumps(list(supernet.widths)),
            "router_width": str(router.body[0].out_channels), "router_contrast": json.dumps(router.contrast)}
    atomic_write_bytes(path, save({k: v.contiguous() for k, v in router.state_dict().items()}, metadata=meta))


def load_arm_router(path: Path, supernet: nn.Module) -> ExitRouter:
    """The router in ``path`` for ``supernet``; a one-line error if it is missing, corrupt or another's."""
    fix = f"train one with `srlab arm-router --model {spec_of(supernet).name} --checkpoint WEIGHTS --data PHOTOS`"
    if not path.is_file():
        raise SrlabError(f"adaptive method arm_learned needs the router '{path}' beside the weights: {fix}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta, tensors = f.metadata() or {}, {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise SrlabError(f"'{path}' is not a readable router ({type(e).__name__}): {fix}") from None
    if meta.get("srlab") != "arm_learned router" or meta.get("model") != spec_of(supernet).name \
            or meta.get("widths") != json.dumps(list(supernet.widths)):
        raise SrlabError(f"'{path}' is not a router of {spec_of(supernet).name} with widths {list(supernet.widths)} "
                         f"(it says model {meta.get('model')!r}, widths {meta.get('widths')}): {fix}")
    try:
        width = int(meta.get("router_width", UNRECORDED_SHAPE["width"]))
        contrast = json.loads(meta.get("router_contrast", json.dumps(UNRECORDED_SHAPE["contrast"])))
        router = _fresh_router(supernet, width=width, contrast=bool(contrast))
        router.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError):
        raise SrlabError(f"'{path}' holds tensors of another router shape: {fix}") from None
    return router.eval()


def calibrate_arm_router(
    supernet: nn.Module, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], *, stride: int = 16,
    steps: int = 16000, seed: int = 0, width: int = ROUTER_WIDTH,
) -> tuple[ExitRouter, float]:
    """A router for ``supernet`` trained on the (LR, HR) ``pairs`` (calibration images, never test sets):
    every route runs on the whole LR image (rounded as ARM's test rounds); per 32x32 LR patch at ``stride``,
    each route's mean squared Y difference to the full width and the full width's error against HR, in
    8-bit levels squared; fitted as ``rdsr_adaptive``'s router (:func:`srlab.adaptive.rdsr.fit_router`),
    ``width`` channels in its first convolution (contrast-normalised). Returns the router (eval mode) and the
    last step's loss."""
    check_supernet(supernet, "arm_learned")
    # its router: the one trained here
    routes = ArmLearnedRouting(supernet.eval(), _fresh_router(supernet, width=width), knob=0.0)
    scale, side = supernet.scale, ROUTER_PATCH
    inputs, diffs, errors = [], [], []
    with torch.no_grad():
        for lr, hr in pairs:
            if tuple(hr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale) or min(lr.shape[-2:]) < side:
                raise SrlabError(f"calibration pair: LR {tuple(lr.shape[-2:])} must be at least {side}x{side} and HR "
                                 f"{tuple(hr.shape[-2:])} the LR times {scale}")
            outputs = [split_patches(rgb_to_y(routes.run(i, lr[None])), side * scale, stride * scale)[0].flatten(1)
                       for i in range(routes.num_routes)]
            truth = split_patches(rgb_to_y(hr[None]), side * scale, stride * scale)[0].flatten(1)
            inputs.append(split_patches(lr[None], side, stride)[0])
            diffs.append(torch.stack([(y - outputs[-1]).square().mean(1) for y in outputs[:-1]], dim=1) * LEVELS2)
            errors.append((outputs[-1] - truth).square().mean(1) * LEVELS2)
    if not inputs:
        raise SrlabError("router calibration needs at least one calibration image")
    router = routes.router
    loss = fit_router(router, torch.cat(inputs), torch.cat(diffs), torch.cat(errors), patch=side, steps=steps,
                      batch_size=256, lr=2e-3, seed=seed, flip=True)
    return router, loss


@register_adaptive
def arm_learned(model: nn.Module, *, checkpoint: Path | None = None, knob: float = 0.3) -> ArmLearnedRouting:
    """An ARM supernet with the learned router ``<stem>.router.safetensors`` beside its ``checkpoint``."""
    check_supernet(model, "arm_learned")
    if checkpoint is None:
        raise SrlabError("adaptive method arm_learned needs the supernet's weights and their router: give "
                         f"--checkpoint FILE (FILE's router: <stem>{ROUTER_SUFFIX} beside it)")
    return ArmLearnedRouting(model, load_arm_router(router_file(Path(checkpoint)), model), knob=knob)
