"""Can a per-image cue computed from the LR image tell ``rdsr_adaptive``'s router how clean a photo is?

Usage: python bench/rdsr_router_cue.py --calibrate TRAIN_HR --photos DIR [DIR ...] [--weights FILE]

The knob's budget is ``(10 ** (loss / 10) - 1) * sum(e)`` over an image, ``e`` the router's prediction of
the full path's squared error per 32x32 LR block, so only each image's sum of ``e`` matters. For every
photo (x4, MATLAB bicubic LR, 8-bit), this prints ``r = log(actual / predicted mean e)`` (the full
path's mean squared Y error against the HR photo, 4-pixel border shaved, over the router's mean
prediction on the 32x32 blocks) and cues computed from the LR image alone:

* ``hh``: the mean over 32x32 blocks of the log energy of the finest Haar diagonal band of Y (noise and
  the finest texture), ``hh_q10`` its 10 % quantile over the blocks (the flattest blocks: a noise floor),
  ``hh_lh`` the mean log ratio of the diagonal to the horizontal/vertical bands (how white the finest
  scale is);
* ``xs``: cross-scale, the full path run on the LR image reduced x4 again (1/16 of the full path's MACs),
  the log of its squared error against the LR image over the router's prediction of it (the photo's own
  cleanliness one scale coarser, relative to what the router expects);
* ``e_hat``: the log of the router's mean prediction itself.

Calibration photos (``--calibrate``, never the test photos) span cleanliness: each photo as it is,
reduced x2 first (sharper, cleaner per pixel), blurred (Gaussian, sigma 0.8 HR pixels) and with
Gaussian noise (sigma 3 levels) added before the x4 reduction. A least-squares fit of ``r`` on a constant
and one or two cues is scored by its root mean square error: leave-one-out on the calibration photos,
and on each ``--photos`` folder (the fit from all calibration photos), beside the constant alone.

Measured 2026-12-06 (AMD EPYC, Zen 4, 1 thread, 2 cores loaded by other jobs; the bundled weights; 196
calibration images: the 49 proxy training photos x 4 variants; the 13 2K photos and the 5 proxy
validation photos). ``r`` on the test photos: 2K -2.19 (greentock: e over-predicted 9.2x) to +0.31,
validation -2.29 (RainDrops, 10.2x) to -0.35. Root mean square error of ``r`` (calibration leave-one-out
/ 2K / validation): the constant alone 0.89 / 0.73 / 1.02; one cue: hh 0.89 / 0.70 / 1.11, hh_q10 0.87 /
0.70 / 1.18, hh_lh 0.85 / 0.75 / 0.83, xs 0.89 / 0.71 / 0.89, e_hat 0.90 / 0.72 / 1.06; the best pairs:
hh_lh + xs 0.85 / 0.76 / 0.77, hh + xs 0.89 / 0.69 / 0.98, hh_q10 + hh_lh 0.83 / 0.73 / 1.01. On the
proxy training photos alone (49, no variants; an earlier prototype of these cues, 18 of them and their
triples) the best leave-one-out fit left 0.41 of a spread of 0.49, and 0.70-0.74 on the 2K photos. So
no cue computed from the LR image tells how much cleaner a test photo is than the router expects: on
the 2K photos none lowers the constant's error, 0.73 (a factor of 2.1), by more than 0.04;
the validation photos (5) move with hh_lh and xs, the 2K photos do not. And a cue would buy little:
with the exact sum of ``e`` on every photo the routing spends 0.642 instead of 0.662 of the full path's
MACs in the region mode at a mean loss of 0.03 dB on the 2K photos, 0.775 instead of 0.798 on the
validation photos (``bench/rdsr_adaptive_oracle.py --decompose``: each exit's difference ``d`` costs
more).
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import srlab  # before torch: srlab sets the OpenMP wait policy
import torch
import torch.nn.functional as F

from srlab.data.io import list_images, read_rgb
from srlab.data.resize import imresize
from srlab.metrics.color import rgb_to_y

from rdsr_adaptive_oracle import lr_blocks  # bench/: scripts run as python bench/<name>.py

SCALE = 4
VARIANTS = ("as is", "reduced x2", "blurred", "noise 3")


def variant(hr: torch.Tensor, name: str, seed: int) -> torch.Tensor:
    """An HR photo (1, 3, H, W) made cleaner or noisier (8-bit values)."""
    if name == "reduced x2":
        return imresize(hr, scale=0.5, quantize=True)
    if name == "blurred":
        taps = torch.exp(-torch.arange(-3, 4.0) ** 2 / (2 * 0.8**2))
        taps = taps / taps.sum()
        x = F.pad(hr, (3, 3, 3, 3), mode="replicate").transpose(0, 1)
        x = F.conv2d(F.conv2d(x, taps.view(1, 1, 1, 7)), taps.view(1, 1, 7, 1)).transpose(0, 1)
        return (x * 255).round().clamp(0, 255) / 255
    if name == "noise 3":
        noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(seed))
        return (hr * 255 + 3 * noise).round().clamp(0, 255) / 255
    return hr


def mse_y(sr: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean squared Y error (8-bit levels), output rounded to 8 bits, 4-pixel border shaved."""
    sr = sr.clamp(0, 1).mul(255).round() / 255
    diff = (rgb_to_y(sr) - rgb_to_y(reference))[..., SCALE:-SCALE, SCALE:-SCALE] * 255
    return float(diff.square().mean())


@torch.no_grad()
def photo_row(network, hr: torch.Tensor) -> tuple[float, dict[str, float]]:
    """``r`` and the cues of one HR photo."""
    hr = hr[..., : hr.shape[-2] // SCALE * SCALE, : hr.shape[-1] // SCALE * SCALE]
    lr = imresize(hr, scale=1 / SCALE, quantize=True)
    _, e_hat = network.router.predict(lr_blocks(lr))
    ratio = math.log(mse_y(network(lr), hr) / float(e_hat.mean()))
    y = rgb_to_y(lr_blocks(lr))[:, 0] * 255
    a, b, c, d = y[:, 0::2, 0::2], y[:, 0::2, 1::2], y[:, 1::2, 0::2], y[:, 1::2, 1::2]
    hh = ((a - b - c + d) / 2).square().flatten(1).mean(1).add(1e-2).log()
    lh = (((a + b - c - d) / 2).square() + ((a - b + c - d) / 2).square()).flatten(1).mean(1).div(2).add(1e-2).log()
    coarse_hr = lr[..., : lr.shape[-2] // SCALE * SCALE, : lr.shape[-1] // SCALE * SCALE]
    coarse_lr = imresize(coarse_hr, scale=1 / SCALE, quantize=True)
    _, coarse_e_hat = network.router.predict(lr_blocks(coarse_lr))
    cues = {"hh": float(hh.mean()), "hh_q10": float(hh.quantile(0.1)), "hh_lh": float((hh - lh).mean()),
            "xs": math.log(mse_y(network(coarse_lr), coarse_hr) / float(coarse_e_hat.mean())),
            "e_hat": math.log(float(e_hat.mean()))}
    return ratio, cues


def fit(rows: list[tuple[float, dict[str, float]]], names: tuple[str, ...]) -> torch.Tensor:
    design = torch.tensor([[1.0] + [cues[n] for n in names] for _, cues in rows], dtype=torch.float64)
    target = torch.tensor([r for r, _ in rows], dtype=torch.float64)
    return torch.linalg.lstsq(design, target[:, None]).solution[:, 0]


def rms(rows, names, weights) -> float:
    errors = [float(weights @ torch.tensor([1.0] + [cues[n] for n in names], dtype=torch.float64)) - r
              for r, cues in rows]
    return math.sqrt(sum(e * e for e in errors) / len(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", type=Path, required=True, help="HR calibration photos (never the test sets)")
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="folders of HR test photos")
    parser.add_argument("--weights", help="rdsr_adaptive x4 weights (default: the bundled ones)")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    if opts.weights:
        network = srlab.create_model("rdsr_adaptive", scale=SCALE, checkpoint=opts.weights).eval()
    else:
        network = srlab.create_model("rdsr_adaptive", scale=SCALE, pretrained=True).eval()
    calibration = [photo_row(network, variant(read_rgb(path)[None], name, seed))
                   for seed, path in enumerate(list_images(opts.calibrate)) for name in VARIANTS]
    tests = {}
    for folder in opts.photos:
        tests[folder] = []
        print(f"{folder}: photo, r = log(actual / predicted mean e), cues")
        for path in list_images(folder):
            row = photo_row(network, read_rgb(path)[None])
            tests[folder].append(row)
            print(f"  {path.stem:<14} r {row[0]:+.2f}  " + "  ".join(f"{k} {v:+.2f}" for k, v in row[1].items()))
    spread = torch.tensor([r for r, _ in calibration]).std().item()
    print(f"{len(calibration)} calibration images ({', '.join(VARIANTS)}), spread of r {spread:.2f}; "
          "rms error of r: leave-one-out on them, then each test folder")
    cue_names = list(calibration[0][1])
    for names in [()] + [(n,) for n in cue_names] + list(itertools.combinations(cue_names, 2)):
        left_out = []
        for i in range(len(calibration)):
            weights = fit(calibration[:i] + calibration[i + 1 :], names)
            left_out.append(rms([calibration[i]], names, weights))
        weights = fit(calibration, names)
        loo = math.sqrt(sum(v * v for v in left_out) / len(left_out))
        print(f"  {' + '.join(names) or 'constant':<16} {loo:.2f}  "
              + "  ".join(f"{folder} {rms(rows, names, weights):.2f}" for folder, rows in tests.items()))


if __name__ == "__main__":
    main()
