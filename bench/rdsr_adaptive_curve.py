"""The quality/compute curve of rdsr_adaptive under the ClassSR/ARM patch protocol, against rdsr_s.

Usage: python bench/rdsr_adaptive_curve.py --weights runs/rdsr_adaptive_x4/last.safetensors \
           [--calibrate data/wallpaper/train [--crop 0] [--stride 16] [--steps 16000] \
            --save runs/rdsr_adaptive_x4/calibrated.safetensors] \
           [--benchmarks ../shared/benchmarks] [--sets Set5 Set14] [--knobs 0.5 0.1 0.03 0] [--threads 1]

1. With ``--calibrate DIR [DIR ...]`` (HR images; LR made by srlab's MATLAB-exact bicubic degradation),
   trains the router (:func:`srlab.adaptive.rdsr.calibrate_router`) on those images' 32x32 LR patches
   at ``--stride`` (never on the test sets) and, with ``--save``, writes the weights with it. Otherwise
   the weights must hold a trained router. ``--crop N`` takes one random (seeded) N x N LR crop per
   image instead of the whole image.
2. For each benchmark set (x``scale``: LR_bicubic/X<s>/<name>x<s>.png beside HR/<name>.png): PSNR/SSIM (Y,
   paper protocol) of the patch-wise output (32x32 LR patches, stride 28, on the region the grid
   covers) of the bundled rdsr_s, of rdsr_adaptive's full path, of every exit on every patch, and of
   the router at each knob, with the MAC fraction spent (MACs of the routes taken / every patch on
   the full path) and the engine's wall time (all images, ``--threads`` threads, best of 3; MACs are
   counted once per patch size and kept, so the best time is the engine's and the network's alone).
3. The wall time of a batch of 128 patches on each exit against its MAC fraction: whether MACs saved
   are time saved on this CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import srlab
from srlab.adaptive import adaptive_upscale
from srlab.adaptive.rdsr import RdsrExitRouting, calibrate_router, rdsr_adaptive
from srlab.adaptive.reference import StaticRoutes
from srlab.data.io import read_rgb
from srlab.data.resize import bicubic_downscale
from srlab.metrics import PAPER_PROTOCOL
from srlab.models.weights import save_weights
from machine import cpu_model  # bench/machine.py: scripts run as python bench/<name>.py


class _Static(StaticRoutes):
    """rdsr_s on every patch, its MACs counted once (as RdsrExitRouting does), so the times compare."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self._macs: dict[tuple[int, int], int] = {}

    def route_macs(self, index: int, patch_hw: tuple[int, int]) -> int:
        if tuple(patch_hw) not in self._macs:
            self._macs[tuple(patch_hw)] = super().route_macs(index, patch_hw)
        return self._macs[tuple(patch_hw)]


class _Fixed(RdsrExitRouting):
    """Every patch on one route (the route's own curve point)."""

    def __init__(self, network, route: int) -> None:
        super().__init__(network, knob=0.0)
        self.fixed_route = route

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.full((len(patches),), self.fixed_route, dtype=torch.long)


def benchmark_pairs(root: Path, name: str, scale: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    pairs = []
    for hr_path in sorted((root / name / "HR").glob("*.png")):
        lr = read_rgb(root / name / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png")
        hr = read_rgb(hr_path)[:, : lr.shape[1] * scale, : lr.shape[2] * scale]
        pairs.append((hr_path.stem, lr, hr))
    return pairs


def calibration_pairs(folders: list[Path], scale: int, crop: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(LR, HR) pairs of the images under ``folders``; with ``crop`` > 0 one random (seeded) crop of
    ``crop`` x ``crop`` LR pixels per image, so that many photos fit the time."""
    g = torch.Generator().manual_seed(0)
    pairs = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
            hr = read_rgb(path)
            side = crop * scale
            if crop and min(hr.shape[1:]) >= side:
                top = int(torch.randint(0, (hr.shape[1] - side) // scale + 1, (1,), generator=g)) * scale
                left = int(torch.randint(0, (hr.shape[2] - side) // scale + 1, (1,), generator=g)) * scale
                hr = hr[:, top:top + side, left:left + side]
            hr = hr[:, : hr.shape[1] // scale * scale, : hr.shape[2] // scale * scale]
            pairs.append((bicubic_downscale(hr, scale, quantize=True), hr))
    return pairs


def run_set(method, pairs, scale: int) -> tuple[float, float, float, float, list[int]]:
    """(mean PSNR-Y, mean SSIM-Y, MAC fraction, seconds, route histogram) of ``method`` on the set."""
    psnrs, ssims, spent, full, counts = [], [], 0, 0, [0] * method.num_routes
    seconds = float("inf")
    for attempt in range(3):
        start = time.perf_counter()
        outputs = [adaptive_upscale(method, lr[None]) for _, lr, _ in pairs]
        seconds = min(seconds, time.perf_counter() - start)
    for (_, _, hr), (sr, stats) in zip(pairs, outputs):
        h, w = stats.out_hw
        scores = PAPER_PROTOCOL.score(sr[0], hr[:, :h, :w], scale)
        psnrs.append(scores["psnr_y"])
        ssims.append(scores["ssim_y"])
        spent, full = spent + stats.macs_spent, full + stats.macs_full
        counts = [a + b for a, b in zip(counts, stats.route_counts)]
    return sum(psnrs) / len(psnrs), sum(ssims) / len(ssims), spent / full, seconds, counts


def exit_times(network, batch: int = 128, repeats: int = 5) -> list[tuple[float, float]]:
    method = rdsr_adaptive(network, knob=0.0)
    patches = torch.rand(batch, 3, 32, 32)
    fractions = method.mac_fractions((32, 32))
    times = []
    with torch.no_grad():
        for k in range(network.num_routes):
            network.forward_route(patches, k)  # warm-up
            best = min(_seconds(lambda: network.forward_route(patches, k)) for _ in range(repeats))
            times.append((float(fractions[k]), best))
    return times


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--calibrate", type=Path, nargs="+", help="folders of HR images (not the test sets)")
    parser.add_argument("--crop", type=int, default=0,
                        help="calibrate on one random crop of this many LR pixels a side per image (0: whole images)")
    parser.add_argument("--stride", type=int, default=16, help="calibration patches' stride (LR pixels)")
    parser.add_argument("--steps", type=int, default=16000, help="router training steps")
    parser.add_argument("--save", type=Path)
    parser.add_argument("--benchmarks", type=Path, default=Path("../shared/benchmarks"))
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--knobs", type=float, nargs="+", default=list(RdsrExitRouting.knob_sweep))
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    network = srlab.create_model(checkpoint=opts.weights).eval()
    scale = network.scale
    if opts.calibrate:
        pairs = calibration_pairs(opts.calibrate, scale, opts.crop)
        start = time.perf_counter()
        loss = calibrate_router(network, pairs, stride=opts.stride, steps=opts.steps)
        print(f"router trained on {len(pairs)} images of {', '.join(map(str, opts.calibrate))} (crop {opts.crop}, "
              f"stride {opts.stride}, {opts.steps} steps, last loss {loss:.3f}) in {time.perf_counter() - start:.0f} s")
        if opts.save:
            save_weights(opts.save, network)
    print(f"{cpu_model()}, {opts.threads} thread(s); x{scale}; weights {opts.weights}")
    print("route  MAC fraction  seconds per 128 patches  time fraction")
    times = exit_times(network)
    for k, (fraction, seconds) in enumerate(times):
        print(f"{k:4d}  {fraction:12.3f}  {seconds:23.3f}  {seconds / times[-1][1]:13.3f}")
    reference = _Static(srlab.create_model("rdsr_s", scale=scale, pretrained=True).eval())
    for name in opts.sets:
        pairs = benchmark_pairs(opts.benchmarks, name, scale)
        rows = [("rdsr_s (bundled)", reference)]
        names = rdsr_adaptive(network, knob=0.0).route_names()
        rows += [(names[k] + (" (full path)" if k == network.num_routes - 1 else ""), _Fixed(network, k))
                 for k in range(network.num_routes)]
        rows += [(f"router loss {knob:g} dB", rdsr_adaptive(network, knob=knob)) for knob in opts.knobs]
        print(f"\n{name} x{scale} ({len(pairs)} images), patch-wise 32/28:")
        print(f"{'':22s} {'PSNR-Y':>8s} {'SSIM-Y':>7s} {'MACs':>6s} {'time s':>7s}  patches per exit")
        for label, method in rows:
            psnr, ssim, macs, seconds, counts = run_set(method, pairs, scale)
            print(f"{label:22s} {psnr:8.4f} {ssim:7.4f} {macs:6.1%} {seconds:7.2f}  {counts}")


if __name__ == "__main__":
    main()
