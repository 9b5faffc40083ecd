"""How much an oracle router could save with ``rdsr_adaptive``'s exits: an upper bound for any router.

Usage: python bench/rdsr_adaptive_oracle.py --photos DIR [--loss-db 0.03] [--weights FILE]
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
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

import srlab
from srlab.adaptive.rdsr import budget_routes
from srlab.data.io import list_images, read_rgb
from srlab.data.resize import imresize
from srlab.metrics.color import rgb_to_y
from srlab.models.complexity import count_macs

SCALE, BLOCK = 4, 32


def block_errors(network, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per 32x32 LR block and exit (blocks, exits): the summed squared Y error against the HR image, and
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
        ys = [rgb_to_y(network.forward_exit(lr, k).clamp(0, 1).mul(255).round() / 255) * 255
              for k in range(network.num_exits)]
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
    opts = parser.parse_args()
    if opts.weights:
        network = srlab.create_model("rdsr_adaptive", scale=SCALE, checkpoint=opts.weights).eval()
    else:
        network = srlab.create_model("rdsr_adaptive", scale=SCALE, pretrained=True).eval()
    exit_macs = [count_macs(_Exit(network, k), (BLOCK, BLOCK)) for k in range(network.num_exits)]
    shares = torch.tensor(exit_macs, dtype=torch.float64) / exit_macs[-1]
    print("exit MAC shares: " + " ".join(f"{s:.3f}" for s in shares.tolist()))
    spent, blocks, photos = 0.0, 0, []
    for path in list_images(opts.photos):
        hr = read_rgb(path)[None]
        hr = hr[..., : hr.shape[-2] // SCALE * SCALE, : hr.shape[-1] // SCALE * SCALE]
        errors, diffs, pixels = block_errors(network, hr)
        photos.append((errors, diffs))
        choice, added = oracle_routes(errors, shares, opts.loss_db)
        full = float(errors[:, -1].sum())
        psnr_full = 10 * math.log10(255**2 * pixels / full)
        psnr = 10 * math.log10(255**2 * pixels / (full + added))
        share = float(shares[choice].mean())
        spent, blocks = spent + float(shares[choice].sum()), blocks + len(choice)
        print(f"{path.stem:<14} full path {psnr_full:.3f} dB, oracle {psnr:.3f} dB at {share:.3f} of the MACs; "
              f"blocks per exit {torch.bincount(choice, minlength=network.num_exits).tolist()}")
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


class _Exit(torch.nn.Module):
    def __init__(self, network, k: int) -> None:
        super().__init__()
        self.network, self.k = network, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.forward_exit(x, self.k)


if __name__ == "__main__":
    main()
