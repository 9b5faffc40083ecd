"""How far the released ARM-CARN supernet could go with better routing than its lookup table (issue 12).

Usage: python bench/arm_routing_bounds.py --photos DIR [--train DIR --steps N] [--rates 0.1,0.2,0.4]

Two curves over the photos in DIR (x4, PSNR-Y against the full width's on the whole image, MACs as a share of
the full width's), against ARM's own table (``bench_adaptive_speed.py --methods arm``):

* oracle: every 32x32 LR block takes the route (bicubic, width 36 / 52 / 64, each computed on the whole image,
  8-bit rounded as ARM's test rounds) that minimises its exact squared error against the ground truth plus
  ``price`` times its MACs (``price`` relative to the image's mean full-width block error, as
  ``rdsr_adaptive_rate`` prices); no window overhead: a bound no router reaches, since it sees the ground truth;
* ``--train DIR``: srlab's learned router (:class:`srlab.models.rdsr_adaptive.ExitRouter`, fitted as
  ``rdsr_adaptive``'s by ``srlab.adaptive.rdsr._fit_router`` on the whole-image outputs of the photos in DIR,
  32x32 patches at stride 16) routing ARM's region mode (32x32 blocks, 4 pixels of context) at one rate.

Measured (2026-12-07, AMD EPYC Zen 4, 2 threads; the 13 2K photos of ``scripts/make_photo_test2k.sh``; the
router fitted with ``--train`` the 49 proxy training photos, ``--steps 4000``; the run ~15 minutes): oracle price 0.01
+0.0311 dB 0.561, 0.02 +0.0267 0.490, 0.05 +0.0130 0.394, 0.1 -0.0111 0.316, 0.2 -0.0473 0.256 (~0.29 of the MACs
at -0.03 dB); learned router rate 0.05 -0.0043 dB 0.931, 0.1 -0.0092 0.855, 0.2 -0.0227 0.771, 0.4 -0.0588 0.623
(~0.74 at -0.03 dB; ARM's table: eta 2 -0.0209 dB at 0.842, eta 1 -0.38 dB at 0.287). So the released supernet's
widths are not what keeps ARM-CARN from half the MACs: its routing is (the table's edge score, and a router
that predicts each block's loss from the LR block alone, as rdsr_adaptive's first router).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from srlab.adaptive import build_adaptive
from srlab.adaptive.arm import _Bicubic
from srlab.adaptive.patches import split_patches
from srlab.adaptive.rdsr import DB_PER_RELATIVE_ERROR, LEVELS2, _fit_router, _predict_per_patch, routes_at_price
from srlab.data.io import list_images
from srlab.metrics.color import rgb_to_y
from srlab.models.arm import Subnet
from srlab.models.create import create_model
from srlab.models.rdsr_adaptive import ExitRouter
from bench_adaptive_speed import load_photo, psnr_y  # bench/: scripts run as python bench/<name>.py
from machine import cpu_model

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "official-weights" / "arm" / "arm-carn.pth"
SCALE, BLOCK = 4, 32


def route_outputs(routes: list, lr: torch.Tensor) -> list[torch.Tensor]:
    """Each route's whole-image output, Y, rounded to 8-bit levels as ARM's test rounds."""
    return [rgb_to_y(torch.round(route(lr).clamp(0, 1) * 255) / 255) for route in routes]


def block_errors(ys: list[torch.Tensor], reference: torch.Tensor) -> torch.Tensor:
    """(blocks, routes) summed squared difference of each route's Y to ``reference`` (Y) per 32x32 LR block, 4
    border pixels left out."""
    side = BLOCK * SCALE
    errors = []
    for y in ys:
        d = (y.double() - reference.double())[0, 0].square()
        d[:SCALE], d[-SCALE:], d[:, :SCALE], d[:, -SCALE:] = 0, 0, 0, 0
        d = F.pad(d, (0, -d.shape[1] % side, 0, -d.shape[0] % side))
        errors.append(d.unfold(0, side, side).unfold(1, side, side).sum(dim=(-1, -2)).flatten())
    return torch.stack(errors, dim=1)


def oracle(photos: list, routes: list, costs: torch.Tensor, prices: list[float]) -> None:
    """Both oracles: routed by the exact error against the ground truth, and by the exact difference to the full
    width (what a router that sees the LR image alone can learn); each scored against the ground truth."""
    errors, diffs = [], []
    with torch.no_grad():
        for hr, lr in photos:
            ys = route_outputs(routes, lr)
            errors.append(block_errors(ys, rgb_to_y(hr)))
            diffs.append(block_errors(ys, ys[-1]))
    for title, routed_by in (("ground truth", errors), ("difference to the full width", diffs)):
        print(f"oracle ({title} per block, no window overhead): price, mean / worst dPSNR, MACs")
        for price in prices:
            deltas, spent, count = [], 0.0, 0
            for e, by in zip(errors, routed_by):
                chosen = routes_at_price(by, costs, price * float(e[:, -1].mean()))
                deltas.append(-10 * torch.log10(e.gather(1, chosen[:, None]).sum() / e[:, -1].sum()).item())
                spent, count = spent + float(costs[chosen].sum()), count + len(chosen)
            print(f"  {price:g}: {sum(deltas) / len(deltas):+.4f} / {min(deltas):+.4f} dB  MACs {spent / count:.3f}")


def fit_router(train: Path, routes: list, steps: int) -> ExitRouter:
    inputs, diffs, errors = [], [], []
    with torch.no_grad():
        for path in list_images(train):
            hr, lr = load_photo(path, None)
            patches = [split_patches(y, BLOCK * SCALE, 16 * SCALE)[0].flatten(1) for y in route_outputs(routes, lr)]
            truth = split_patches(rgb_to_y(hr), BLOCK * SCALE, 16 * SCALE)[0].flatten(1)
            inputs.append(split_patches(lr, BLOCK, 16)[0])
            diffs.append(torch.stack([(p - patches[-1]).square().mean(1) for p in patches], dim=1) * LEVELS2)
            errors.append((patches[-1] - truth).square().mean(1) * LEVELS2)
    router = ExitRouter(num_routes=len(routes), width=16)
    _fit_router(router, torch.cat(inputs), torch.cat(diffs)[:, :-1], torch.cat(errors), patch=BLOCK, steps=steps,
                batch_size=256, lr=2e-3, seed=0, flip=True)
    return router


def learned(photos: list, supernet, router: ExitRouter, costs: torch.Tensor, rates: list[float]) -> None:
    method = build_adaptive("arm", supernet, checkpoint=WEIGHTS, knob=1.0).eval()
    rate = [0.0]

    def route(patches: torch.Tensor) -> torch.Tensor:
        diffs, full = _predict_per_patch(router, patches.float())
        return routes_at_price(diffs, costs, rate[0] * float(full.mean()) / DB_PER_RELATIVE_ERROR)

    method.route = route
    print("learned router, ARM's region mode at one rate: rate, mean / worst dPSNR, MACs (router included)")
    with torch.no_grad():
        full = [psnr_y(supernet(lr), hr) for hr, lr in photos]
        for rate[0] in rates:
            deltas, spent, total = [], 0, 0
            for (hr, lr), reference in zip(photos, full):
                sr, stats = method.upscale(lr)
                deltas.append(psnr_y(sr, hr) - reference)
                spent, total = spent + stats.macs_spent, total + stats.macs_full
            print(f"  {rate[0]:g}: {sum(deltas) / len(deltas):+.4f} / {min(deltas):+.4f} dB  MACs {spent / total:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True, help="HR photos not used for training")
    parser.add_argument("--train", type=Path, help="HR photos to fit srlab's learned router on (else the oracle only)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--prices", default="0.01,0.02,0.05,0.1,0.2")
    parser.add_argument("--rates", default="0.05,0.1,0.2,0.4")
    opts = parser.parse_args()
    if not WEIGHTS.exists():
        sys.exit(f"arm_routing_bounds: error: {WEIGHTS} is missing (the released ARM-CARN weights, ../shared)")
    photos = [load_photo(path, None) for path in list_images(opts.photos)]
    if not photos:
        sys.exit(f"arm_routing_bounds: error: no images in {opts.photos} (bash scripts/make_photo_test2k.sh OUT)")
    supernet = create_model("arm_carn", scale=SCALE, checkpoint=WEIGHTS).eval()
    routes = [_Bicubic(SCALE), *(Subnet(supernet, width) for width in supernet.widths)]
    table = build_adaptive("arm", supernet, checkpoint=WEIGHTS, knob=1.0).table
    costs = torch.tensor(table.cost, dtype=torch.float64) / float(table.cost[-1])
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"ARM-CARN (released), x{SCALE}, {len(photos)} photos from {opts.photos}; route costs {costs.tolist()}")
    oracle(photos, routes, costs, [float(p) for p in opts.prices.split(",")])
    if opts.train:
        learned(photos, supernet, fit_router(opts.train, routes, opts.steps), costs,
                [float(r) for r in opts.rates.split(",")])


if __name__ == "__main__":
    main()
