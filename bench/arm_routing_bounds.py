"""How far the released ARM-CARN supernet could go with better routing than its lookup table (issue 12).

Usage: python bench/arm_routing_bounds.py --photos DIR [--train DIR --steps N] [--rates 0.1,0.2,0.4]

Two curves over the photos in DIR (x4, PSNR-Y against the full width's on the whole image, MACs as a share of
the full width's), against ARM's own table (``bench_adaptive_speed.py --methods arm``):

* oracles: every 32x32 LR block takes the route (bicubic, width 36 / 52 / 64, each computed on the whole image,
  8-bit rounded as ARM's test rounds) that minimises its exact squared error against the ground truth plus
  ``price`` times its MACs (``price`` relative to the image's mean full-width block error, as
  ``rdsr_adaptive_rate`` prices); no window overhead: a bound no router reaches, since it sees the ground truth
  (and profits from its noise: below price 0.05 it beats the full width); and the same routed by each block's
  exact squared difference to the full width's output instead, what a router that sees the LR image alone
  learns (``rdsr_adaptive``'s router predicts it), scored against the ground truth;
* ``--train DIR``: the adaptive method ``arm_learned`` (:mod:`srlab.adaptive.arm_learned`: srlab's learned
  router, fitted as ``rdsr_adaptive``'s on the whole-image outputs of the photos in DIR, 32x32 patches at
  stride 16, as ``srlab arm-router`` fits it) routing ARM's region mode (32x32 blocks, 4 pixels of context) at
  one rate.

Measured (2026-12-07, AMD EPYC Zen 4, 2 threads; the 13 2K photos of ``scripts/make_photo_test2k.sh``; the
router fitted with ``--train`` the 49 proxy training photos, ``--steps 4000``; the run ~15 minutes): oracle price 0.01
+0.0311 dB 0.561, 0.02 +0.0267 0.490, 0.05 +0.0130 0.394, 0.1 -0.0111 0.316, 0.2 -0.0473 0.256 (~0.29 of the MACs
at -0.03 dB); learned router rate 0.05 -0.0043 dB 0.931, 0.1 -0.0092 0.855, 0.2 -0.0227 0.771, 0.4 -0.0588 0.623
(~0.74 at -0.03 dB; ARM's table: eta 2 -0.0209 dB at 0.842, eta 1 -0.38 dB at 0.287).
Again (2026-12-07, session 25, same machine and photos): the difference oracle, price 0.005 -0.0002 dB 0.865, 0.01
-0.0011 0.776, 0.02 -0.0039 0.643, 0.05 -0.0152 0.489, 0.1 -0.0393 0.372, 0.2 -0.0770 0.288 (~0.42 at -0.03 dB,
no window overhead); the learned router with ``--steps 16000`` (the count ``rdsr_adaptive``'s routers are
calibrated with), rate 0.1 -0.0083 dB 0.834, 0.2 -0.0172 0.746, 0.3 -0.0334 0.669, 0.4 -0.0469 0.620 (~0.69 at
-0.03 dB; the run ~25 minutes; ``rdsr_adaptive``'s router shape, width 16, the default until session 26,
which trains width 32 on contrast-normalised patches: README). So the released supernet's widths are not what keeps ARM-CARN from half the
MACs: even routed by exact differences it would spend ~0.42 before the region mode's context; its routing is
(the table's edge score, and a router that predicts each block's loss from the LR block alone, as
rdsr_adaptive's first router; a width-slimmed supernet has no cheap first stage whose features a second
router could see and reuse, as ``rdsr_adaptive``'s cascade does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from srlab.adaptive import build_adaptive
from srlab.adaptive.arm import arm_routes
from srlab.adaptive.arm_learned import ArmLearnedRouting, calibrate_arm_router
from srlab.adaptive.rdsr import routes_at_price
from srlab.data.io import list_images
from srlab.metrics.color import rgb_to_y
from srlab.models.create import create_model
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


def learned(photos: list, supernet, train: Path, steps: int, rates: list[float]) -> None:
    """The adaptive method ``arm_learned`` with a router calibrated on the photos in ``train``."""
    pairs = ((lr[0], hr[0]) for hr, lr in (load_photo(path, None) for path in list_images(train)))
    router, _ = calibrate_arm_router(supernet, pairs, steps=steps)
    method = ArmLearnedRouting(supernet, router, knob=0.0).eval()
    print("learned router (arm_learned), ARM's region mode at one rate: rate, mean / worst dPSNR, MACs (router included)")
    with torch.no_grad():
        full = [psnr_y(supernet(lr), hr) for hr, lr in photos]
        for rate in rates:
            method.knob = rate
            deltas, spent, total = [], 0, 0
            for (hr, lr), reference in zip(photos, full):
                sr, stats = method.upscale(lr)
                deltas.append(psnr_y(sr, hr) - reference)
                spent, total = spent + stats.macs_spent, total + stats.macs_full
            print(f"  {rate:g}: {sum(deltas) / len(deltas):+.4f} / {min(deltas):+.4f} dB  MACs {spent / total:.3f}")


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
    routes = list(arm_routes(supernet))
    table = build_adaptive("arm", supernet, checkpoint=WEIGHTS, knob=1.0).table
    costs = torch.tensor(table.cost, dtype=torch.float64) / float(table.cost[-1])
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"ARM-CARN (released), x{SCALE}, {len(photos)} photos from {opts.photos}; route costs {costs.tolist()}")
    oracle(photos, routes, costs, [float(p) for p in opts.prices.split(",")])
    if opts.train:
        learned(photos, supernet, opts.train, opts.steps, [float(r) for r in opts.rates.split(",")])


if __name__ == "__main__":
    main()
