"""How much an oracle router could save with ``rdsr_adaptive``'s exits: an upper bound for any router.

Usage: python bench/rdsr_adaptive_oracle.py --photos DIR [--loss-db 0.03] [--weights FILE] [--regions]
                                            [--decompose]
       (DIR: e.g. the proxy validation photos, or OUT/HR of scripts/make_photo_test2k.sh OUT)

For each HR photo (x4, MATLAB bicubic LR, 8-bit), every exit of the network runs on the whole image;
the squared error of its Y channel (8-bit levels, 4-pixel border shaved) is summed per 32x32 LR block.
Starting from every block on the full path, blocks move to cheaper exits in order of added error per
MAC saved, as long as the image's PSNR stays within ``--loss-db`` of the full path's: the cheapest
routing any router can reach with these exits at that loss (up to the greedy order and to the
region mode's block borders, which this whole-image computation leaves out).

It also runs a difference-exact router: the real router's rule (``srlab.adaptive.rdsr.budget_routes``)
fed with each block's true difference between every exit and the full path and the full path's true
error, at several budgets: what srlab's router reaches where its two predictions are exact. The oracle
above also uses the part of each block's error that no LR-only prediction can know (the ground truth's
detail), so it is the looser bound.

Measured 2026-12-05 (Intel Xeon), 0.03 dB, blocks of all photos:

* bundled weights before distillation (two runs of L1 + exit_l1 towards the HR patch): oracle 0.536
  of the MACs on the five proxy validation photos, 0.437 on the 13 photos of
  ``scripts/make_photo_test2k.sh``;
* the bundled weights (one run of the distillation recipe, ``configs/rdsr_adaptive_x4.yaml``): oracle
  0.479 (validation photos) / 0.315 (2K photos); the difference-exact router at a mean loss of 0.028 /
  0.030 dB: 0.547 / 0.406 of the MACs. So with these exits the router's rule with exact predictions
  saves 59 % of the MACs within 0.03 dB on the 2K photos and 45 % on the (much cleaner) validation
  photos; the trained router's predictions get less (``bench/bench_adaptive_speed.py``).

With ``--regions``: the trained router's own routing at knobs 0.01-0.05, on 32x32 and on 64x64 blocks
(the mean of four 32x32 predictions), its loss from the per-block errors, the MACs of the routes taken
and the MACs of the windows the region mode runs for that routing (merged regions with 4 pixels of
context; counted from their areas, not run). Measured 2026-12-05, bundled weights, 2K photos (loss mean
/ worst, MACs per block, region mode):

  knob   32x32 blocks                         64x64 blocks
  0.01   0.0112 / 0.0553 dB  0.615  0.826     0.0064 / 0.0180 dB  0.698  0.818
  0.02   0.0247 / 0.1028 dB  0.535  0.725     0.0177 / 0.0584 dB  0.618  0.726
  0.03   0.0399 / 0.1499 dB  0.485  0.666     0.0282 / 0.1000 dB  0.566  0.668
  0.05   0.0725 / 0.2961 dB  0.420  0.577     0.0566 / 0.2288 dB  0.494  0.583

and on the five validation photos:

  0.01   0.0238 / 0.0474 dB  0.684  0.895     0.0140 / 0.0247 dB  0.771  0.883
  0.02   0.0565 / 0.0994 dB  0.597  0.804     0.0328 / 0.0575 dB  0.676  0.784
  0.03   0.0781 / 0.1322 dB  0.541  0.730     0.0571 / 0.1184 dB  0.610  0.713
  0.05   0.1125 / 0.1834 dB  0.462  0.619     0.0844 / 0.1533 dB  0.534  0.614

So where the router's routing changes exit from one 32x32 block to the next, the region mode's
context costs 37 % more MACs than the routes themselves (18 % on 64x64 blocks), more than the router's
prediction error costs (exact predictions: 0.479 at 0.03 dB, the table above), and 64x64 blocks lose
less at the same region-mode MACs (their four predictions average out part of the router's error).
The region mode routes 64x64 blocks for this reason (``RdsrExitRouting.region_block``). Margins
measured in the region mode itself (32x32 blocks, knob 0.02, 2K photos): 0 pixels -0.163 dB at 0.536,
2 pixels -0.032 dB at 0.627, 4 pixels -0.024 dB at 0.726, 8 pixels -0.023 dB at 0.944 (and at knob 0,
every block on the full path: 0 pixels already loses 0.052 dB at region borders, 4 pixels 0.0003).
On 64x64 blocks (the region mode itself, router excluded from the MACs): margin 2 knob 0.02 -0.0242 dB
at 0.669, knob 0.03 -0.0379 at 0.614; margin 3 0.02 -0.0197 at 0.695, 0.03 -0.0323 at 0.639; margin 4
0.02 -0.0185 at 0.722, 0.03 -0.0305 at 0.665: at -0.03 dB margins 2-3 would spend ~0.645 instead of
0.665 (kept at 4, the region mode's default for every method).
Staged execution, measured 2026-12-06 with a prototype (not in srlab; 13 2K photos, the bundled weights,
router MACs included, loss against the full path's whole-image output): the head and each block run once
over the whole image's feature map, block j only on the merged rectangles of blocks whose exit is j or
deeper, then each exit's fusion on its own blocks, ESA on the whole fused map and each exit's tail.
(a) Each block window with 3 pixels of context, where a neighbour stopped earlier its last features
standing in: 64x64 blocks, knob 0.03: -0.0648 dB at 0.600 (region mode -0.0321 at 0.664); the stand-ins
cost more than the MACs they save. (b) Each block window with 4 pixels of context computed and kept
(zero padding at the window's edge, as the region mode): the same loss as the region mode at 8 % fewer
MACs (64x64 blocks: knob 0.02 -0.0190 dB at 0.665, 0.03 -0.0321 at 0.610; 2 pixels: -0.0199 at 0.643,
-0.0331 at 0.589; 32x32 blocks, 2 pixels: -0.0288 at 0.589, -0.0448 at 0.537), but 1.6x slower than the
region mode on the same photos (1 thread, 6 of the photos, interleaved medians: the full path 5.2 s, region mode
2.5 s, staged 4.1 s: whole-image feature maps copied at every stage, whole-image ESA, windows of every
shape run one at a time, default memory order). So the region mode stays.
Since then in srlab as ``RdsrExitRouting.execution = "shared"`` (:mod:`srlab.adaptive.rdsr_shared`, 2026-12-06):
each depth on its union grown by the exact context the later blocks need (3 pixels a block still to run),
read from the previous depth's map, so every value is the whole-image forward's (no stand-ins, no
zero padding inside the image), the attention pooled over each depth's union, rectangles of at most
128 pixels in channels-last order, each exit's fusion and tail on its own blocks. 64x64 blocks, 2K
photos: knob 0.02 -0.0192 dB at 0.667, 0.03 -0.0307 at 0.615 (region mode -0.0185 at 0.726, -0.0305
at 0.669): 8 % fewer MACs at the same loss, about the region mode's time (x1.36 against x1.38 over the
full path at 1 thread, 4 photos; bench_adaptive_speed.py has the figures).
Router variants calibrated on the same photos (block-level MACs at a mean loss of 0.03 dB, validation /
2K photos; the bundled router 0.648 / 0.517): the same router calibrated again from three other
random starts 0.729 / 0.576, 0.667 / 0.515, 0.681 / 0.524; 12,000 steps 0.613 / 0.516; width 32 0.658 /
0.506; its first convolution at stride 1 (4x its MACs) 0.626 / 0.482: the random start moves it as
much as the variants do. Ensembles (measured 2026-12-06, 2K photos, four routers from four random starts
calibrated on the same targets, their log-predictions averaged; MACs at a mean loss of 0.03 dB, routes /
region mode): 64x64 blocks, the bundled router 0.560 / 0.662, single routers 0.555 / 0.658 and 0.574 / 0.675,
two averaged 0.552 / 0.650, four 0.548 / 0.646 (32x32 blocks: 0.517 / 0.705 bundled, 0.514 / 0.695 four):
averaging out the random start gains 1-2 % of the MACs for 2-4x the router's, not the gap to the
difference-exact router's 0.41.

With ``--decompose``: which prediction costs the MACs. Per photo, the router's predicted over the actual
sum of the full path's error e and of each exit's difference d; then the MACs at a mean loss of
``--loss-db`` (64x64 routing blocks, interpolated along a knob sweep; routes / the region mode's windows)
with the trained router's predictions, with e exact, with e exact and d scaled per photo and exit to its
exact sum, with both exact; the same with one price for all photos instead of each photo's budget
(``argmin_k d + price * mean(e) * MACs_k``: equal marginal dB per MAC across photos, what a mean loss
asks for); and the knob chosen per photo with hindsight (the most any per-photo cue could give).
Measured 2026-12-06 (AMD EPYC, Zen 4, 1 thread; bundled weights), 0.03 dB:

                                          2K photos        validation photos
  trained router                          0.560  0.662     0.690  0.798
  e exact                                 0.546  0.642     0.670  0.775
  e exact, d scaled per photo and exit    0.519  0.608     0.642  0.746
  d and e exact                           0.478  0.562     0.621  0.718
  trained router, one price               0.541  0.638     0.697  0.802
  e exact, one price                      0.530  0.621     0.680  0.773
  d and e exact, one price                0.455  0.535     0.606  0.696
  knob chosen per photo (hindsight)       0.502  0.585     0.633  0.704

Predicted / actual sum of e per photo: 2K 0.75-9.16 (greentock 9.16, friends 3.57, Wine 3.25, Kleiber
2.48, the other nine 0.75-1.32), validation 1.47-10.20; of d (exits 0-3): 2K 0.47-2.49, mostly 1-2,
validation 0.53-5.68. So the full path's error e, the prediction that is off by 9-10x on the cleanest
photos, costs 0.020 / 0.023 of the MACs (region mode), and the exits' differences d cost 0.080 / 0.057:
a per-photo scale of d (0.034 / 0.029) and the per-block errors of d (0.046 / 0.028). A cue of how clean
a photo is could at most correct e and the per-photo budget (hindsight: 0.585 / 0.704); none computed
from the LR image predicts it (``bench/rdsr_router_cue.py``). Even with both predictions exact the
region mode spends 0.562 (0.535 with one price) on the 2K photos, above the 0.5 target: the rest is the
region mode's context and the exits themselves (the routes alone: 0.478 / 0.455).
A router calibrated on more varied photos does not predict d better (prototype, not in srlab: the router
trained as ``calibrate_router`` trains it on 32x32 blocks at stride 32 of the 49 training photos as they
are, reduced x2 first and blurred, region mode MACs at 0.03 dB on 64x64 blocks: 2K 0.670, validation
0.828, against 0.669 / 0.846 for the same training on the photos as they are only; the bundled router
0.663 / 0.798 under that prototype's block counting), nor one that fits d with a Poisson loss (its
mean) instead of a squared error of its log (the same prototype, photos as they are: 0.708 / 0.805).
The router of ``router_contrast=True`` (``srlab rdsr-router --router-contrast``, the bundled network,
the 49 training photos; ``--weights``), measured 2026-12-06 the same way, 0.03 dB, 2K / validation:
trained router 0.552 0.653 / 0.651 0.758, e exact 0.534 0.628 / 0.671 0.781, one price 0.530 0.624 /
0.646 0.754, knob per photo in hindsight 0.505 0.587 / 0.624 0.698; predicted / actual sum of e on the
2K photos 0.64-5.40 (greentock 5.40 instead of 9.16), validation 1.29-8.90 (1.47-10.20).
The weights bundled since 2026-12-06 (a second distillation stage, ``configs/rdsr_adaptive_x4_distill.yaml``,
and bicubic upscaling as route 0, ``bicubic_route``), measured the same way, 0.03 dB, 2K / validation:
trained router 0.529 0.626 / 0.651 0.760, e exact 0.500 0.588 / 0.611 0.717, d and e exact 0.421 0.498 /
0.548 0.635; the second stage alone (its own router, no bicubic route): trained router 0.561 0.659 /
0.660 0.765, d and e exact 0.445 0.526 / 0.563 0.649.
Two more 30-epoch stages from the bundled network, measured 2026-12-06 (AMD EPYC Zen 4, one thread each, not
bundled; d and e exact with the bicubic route, region-mode windows at 0.03 dB, 2K / validation; the full
path's mean PSNR; bundled: 0.498 / 0.635):
* the distillation config again (a third stage): 0.479 / 0.623, full path 36.5418 / 39.3997 dB; with its own
  router (``srlab rdsr-router --bicubic_route``) ``bench_adaptive_speed.py --no-timing`` at -0.03 dB ~0.612 of
  the MACs on the 2K photos (bundled 0.629) but ~0.78 on the validation photos (0.760): within the spread of
  the router's random start, so not bundled;
* the distillation as the mean over exits and patches of log(squared difference to the full output +
  1e-6) (weight 0.02, a prototype loss, not in srlab), which pulls an exit hardest where it nearly
  matches, the patches a router would stop there: 0.469 / 0.613, but the full path 36.5203 / 39.3711 dB,
  0.02-0.03 dB below the third stage's: closer exits to a worse full path, no better at equal PSNR.
The region mode's geometry, the bundled weights and router, measured 2026-12-06 (session 16) in the region
mode itself (a ``/tmp`` script: ``adaptive_upscale_regions`` with the method's routes, 13 2K photos, mean
dPSNR against the whole-image full path, MACs of the windows run and the router; AMD EPYC Zen 4, 1 thread):
routing blocks of 64 (regions of 128) -0.0215 / -0.0367 / -0.0575 dB at 0.656 / 0.599 / 0.554 of the MACs
(knobs 0.02 / 0.03 / 0.04), of 96 (regions 192) -0.0204 / -0.0332 / -0.0486 at 0.690 / 0.634 / 0.584, of 128
(regions 256) -0.0142 / -0.0337 / -0.0394 at 0.718 / 0.660 / 0.610: at -0.03 dB 0.624 / 0.648 / 0.671, so 64
stays. Larger regions for the same 64-pixel blocks change nothing (regions of 256: 0.653 / 0.594 against 0.656
/ 0.599, the same losses): routes change too often for the 128-pixel cap to bind. A margin of 3 instead of 4
moves along the same curve (knob 0.025: -0.0335 dB at 0.601 against -0.0315 at 0.625).
The router's calibration targets, measured 2026-12-07 (AMD EPYC Zen 4, 1 thread; ``--decompose``, region-mode
windows at -0.03 dB, 2K / validation photos): ``calibrate_router`` runs every route on each 32x32 LR patch alone
(zero padding at its border, the attention pooled over the patch), while the region mode computes nearly the
whole image's values; a prototype (a ``/tmp`` script, not in srlab) trained the same router, same loss and
steps, on the whole image's per-block values instead (every route on each whole training photo, squared
differences averaged over 32x32 blocks at stride 16: the same 23,649 patches). Seeds 0 / 1: whole-image targets
0.625 / 0.735 and 0.602 / 0.745; patch targets (``srlab rdsr-router``) the bundled router (seed 0) 0.626 / 0.760
and seed 1 0.598 / 0.751. The targets change nothing beyond the random start's spread (0.028 on the 2K photos
between two seeds of the same calibration), so ``calibrate_router`` keeps the patch targets.
On photos the router was calibrated on (``--decompose``, 2026-12-07, AMD EPYC Zen 4, 1 thread, bundled weights,
0.03 dB, routes / region-mode windows): 6 of the 49 training photos (every eighth by name) trained router
0.505 / 0.595, d and e exact 0.485 / 0.572; 5 others (every tenth from the sixth) 0.730 / 0.843 against
0.580 / 0.683, and a router calibrated without those 5 (``srlab rdsr-router`` on the other 44) 0.734 / 0.850
there: the router misses as much on photos it was calibrated on as on photos it never saw (the validation and
2K photos above): a matter of the photos' content, not of memorising the calibration photos.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import srlab  # before torch: srlab sets the OpenMP wait policy
import torch
import torch.nn.functional as F

from srlab.adaptive.rdsr import budget_routes
from srlab.adaptive.regions import merge_blocks
from srlab.data.io import list_images, read_rgb
from srlab.data.resize import imresize
from srlab.metrics.color import rgb_to_y
from srlab.models.complexity import count_macs

SCALE, BLOCK = 4, 32


def block_errors(network, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per 32x32 LR block and route (blocks, routes: the exits, after bicubic upscaling where the network
    has that route): the summed squared Y error against the HR image, and
    the summed squared Y difference to the full path's output (8-bit levels); and the scored pixels."""
    lr = imresize(hr, scale=1 / SCALE, quantize=True)
    side = BLOCK * SCALE
    h, w = hr.shape[-2:]
    rows, cols = math.ceil(h / side), math.ceil(w / side)

    def per_block(squared: torch.Tensor) -> torch.Tensor:
        squared = squared.clone()
        squared[..., :SCALE, :] = squared[..., -SCALE:, :] = 0
        squared[..., :, :SCALE] = squared[..., :, -SCALE:] = 0
        squared = F.pad(squared, (0, cols * side - w, 0, rows * side - h))
        return squared.reshape(rows, side, cols, side).sum(dim=(1, 3)).flatten()

    with torch.no_grad():
        ys = [rgb_to_y(network.forward_route(lr, k).clamp(0, 1).mul(255).round() / 255) * 255
              for k in range(network.num_routes)]
    y_hr = rgb_to_y(hr) * 255
    errors = torch.stack([per_block((y - y_hr) ** 2) for y in ys], dim=1).double()
    diffs = torch.stack([per_block((y - ys[-1]) ** 2) for y in ys], dim=1).double()
    return errors, diffs, (h - 2 * SCALE) * (w - 2 * SCALE)


def oracle_routes(errors: torch.Tensor, shares: torch.Tensor, loss_db: float) -> tuple[torch.Tensor, float]:
    """Greedy: cheapest exits first by added error per MAC saved, within the image's error budget."""
    last = errors.shape[1] - 1
    budget = float(errors[:, last].sum()) * (10 ** (loss_db / 10) - 1)
    choice = torch.full((errors.shape[0],), last)
    moves = sorted(
        (max(float(errors[b, k] - errors[b, last]), 0.0) / float(1 - shares[k]), b, k)
        for b in range(errors.shape[0]) for k in range(last)
    )
    added = 0.0
    for _, b, k in moves:
        current = int(choice[b])
        extra = float(errors[b, k] - errors[b, current])
        if k < current and added + extra <= budget:
            added, choice[b] = added + extra, k
    return choice, added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--loss-db", type=float, default=0.03)
    parser.add_argument("--weights", help="rdsr_adaptive x4 weights (default: the bundled ones)")
    parser.add_argument("--regions", action="store_true",
                        help="also: the trained router's routing and what the region mode spends on it")
    parser.add_argument("--decompose", action="store_true",
                        help="also: the MACs with the router's predictions of e and d replaced by the exact ones")
    opts = parser.parse_args()
    if opts.weights:
        network = srlab.create_model("rdsr_adaptive", scale=SCALE, checkpoint=opts.weights).eval()
    else:
        network = srlab.create_model("rdsr_adaptive", scale=SCALE, pretrained=True).eval()
    exit_macs = [count_macs(_Route(network, k), (BLOCK, BLOCK)) for k in range(network.num_routes)]
    shares = torch.tensor(exit_macs, dtype=torch.float64) / exit_macs[-1]
    print("route MAC shares: " + " ".join(f"{s:.3f}" for s in shares.tolist()))
    spent, blocks, photos = 0.0, 0, []
    lrs, names = [], []
    for path in list_images(opts.photos):
        hr = read_rgb(path)[None]
        hr = hr[..., : hr.shape[-2] // SCALE * SCALE, : hr.shape[-1] // SCALE * SCALE]
        errors, diffs, pixels = block_errors(network, hr)
        photos.append((errors, diffs))
        lrs.append(imresize(hr, scale=1 / SCALE, quantize=True))
        names.append(path.stem)
        choice, added = oracle_routes(errors, shares, opts.loss_db)
        full = float(errors[:, -1].sum())
        psnr_full = 10 * math.log10(255**2 * pixels / full)
        psnr = 10 * math.log10(255**2 * pixels / (full + added))
        share = float(shares[choice].mean())
        spent, blocks = spent + float(shares[choice].sum()), blocks + len(choice)
        print(f"{path.stem:<14} full path {psnr_full:.3f} dB, oracle {psnr:.3f} dB at {share:.3f} of the MACs; "
              f"blocks per route {torch.bincount(choice, minlength=network.num_routes).tolist()}")
    print(f"oracle, all {blocks} blocks: {spent / blocks:.3f} of the MACs within {opts.loss_db} dB")
    print("difference-exact router (each exit's difference to the full path and the full path's error known;"
          " budget_routes at each budget): budget, MACs, mean / worst loss over the photos")
    for budget in (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1):
        spent, losses = 0.0, []
        for errors, diffs in photos:
            routes = budget_routes(diffs, errors[:, -1], shares, budget)
            full = float(errors[:, -1].sum())
            losses.append(10 * math.log10(float(errors.gather(1, routes[:, None]).sum()) / full))
            spent += float(shares[routes].sum())
        print(f"  {budget:5.2f} dB  MACs {spent / blocks:.3f}  loss {sum(losses) / len(losses):.4f} / {max(losses):.4f} dB")
    if opts.regions:
        region_costs(network, photos, lrs, shares)
    if opts.decompose:
        decompose(network, photos, lrs, names, shares, opts.loss_db)


def lr_blocks(lr: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) -> (n, 3, 32, 32): the image padded by replication to whole blocks, row-major."""
    height, width = lr.shape[-2:]
    rows, cols = math.ceil(height / BLOCK), math.ceil(width / BLOCK)
    padded = F.pad(lr, (0, cols * BLOCK - width, 0, rows * BLOCK - height), mode="replicate")
    patches = padded.unfold(2, BLOCK, BLOCK).unfold(3, BLOCK, BLOCK)[0].permute(1, 2, 0, 3, 4)
    return patches.reshape(-1, 3, BLOCK, BLOCK).contiguous()


def block_predictions(router, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The router's predictions per 32x32 LR block (:func:`lr_blocks`): (blocks, exits) squared differences
    and (blocks,) full-path errors (per pixel)."""
    with torch.no_grad():
        return router.predict(lr_blocks(lr))


def routing_cost(errors, diffs, full, lr, shares: torch.Tensor, knob: float, group: int, margin: int = 4,
                 region: int = 128, price: bool = False) -> tuple[float, float, float, int]:
    """``budget_routes`` on routing blocks of ``group`` x ``group`` 32x32 blocks fed with ``diffs`` (blocks,
    exits) and ``full`` (blocks,) (predicted or exact; per block, summed over each routing block): the
    image's loss in dB from its per-block ``errors``, the MACs of the routes (area-weighted shares), the
    MACs of the region mode's windows (merged blocks of one route, at most ``region`` pixels a side, with
    ``margin`` pixels of context; counted from their areas, not run) and the image's LR area. ``price``:
    instead of a budget, every routing block takes ``argmin_k diffs + knob * mean(full) * blocks * shares[k]``
    (one price for all images, scaled by the image's mean ``full``: equal marginal loss in dB per MAC
    saved across images, which is what a mean loss over images asks for)."""
    height, width = lr.shape[-2:]
    rows, cols = math.ceil(height / BLOCK), math.ceil(width / BLOCK)
    group_cols = math.ceil(cols / group)
    owner = (torch.arange(rows)[:, None] // group * group_cols + torch.arange(cols) // group).flatten()
    groups = math.ceil(rows / group) * group_cols
    grouped = torch.zeros(groups, diffs.shape[1], dtype=torch.float64).index_add_(0, owner, diffs.double())
    grouped_full = torch.zeros(groups, dtype=torch.float64).index_add_(0, owner, full.double())
    if price:
        counts = torch.bincount(owner, minlength=groups).double()
        steps = knob * float(full.double().mean()) * counts[:, None] * shares
        routes = (len(shares) - 1 - torch.argmin((grouped + steps).flip(1), dim=1))[owner]
    else:
        routes = budget_routes(grouped, grouped_full, shares, knob)[owner]
    loss = 10 * math.log10(float(errors.gather(1, routes[:, None]).sum() / errors[:, -1].sum()))
    block_h = (height - torch.arange(rows) * BLOCK).clamp(max=BLOCK)
    block_w = (width - torch.arange(cols) * BLOCK).clamp(max=BLOCK)
    routed = float((shares[routes] * (block_h[:, None] * block_w).flatten()).sum())
    windows = 0.0
    for part in merge_blocks(routes.view(rows, cols), region // BLOCK):
        top, bottom = part.row0 * BLOCK, min(part.row1 * BLOCK, height)
        left, right = part.col0 * BLOCK, min(part.col1 * BLOCK, width)
        windows += float(shares[part.route]) * (
            (min(bottom + margin, height) - max(top - margin, 0)) * (min(right + margin, width) - max(left - margin, 0)))
    return loss, routed, windows, height * width


def region_costs(network, photos, lrs, shares: torch.Tensor) -> None:
    """The trained router's routing at each knob, on 32x32 blocks and on 64x64 blocks (the mean of their
    four 32x32 predictions, as the region mode runs it): the loss (from the per-block errors, so without
    the region borders' own effect), the MACs of the routes taken per block, and what the region mode
    spends on that routing (:func:`routing_cost`)."""
    print("trained router, region mode (margin 4, regions <= 128): knob, routing block, loss mean / "
          "worst, MACs of the routes per block, MACs of the region mode's windows (router excluded)")
    predictions = [block_predictions(network.router, lr) for lr in lrs]
    for knob in (0.01, 0.02, 0.03, 0.05):
        for group in (1, 2):
            losses, routed, windows, area = [], 0.0, 0.0, 0
            for (errors, _), lr, (diffs, full) in zip(photos, lrs, predictions):
                loss, routes_macs, window_macs, pixels = routing_cost(errors, diffs, full, lr, shares, knob, group)
                losses.append(loss)
                routed, windows, area = routed + routes_macs, windows + window_macs, area + pixels
            print(f"  {knob:5.2f} dB  {BLOCK * group}x{BLOCK * group}  loss {sum(losses) / len(losses):.4f} / "
                  f"{max(losses):.4f} dB  MACs per block {routed / area:.3f}  region mode {windows / area:.3f}")


DECOMPOSE_KNOBS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)


def decompose(network, photos, lrs, names, shares: torch.Tensor, loss_db: float) -> None:
    """Which of the router's two predictions costs the MACs: per photo, its predicted over the actual sum
    of the full path's error (e) and of each exit's difference to the full path (d); then the MACs at a
    mean loss of ``loss_db`` (interpolated along a knob sweep; 64x64 routing blocks, as the region mode)
    with each prediction replaced by the exact one, and with the best knob chosen per photo."""
    pixels = (SCALE * BLOCK) ** 2  # HR pixels per block: the exact sums as per-pixel means, as predicted
    predictions = [block_predictions(network.router, lr) for lr in lrs]
    print("per photo: full path PSNR, predicted / actual sum of e, and of d for exits 0 ..", len(shares) - 2)
    for name, (errors, diffs), (d_hat, e_hat) in zip(names, photos, predictions):
        e_ratio = float(e_hat.sum()) * pixels / float(errors[:, -1].sum())
        d_ratio = d_hat[:, :-1].sum(dim=0) * pixels / diffs[:, :-1].sum(dim=0)
        print(f"  {name:<14} e {e_ratio:5.2f}  d " + " ".join(f"{float(r):5.2f}" for r in d_ratio))
    variants = {"trained router": [], "e exact": [], "e exact, d scaled per photo and exit": [], "d and e exact": []}
    for (errors, diffs), (d_hat, e_hat) in zip(photos, predictions):
        e_true, d_true = errors[:, -1] / pixels, diffs / pixels
        d_scaled = d_hat * torch.cat((d_true[:, :-1].sum(dim=0) / d_hat[:, :-1].sum(dim=0), torch.ones(1)))
        variants["trained router"].append((d_hat, e_hat))
        variants["e exact"].append((d_hat, e_true))
        variants["e exact, d scaled per photo and exit"].append((d_scaled, e_true))
        variants["d and e exact"].append((d_true, e_true))
    print(f"MACs at a mean loss of {loss_db} dB over the photos (64x64 routing blocks): routes, region mode windows")
    for label, inputs in variants.items():
        routes, windows = macs_at_loss(photos, inputs, lrs, shares, loss_db)
        print(f"  {label:<38} {routes:.3f}  {windows:.3f}")
    for label in ("trained router", "e exact", "d and e exact"):
        points = []
        for knob in torch.linspace(-9, 1, 41).exp().tolist():
            costs = [routing_cost(errors, d, e, lr, shares, knob, 2, price=True)
                     for (errors, _), (d, e), lr in zip(photos, variants[label], lrs)]
            area = sum(c[3] for c in costs)
            points.append((sum(c[0] for c in costs) / len(costs), sum(c[1] for c in costs) / area,
                           sum(c[2] for c in costs) / area))
        routes, windows = _at_loss(points, loss_db)
        print(f"  {label + ', one price':<38} {routes:.3f}  {windows:.3f}")
    # The trained router's predictions with the knob chosen per photo (Lagrangian over a knob grid): the
    # most any per-photo correction of the budget (a cue of how clean the photo is) could save.
    table = [[routing_cost(errors, d, e, lr, shares, knob, 2) for knob in DECOMPOSE_KNOBS]
             + [(0.0, float(lr.shape[-2] * lr.shape[-1]), float(lr.shape[-2] * lr.shape[-1]), lr.shape[-2] * lr.shape[-1])]
             for (errors, _), (d, e), lr in zip(photos, predictions, lrs)]  # the last: knob 0, the full path
    area, count = sum(row[0][3] for row in table), len(table)
    for column, label in ((1, "routes"), (2, "region mode windows")):
        best = None
        for price in torch.logspace(-3, 4, 281).tolist():
            chosen = [min(row, key=lambda c: c[column] / area + price * c[0] / count) for row in table]
            loss = sum(c[0] for c in chosen) / count
            macs = sum(c[column] for c in chosen) / area
            if loss <= loss_db and (best is None or macs < best[1]):
                best = (loss, macs)
        print(f"  knob chosen per photo (oracle), {label}: {best[1]:.3f} at {best[0]:.4f} dB")


def macs_at_loss(photos, predictions, lrs, shares: torch.Tensor, loss_db: float) -> tuple[float, float]:
    """(routes, windows) MACs at a mean loss of ``loss_db`` over the photos with these per-block
    ``predictions`` ((d, e) per photo), interpolated along the knob sweep; 64x64 routing blocks."""
    points = []
    for knob in DECOMPOSE_KNOBS:
        costs = [routing_cost(errors, d, e, lr, shares, knob, 2) for (errors, _), (d, e), lr in zip(photos, predictions, lrs)]
        area = sum(c[3] for c in costs)
        points.append((sum(c[0] for c in costs) / len(costs), sum(c[1] for c in costs) / area,
                       sum(c[2] for c in costs) / area))
    return _at_loss(points, loss_db)


def _at_loss(points: list[tuple[float, float, float]], loss_db: float) -> tuple[float, float]:
    """(routes, windows) MACs at mean loss ``loss_db``, linear between the two sweep points around it."""
    points = sorted(points)
    for low, high in zip(points, points[1:]):
        if low[0] <= loss_db <= high[0]:
            t = (loss_db - low[0]) / max(high[0] - low[0], 1e-12)
            return low[1] + t * (high[1] - low[1]), low[2] + t * (high[2] - low[2])
    return math.nan, math.nan


class _Route(torch.nn.Module):
    def __init__(self, network, k: int) -> None:
        super().__init__()
        self.network, self.k = network, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.forward_route(x, self.k)


if __name__ == "__main__":
    main()
