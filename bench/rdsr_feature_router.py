"""Would ``rdsr_adaptive``'s router predict the exits' differences better from the network's own features?

Usage: python bench/rdsr_feature_router.py --calibrate TRAIN_HR --photos DIR [--seeds 0 1] [--steps 4000]
                                           [--flips]
       (TRAIN_HR: the proxy training photos, ``make_wallpaper_photos.sh OUT`` then ``OUT/train/HR``; DIR: the
       2K photos of ``scripts/make_photo_test2k.sh OUT2K``, ``OUT2K/HR``)

The router (:class:`srlab.layers.router.ExitRouter`) sees the LR patch only, and with both of its
predictions exact the region mode would spend under half the MACs at -0.03 dB on the 2K photos, where the
trained router spends ~0.63 (``bench/rdsr_adaptive_oracle.py --decompose``). A block that leaves at exit 1
or deeper runs the network's head and first block anyway, so their features (32 channels at LR resolution)
come free to a router that decides the deeper exits after them: a cascade. This measures what they are
worth before any cascade is built: two routers of the ExitRouter's shape (three stride-2 convolutions of
width 16, mean and max pooled, a linear layer; the same loss as ``calibrate_router``: the log of each route's
mean squared Y difference to the full path fitted by squares, the full path's error by a Poisson loss),
trained on the same targets from the same random start, A on the LR block, B on the LR block and the first
block's output of the whole-image forward (35 channels in). Targets: the whole-image forward of every route
on each calibration photo (x4, MATLAB bicubic LR, 8-bit), squared differences averaged over 32x32 LR blocks at
stride 16; ``--flips``: each photo and three flips of it, each through the network (a flipped feature
map is not the features of the flipped image), at stride 32. Scored on ``--photos``
as the oracle bench scores routers: MACs of the routes and of the region mode's windows at a mean loss of
0.03 dB (64x64 routing blocks, ``routing_cost``), beside the bundled router and both predictions exact.
B's predictions use features on every block, including those a cascade would route to bicubic or exit 0
before any block runs: an upper bound of what the features can add, not a cascade's figure.

Measured 2026-12-07 (AMD EPYC Zen 4, 2 threads; the bundled weights; 25,796 blocks of the 49 training photos;
the 13 2K photos), MACs at -0.03 dB, routes / region-mode windows (router excluded, as the oracle bench counts):

  bundled router (patch targets, flips)        0.529  0.626
  A: LR only, seed 0 / seed 1                  0.566  0.668  /  0.537  0.634
  B: LR + first block's features, seed 0 / 1   0.496  0.586  /  0.483  0.570
  both predictions exact                       0.421  0.498
  --flips (each photo and three flips, stride 32; seed 0): A 0.534  0.630, B 0.463  0.549

(seed 0 twice, the same figures.) On the same targets from the same start the features take 0.064-0.082 off
the windows' MACs, about half of the LR-only router's distance to exact predictions, and 0.04-0.056 off the
bundled router's (which also learnt from flipped patches; with flips, A matches it and B is 0.081 below
it on the windows, 60 % of the way to exact predictions); B's first convolution takes 35 channels instead
of 3, 0.0119 of the full path's MACs per block instead of 0.0038. Not yet a cascade: blocks a cascade sends
to bicubic or exit 0 never run the first block, and its execution would decide the deeper exits after
the first block has run (the shared-feature execution, ``srlab.adaptive.rdsr_shared``, runs depth by depth
already). The cascade built on this: ``srlab.adaptive.rdsr_cascade`` (its figures in the README).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import srlab  # before torch: srlab sets the OpenMP wait policy
import torch
import torch.nn.functional as F
from torch import nn

from rdsr_adaptive_oracle import (  # bench/rdsr_adaptive_oracle.py: scripts run as python bench/<name>.py
    _Route, block_errors, block_predictions, macs_at_loss,
)
from srlab.data.io import list_images, read_rgb
from srlab.data.resize import imresize
from srlab.metrics.color import rgb_to_y
from srlab.models.complexity import count_macs
from srlab.layers.router import ROUTER_EPS

SCALE, BLOCK, STRIDE = 4, 32, 16


def first_block_features(network, lr: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) output of the network's head and first block on the whole LR image."""
    with torch.no_grad():
        return network.blocks[0](F.relu(network.head(lr)))


def calibration_blocks(network, hr: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, 3 + C, 32, 32) LR blocks with the first block's features (bfloat16, to hold all photos) at
    ``stride``, and (P, routes) targets: each route's mean squared Y difference to the full path (8-bit levels,
    outputs rounded to 8 bits), the last column the full path's mean squared error against ``hr``."""
    lr = imresize(hr, scale=1 / SCALE, quantize=True)
    with torch.no_grad():
        ys = [rgb_to_y(network.forward_route(lr, k).clamp(0, 1).mul(255).round() / 255) * 255
              for k in range(network.num_routes)]
    y_hr = rgb_to_y(hr) * 255
    maps = torch.cat([(y - ys[-1]) ** 2 for y in ys[:-1]] + [(ys[-1] - y_hr) ** 2], dim=1)
    targets = F.avg_pool2d(maps, BLOCK * SCALE, stride * SCALE)[0].flatten(1).t()
    x = torch.cat([lr, first_block_features(network, lr)], dim=1)
    blocks = x.unfold(2, BLOCK, stride).unfold(3, BLOCK, stride)[0].permute(1, 2, 0, 3, 4)
    return blocks.reshape(-1, x.shape[1], BLOCK, BLOCK).bfloat16(), targets


def image_blocks(network, lr: torch.Tensor) -> torch.Tensor:
    """(rows * cols, 3 + C, 32, 32): the LR image and its features padded by replication to whole blocks,
    row-major (the oracle bench's block order)."""
    height, width = lr.shape[-2:]
    rows, cols = math.ceil(height / BLOCK), math.ceil(width / BLOCK)
    x = F.pad(torch.cat([lr, first_block_features(network, lr)], dim=1),
              (0, cols * BLOCK - width, 0, rows * BLOCK - height), mode="replicate")
    return x.unfold(2, BLOCK, BLOCK).unfold(3, BLOCK, BLOCK)[0].permute(1, 2, 0, 3, 4).reshape(-1, x.shape[1], BLOCK, BLOCK)


class BlockRouter(nn.Module):
    """ExitRouter's shape on ``channels`` inputs (the first three an LR block, its mean removed): what
    ``ExitRouter(features=channels - 3)`` now is; kept so that the figures above reproduce from the same
    random start."""

    def __init__(self, *, channels: int, routes: int, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, routes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lr = x[:, :3] - x[:, :3].mean(dim=(1, 2, 3), keepdim=True)
        features = self.body(torch.cat([lr, x[:, 3:]], dim=1))
        return self.head(torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(x.float()).double()
        diffs = (out[:, :-1].exp() - ROUTER_EPS).clamp(min=0)
        return torch.cat([diffs, diffs.new_zeros(len(x), 1)], dim=1), out[:, -1].exp()


def router_macs(*, channels: int, routes: int, width: int = 16) -> int:
    """BlockRouter's multiply-adds on one 32x32 block (its three convolutions and the linear layer)."""
    sides = (BLOCK // 2, BLOCK // 4, BLOCK // 8)
    convs = ((channels, width), (width, 2 * width), (2 * width, 2 * width))
    return sum(side * side * c_out * c_in * 9 for side, (c_in, c_out) in zip(sides, convs)) + 4 * width * routes


def train(router: BlockRouter, x: torch.Tensor, targets: torch.Tensor, *, steps: int, seed: int) -> None:
    """``calibrate_router``'s loss, optimiser and schedule, without the flips."""
    generator = torch.Generator().manual_seed(seed)
    log_diffs, errors = (targets[:, :-1] + ROUTER_EPS).log(), targets[:, -1]
    optimizer = torch.optim.Adam(router.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        index = torch.randint(len(x), (256,), generator=generator)
        out = router(x[index].float())
        loss = F.mse_loss(out[:, :-1], log_diffs[index]) + (out[:, -1].exp() - errors[index] * out[:, -1]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    router.eval()


def read_photo(path: Path) -> torch.Tensor:
    hr = read_rgb(path)[None]
    return hr[..., : hr.shape[-2] // SCALE * SCALE, : hr.shape[-1] // SCALE * SCALE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", type=Path, required=True, help="HR photos to train the routers on")
    parser.add_argument("--photos", type=Path, required=True, help="HR photos to score them on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--loss-db", type=float, default=0.03)
    parser.add_argument("--flips", action="store_true",
                        help="calibrate on each photo and three flips of it (blocks at stride 32 instead of 16)")
    opts = parser.parse_args()
    network = srlab.create_model("rdsr_adaptive", scale=SCALE, pretrained=True).eval()
    routes = network.num_routes
    start = time.perf_counter()
    # --flips: each photo flipped left-right, up-down and transposed, each through the network (a flipped
    # feature map is not the features of the flipped image), blocks at stride 32: as many blocks as stride 16
    variants = (lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2))
    pairs = [calibration_blocks(network, variant(read_photo(path)).contiguous(), 2 * STRIDE if opts.flips else STRIDE)
             for path in list_images(opts.calibrate) for variant in (variants if opts.flips else variants[:1])]
    x, targets = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]).float()
    print(f"{len(x)} calibration blocks in {time.perf_counter() - start:.0f} s")
    full_macs = count_macs(_Route(network, routes - 1), (BLOCK, BLOCK))
    shares = torch.tensor([count_macs(_Route(network, k), (BLOCK, BLOCK)) for k in range(routes)],
                          dtype=torch.float64) / full_macs
    photos, lrs, blocks, exact, bundled = [], [], [], [], []
    pixels = (SCALE * BLOCK) ** 2
    for path in list_images(opts.photos):
        hr = read_photo(path)
        errors, diffs, _ = block_errors(network, hr)
        lr = imresize(hr, scale=1 / SCALE, quantize=True)
        photos.append((errors, diffs))
        lrs.append(lr)
        blocks.append(image_blocks(network, lr))
        exact.append((diffs / pixels, errors[:, -1] / pixels))
        bundled.append(block_predictions(network.router, lr))
    print(f"MACs at a mean loss of {opts.loss_db} dB on {len(photos)} photos: routes, region-mode windows")
    print(f"  {'bundled router':<40} {'%.3f  %.3f' % macs_at_loss(photos, bundled, lrs, shares, opts.loss_db)}")
    for seed in opts.seeds:
        for label, channels in (("A: LR only", 3), ("B: LR + first block's features", x.shape[1])):
            torch.manual_seed(seed)
            router = BlockRouter(channels=channels, routes=routes)
            trained = time.perf_counter()
            train(router, x[:, :channels], targets, steps=opts.steps, seed=seed)
            predictions = [router.predict(b[:, :channels]) for b in blocks]
            routed, windows = macs_at_loss(photos, predictions, lrs, shares, opts.loss_db)
            print(f"  {label + f', seed {seed}':<40} {routed:.3f}  {windows:.3f}   (router {router_macs(channels=channels, routes=routes) / full_macs:.4f}"
                  f" of the full path per block; trained in {time.perf_counter() - trained:.0f} s)", flush=True)
    print(f"  {'both predictions exact':<40} {'%.3f  %.3f' % macs_at_loss(photos, exact, lrs, shares, opts.loss_db)}")


if __name__ == "__main__":
    main()
