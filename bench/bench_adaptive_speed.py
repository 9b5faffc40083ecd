"""Content-adaptive inference against the full path of the same weights: PSNR, MACs and wall-clock.

Usage: python bench/bench_adaptive_speed.py --photos DIR [--full] [--threads 1 2] [--repeats N]
                                            [--methods arm arm_learned pcsr rdsr] [--crop N] [--no-timing]

DIR holds HR photographs not used for training, e.g. the five validation photos of the proxy set:
``bash ../shared/datasets/make_wallpaper_photos.sh OUT`` then ``--photos OUT/val/HR``, or the 2K photos of
``bash scripts/make_photo_test2k.sh OUT2K`` (``--photos OUT2K/HR``). Each photo is
reduced x4 (MATLAB bicubic, 8-bit) to its LR input. The default run is short (a centre crop of
``--crop`` LR pixels, 3 repeats, 1 thread); ``--full`` runs whole photos, 5 repeats, 1 and 2 threads.

Methods, x4, released weights (../shared/official-weights):

* ARM-CARN (``arm/arm-carn.pth`` and its lookup table) at several eta, run by
  :func:`srlab.adaptive.adaptive_upscale_regions` (32x32 blocks routed by ARM's official rule, each
  route run on merged rectangles of at most 128 LR pixels with 4 LR pixels of context, no overlap:
  an UPSCALING mode, not the 32/28 evaluation protocol, which costs 1.2-1.4x the whole image's MACs
  and 0.04-0.12 dB at full width by itself; that protocol is run at one eta for comparison). Full
  path: the full-width supernet, (a) on the whole image in one forward and (b) on the same 128-pixel
  regions as the adaptive mode (StaticRoutes through the region mode); the time reference is the
  faster of the two on each photo and thread count, PSNR and MACs are (a)'s.
* ``arm_learned``: the same supernet and region mode routed by srlab's learned router at one rate
  (``--arm-rate``; ``--arm-checkpoint``: a copy of ``arm-carn.pth`` with the router ``srlab arm-router``
  wrote beside it).
* PCSR-CARN (``pcsr/carn-pcsr-phase1_iter_last.pth``) at several k (negative k sends more pixels
  heavy). Full path: the same network with every pixel on the heavy sampler (``routing="heavy"``, no
  classifier), the same whole-image forward. "all light" (every pixel light) is the floor of its MACs.

Every forward gets channels-last input (1.3-1.5x faster CPU convolutions for CARN-M's grouped convs).
For each photo and threads setting the cases run interleaved (full, knob 1, knob 2, ...) in every
repeat after one warm-up; medians. PSNR is on Y, 4-pixel border shaved, outputs rounded to 8 bits.
MACs: ARM, the windows run (margins included) over the full-width supernet on the whole image; PCSR,
``PCSR.macs_spent`` over its all-heavy count.
The summary takes, per method, the cheapest knob whose mean PSNR change over the photos is >= -0.03 dB
and says whether it reaches >= 50 % fewer MACs and >= 1.6x lower wall-clock.

Measured 2026-12-05 (lscpu: "Intel(R) Xeon(R) Processor", AVX-512/AMX, 2 cores, KVM, shared with other
jobs; torch 2.13 CPU), ``--full --repeats 3`` on the five validation photos (LR 159-204 x 255), while
the machine was nearly idle (load < 1.5; ARM at commit 2ad17a5, PCSR at 5a82d93, its model code
unchanged since; a second quiet ARM run agreed within 0.05 in every ratio; a run under load 4-5 gave
similar 1-thread ratios and meaningless 2-thread ones, up to 20x apart between repeats). Summary lines (mean / worst dPSNR):

  ARM-CARN   full width, tiles      +0.0012 / -0.0010 dB  MACs 1.079  1 thr x1.00  2 thr x1.00
             (the whole-image forward is 0.84-0.99x as fast as the 128-pixel tiles: tiles are the reference)
             eta 1                  -0.6223 / -0.8902 dB  MACs 0.323  1 thr x2.15  2 thr x2.19
             eta 1.5                -0.0682 / -0.1976 dB  MACs 0.769  1 thr x1.28  2 thr x1.33
             eta 2                  -0.0055 / -0.0175 dB  MACs 0.965  1 thr x1.09  2 thr x1.12
             eta 4                  +0.0004 / -0.0022 dB  MACs 0.980  1 thr x1.09  2 thr x1.14
             eta 4, 32/28 protocol  -0.0768 / -0.1162 dB  MACs 1.223  1 thr x0.49  2 thr x0.52
  PCSR-CARN  k -0.5                 -0.0296 / -0.0469 dB  MACs 0.902  1 thr x0.93  2 thr x0.91
             k -0.25                -0.0515 / -0.0720 dB  MACs 0.792  1 thr x0.97  2 thr x0.96
             k 0 (official default) -0.0788 / -0.1169 dB  MACs 0.689  1 thr x1.01  2 thr x1.01
             k 0.5                  -0.1396 / -0.2368 dB  MACs 0.586  1 thr x1.08  2 thr x1.06
             all light (the floor)  -0.4812 / -0.7270 dB  MACs 0.467  1 thr x1.38  2 thr x1.34

Targets (<= 0.03 dB loss, >= 50 % fewer MACs, >= 1.6x lower wall-clock at 1 and 2 threads): NOT met by
either method on these photos, and not for lack of engine speed:

* ARM-CARN: the cheapest knob within 0.03 dB is eta 2 (3.5 % fewer MACs, x1.09 / x1.12). The released
  lookup table sends a block to bicubic (0-31 % of these photos' blocks, costing <= 0.002 dB), to the
  36-wide subnet, or to the 52/64-wide ones; at the etas that pick the 36-wide subnet for most blocks
  it costs 0.15-0.89 dB a photo (mean 0.62), and no eta in between saves half the MACs without it. Where
  the MACs are saved (eta 1, 0.32 of the MACs) the time saving is x2.2, not x3.1: the 36-wide subnet
  runs at ~60 % of the full width's MAC rate (CARN-M's grouped 3x3 convs with 9 channels a group, the
  1x1 cascade fusions, pixel shuffles; whole 128x128 image, channels-last, 7 interleaved repeats:
  0.596 s at width 36 vs 1.118 s at 64 for 1/3 of the MACs). The engine itself costs ~nothing here
  (one route, one window: the same time as the static forward, bench_adaptive_overhead.py).
* PCSR-CARN: the MAC target is out of reach by construction: the CARN backbone and the per-pixel
  classifier are spent on every pixel, so even every pixel on the light sampler leaves 0.467 of the
  all-heavy MACs (and loses 0.48 dB). Within 0.03 dB only k -0.5 qualifies (10 % fewer MACs), and it
  is slower than the all-heavy path: where the time goes (Wood, 771k HR pixels, 1 thread, medians of 3):
  all heavy 913 ms = backbone 391 + query vectors 129 + heavy MLP 315 + refinement 36 + bilinear base
  5 + the rest; routed at k 0 (28 % heavy) 831 ms: the classifier MLP (55 ms) and the decision (39 ms)
  and the light MLP (~58 ms) take back most of the 72 % of the heavy MLP saved.

* rdsr_adaptive (srlab's own, the bundled weights: exits distilled from the full path, a trained router;
  ``--methods rdsr --full --repeats 3``; full path = its last exit, whole image or 128-pixel tiles;
  the region mode on 64x64 blocks, ``RdsrExitRouting.region_block``; MACs include the router).
  Knob = the loss each image may take, as the router predicts it. Measured 2026-12-05 on an idle
  machine, 1 / 2 threads. The 13 2K photos of ``scripts/make_photo_test2k.sh`` (LR 285-510 x 510):
  loss 0.01 -0.0067 / -0.0182 dB, MACs 0.816, x1.21 / x1.13; 0.02 -0.0185 / -0.0604, 0.726, x1.34 /
  x1.25; 0.03 -0.0305 / -0.0895, 0.669, x1.42 / x1.33; 0.05 -0.0597, 0.584, x1.61 / x1.49; 0.1 -0.1120,
  0.462, x1.93 / x1.79 (tiles, one route: 1.096 of the MACs, x0.99 / x0.98). The five validation photos:
  loss 0.005 -0.0086 / -0.0224, 0.961, x0.96 / x0.91; 0.01 -0.0202 / -0.0410, 0.875, x1.06 / x1.00; 0.02
  -0.0403, 0.785, x1.16 / x1.09; 0.03 -0.0583, 0.697, x1.29 / x1.22; 0.05 -0.0908, 0.611, x1.46 / x1.36;
  0.1 -0.1621, 0.488, x1.72 / x1.59. Before, on 32x32 blocks (same weights, 1 thread, machine under
  load): 2K loss 0.02 -0.0239 dB at 0.726, 0.03 -0.0405 at 0.666; validation loss 0.01 -0.0222 at
  0.908. The time ratio stays 5-17 % below the MAC ratio (many small windows; more at 2 threads). The quality side
  fails the target: the router over-predicts the full path's error on very clean photos (up to 10x),
  and the region mode's 4-pixel context makes fragmented routings expensive
  (``rdsr_adaptive_oracle.py --regions`` has the decomposition).

  Shared-feature execution (``--rdsr-modes regions shared [shared-b32] [shared-raise]``: EXECUTION
  ``regions`` or ``shared``, ``-bN`` routing blocks of N pixels, ``-raise`` lone shallow blocks raised;
  ``RdsrExitRouting.execution``, :mod:`srlab.adaptive.rdsr_shared`): the network runs depth by depth,
  each block only on the union of the blocks whose exit is that deep or deeper, grown by the exact
  context the later blocks need, on rectangles of at most 128 pixels; each exit's fusion and tail on its
  own blocks, ESA on the whole image. Measured 2026-12-06 (same weights and router; machine loaded by
  other jobs, load 8-11 on the 2 cores: timings noisy, 2-thread timings meaningless), mean / worst dPSNR,
  MACs with the router:
  2K photos (13, ``--no-timing``): loss 0.02 regions -0.0185 / -0.0604 dB at 0.726, shared -0.0192 /
  -0.0637 at 0.667; 0.03 regions -0.0305 / -0.0895 at 0.669, shared -0.0307 / -0.0912 at 0.615: the
  same loss for 8 % fewer MACs (the routes themselves are worth ~0.62 / 0.57 here, oracle table).
  On 32x32 routing blocks (``shared-b32``, 13 photos, ``--no-timing``): loss 0.01 -0.0113 / -0.0552 dB
  at 0.698, 0.02 -0.0242 / -0.0961 at 0.617: at -0.024 dB ~0.027 fewer MACs than on 64x64 blocks (the
  shared mode makes fragmentation cheap, and 32x32 routes are worth less), a worse worst photo; timed on
  the 4 photos above (1 thread, another run): shared-b32 0.02 -0.0217 dB 0.616 x1.33 against regions
  -0.0167 0.725 x1.44: 15 % fewer MACs, 8 % more time (more, smaller rectangles).
  Validation photos (``--full --repeats 3``, 1 thread; times against the fastest static path): loss
  0.01 regions -0.0202 dB 0.875 x1.06, shared -0.0211 0.815 x1.05, shared-b32 -0.0236 0.773 x1.05; 0.02
  regions -0.0403 0.785 x1.17, shared -0.0414 0.733 x1.16, shared-b32 -0.0554 0.691 x1.13; 0.03
  regions -0.0583 0.697 x1.26, shared -0.0594 0.667 x1.18, shared-b32 -0.0788 0.631 x1.20.
  Times on 4 of the 2K photos (aitzgorri, Bridge, friends, Kleiber; ``--full --repeats 3``, 1 thread):
  loss 0.02 regions -0.0167 dB 0.725 x1.38, shared -0.0172 0.669 x1.36; 0.03 regions -0.0348 0.678
  x1.46, shared -0.0337 0.621 x1.43 (2 threads: the static paths themselves 3-6x apart between
  repeats). So the shared execution spends ~8 % fewer MACs for the same loss but no less time: per MAC
  it runs ~10 % slower than the region mode, which keeps each 136-pixel window in cache through the
  whole network, where the shared mode sweeps whole-image feature maps depth by depth (a second pass
  for the channel attention's global gate, window reads, the fusion's concatenation from four maps, ESA
  and the tail over the whole image: with every block on the full exit, 1.63 s against 1.39 s for the
  128-pixel tiles on Bridge, 1 thread, loaded). The region mode stays the default.
  Lone blocks raised (``-raise``; validation photos, ``--no-timing``, with an earlier border padding
  that spent ~0.02 fewer MACs on these small images): shared -0.0166 dB at 0.824 / -0.0394 at 0.734
  against plain shared -0.0211 at 0.792 / -0.0414 at 0.712 (knobs 0.01 / 0.02): at -0.021 dB 0.806
  against 0.792 along the curves; 32x32 blocks -0.0222 at 0.761 against -0.0236 at 0.754 (the same
  curve): no gain, so ``raise_lone`` is off.

What was made faster on the way (both sides of every comparison gain; same outputs unless said):
* the region mode itself (``adaptive_upscale_regions``), instead of the 32/28 protocol's 1.2-1.4x MACs
  and x0.5 time at full width (the protocol row above);
* channels-last input: ARM-CARN 1.26x (width 64) to 1.5x (width 36) faster per forward;
* at T threads the region mode runs T batches of windows side by side, one thread each (2026-12-06,
  AMD EPYC Zen 4, 4 of the 2K photos, bundled rdsr_adaptive, 3 repeats): 2 threads, knob 0.02, 1.50 -> 1.12 s
  for the 4 photos; against the tiles (which gain the same), x1.54 / x1.57 at 1 / 2 threads for knob
  0.02 (-0.0135 dB, MACs 0.641), x1.72 / x1.73 for 0.03 (-0.0310, 0.588): the 2-thread ratio, 5-17 %
  below the 1-thread one before, now equals it; all 13 2K photos, 5 repeats, idle machine: x1.51 / x1.56
  (0.02, -0.0215 dB, 0.661) and x1.64 / x1.70 (0.03, -0.0367, 0.604), against x1.59 / x1.44 and x1.72 /
  x1.55 in the run before the change (1-thread ratios move by ~5 % between runs on this machine);
* 128-pixel tiles with 4 pixels of context for the full path: 1.01-1.19x faster than the whole image;
* PCSR: MLPs on 4096-query blocks (3x faster MLPs; one float32 ulp in a few outputs in 10^5), samplers
  gathering their own rows a block at a time, query features gathered as rows (identical values):
  all heavy 1.86 s -> 0.96 s, k 0 1.25 s -> 0.88 s at 1 thread, 1.28 -> 0.55 s and 0.89 -> 0.51 s at 2
  threads (Wood, old code with NCHW input vs new code with channels-last input, 3 interleaved repeats).
  Before this, PCSR's adaptive path looked 1.5x faster than its all-heavy path mainly because the heavy
  MLP ran 3x slower than it can.

The 13 2K photos, ``--methods arm pcsr --full --no-timing`` (PSNR and MACs only, 2026-12-05, while other
jobs ran): ARM-CARN full width on tiles -0.0008 / -0.0080 dB, MACs 1.096; eta 1 -0.3794 / -1.0275 dB,
0.287; eta 1.5 -0.0578 / -0.2542, 0.717; eta 2 -0.0209 / -0.0891, 0.842; eta 4 -0.0071 / -0.0349, 0.865;
eta 4 on the 32/28 protocol -0.0489 / -0.1168, 1.054: within 0.03 dB eta 2 saves 16 % of the MACs.
PCSR-CARN k -0.5 -0.0263 / -0.0643 dB, 0.883; k -0.25 -0.0409 / -0.1038, 0.762; k 0 -0.0585 / -0.1419,
0.652; k 0.5 -0.0891 / -0.2426, 0.559; all light -0.4355 / -2.1288, 0.467: within 0.03 dB k -0.5 saves 12 %.

The cascade (``--rdsr-modes regions cascade``, :mod:`srlab.adaptive.rdsr_cascade`: the blocks the LR router
sends past exit 0 routed again by a feature router after the first block; the bundled weights since
2026-12-07; AMD EPYC Zen 4, idle machine, ``--full --threads 1 2 --repeats 3 --methods rdsr --rdsr-loss 0.025
0.045 0.05``): region mode knob 0.025 -0.0315 / -0.1253 dB, MACs 0.630, x1.62 / x1.59; cascade 0.025 -0.0149
/ -0.0312, 0.666, x1.43 / x1.38; 0.045 -0.0284 / -0.0694, 0.572, x1.63 / x1.52; 0.05 -0.0332 / -0.0754, 0.552,
x1.67 / x1.57 (earlier runs before the speed-ups, same figures otherwise: 0.045 x1.55 / x1.45, x1.62 / x1.53,
x1.62 / x1.54; then
``cascade_shared`` 0.045 -0.0296 / -0.0718, 0.532, x1.43 / x1.35). The 5 validation photos, ``--no-timing``:
cascade 0.01 -0.0110 dB 0.911, 0.02 -0.0180 0.847, 0.03 -0.0339 0.792 (region mode 0.853 / 0.747 / 0.680 at
-0.0176 / -0.0317 / -0.0413).

Two pixels of context (``RdsrExitRouting.region_margin``, 4 until 2026-12-07, 2 since; ``-mMARGIN`` in
``--rdsr-modes`` sets it for one run), the same bundled weights, same command with ``--rdsr-loss 0.02 0.03 0.045
0.055`` (2026-12-07, session 22, AMD EPYC Zen 4, idle machine): region mode 0.02 -0.0292 / -0.0878 dB, MACs
0.612, x1.67 / x1.58; 0.03 -0.0447 / -0.1516, 0.557, x1.79 / x1.73; cascade 0.03 -0.0199 / -0.0453, 0.602,
x1.53 / x1.37; 0.045 -0.0311 / -0.0799, 0.539, x1.68 / x1.50; 0.055 -0.0403 / -0.0861, 0.506, x1.73 / x1.57.
Again with the output no longer copied at the end (``--rdsr-loss 0.02 0.045 0.055``): region mode 0.02 x1.65 /
x1.59; cascade 0.045 x1.66 / x1.49, 0.055 x1.74 / x1.55; then with the kept blocks' windows run beside the
first block's (``run_window_sets``): region mode 0.02 x1.63 / x1.52 (its code unchanged: the machine drifted),
cascade 0.045 x1.66 / x1.45, 0.055 x1.75 / x1.51; in interleaved A/Bs of that change at 2 threads the cascade
took 5 % less time (13 photos, knob 0.045, medians of 5 pairs: 1.923 -> 1.825 s).
MACs at -0.03 dB (interpolated between knobs, ``--no-timing`` runs): cascade margin 4 0.566, 3 0.554, 2 0.544,
1 loses 0.08 dB at any knob; per-route margins 2 for bicubic to exit 1 and 3-4 deeper 0.556, 4 for bicubic and
exit 0 and 2 deeper 0.549; region mode 4 0.635, 2 0.610. The same comparison on 13 of the training photos
(the network and its routers saw them; chosen here so that the margin is not tuned on the test photos alone):
cascade margin 4 0.632, 2 0.600 at -0.03 dB; at equal knobs margin 2 loses 0.001-0.002 dB more for 0.03-0.04
fewer MACs, in both modes. Validation photos: region mode 0.01 -0.0195 dB 0.796, 0.02 -0.0328 0.699, 0.03
-0.0445 0.633; cascade 0.01 -0.0111 0.871, 0.02 -0.0191 0.804, 0.03 -0.0353 0.749.
Where the cascade's time goes at 2 threads (4 of the photos, knob 0.045, instrumented): the windows' own
computation takes 25 % more thread time than at 1 thread (the routers' 47 % more; the static tiles, larger
batches, not instrumented), the two windows phases keep both threads 89-90 % busy, and the rest (routing, bookkeeping,
until then a copy of the whole output) is 8 % of the time. Over the 13 photos the second thread makes the
cascade x1.58 faster (knob 0.045), the region mode x1.66 (knob 0.02), the static tiles x1.75.

Both routers calibrated with 16,000 steps (bundled since session 23), the cascade's first-block map with 2
pixels of context (``first_block_context``, ``-cCONTEXT``) in rectangles of up to 256 (``first_block_side``,
``-gSIDE``; the route windows 128, ``region_side``, ``-sSIDE``): ``--methods rdsr --rdsr-modes cascade
--rdsr-loss 0.04 0.045``, three runs and one with ``--repeats 5`` (2026-12-07, AMD EPYC Zen 4): cascade 0.04
-0.0274 / -0.0477 dB, MACs 0.518, x1.73 / x1.50, x1.74 / x1.49, x1.77 / x1.63, x1.72 / x1.62; 0.045 -0.0313 /
-0.0487, 0.499, x1.78 / x1.56, x1.77 / x1.53, x1.82 / x1.68, x1.80 / x1.64
(the first run with ``regions`` too: 0.02 -0.0203 / -0.0464, 0.610, x1.64 / x1.54); MACs
at -0.03 dB 0.506 (4,000-step routers in the same configuration 0.531; before the map's changes 0.545);
validation photos (``--no-timing``) cascade 0.02 -0.0178 dB 0.766, 0.03 -0.0287 0.714, 0.04 -0.0409 0.660.
Sums over the 13 photos at two threads from run to run: static whole image 2.99-3.98 s, static tiles
3.00-3.30 s, cascade 1.85-2.08 s; route windows of 256 instead of 128 ran ~10 % slower at two threads in
interleaved pairs. The README's "Routers trained four times longer" has the rest (exact-prediction bounds,
what was tried).

One exchange rate for every image (``--rdsr-rule rdsr_adaptive_rate``, the adaptive method of that name: the
knob is the PSNR in dB an image's full-path MACs are worth; the README's "One exchange rate for every image"):
``--methods rdsr --rdsr-modes cascade --rdsr-rule rdsr_adaptive_rate --rdsr-knob 0.3 0.32``, three runs, the
last with ``--repeats 5`` and rate 0.32 only (2026-12-07, session 24, AMD EPYC Zen 4, idle machine): rate 0.3
-0.0288 / -0.0648 dB, MACs 0.501, x1.84 / x1.63, x1.76 / x1.59; **rate 0.32 -0.0296 / -0.0591 dB, MACs 0.489,
x1.89 / x1.66, x1.78 / x1.65, x1.83 / x1.62**: the targets met on the 2K photos. Validation photos: rate 0.15
-0.0137 dB 0.788 x1.16 / x0.94, 0.2 -0.0310 0.705 x1.23 / x0.98, 0.25 -0.0437 0.645 x1.41 / x1.10.

What remains: cheaper ARM knobs need better routing than the table's (``bench/arm_routing_bounds.py``: the
released supernet routed by the ground truth reaches -0.03 dB at ~0.29 of the MACs on the 2K photos, by exact
differences to the full width ~0.42 before the windows' context, srlab's learned router at ~0.74, the table at eta
2 -0.021 dB for 0.842; ``--methods arm_learned``, the router as a method since session 25, calibrated with 16,000
steps: rate 0.2 -0.0172 dB 0.747, 0.25 -0.0215 0.710, 0.3 -0.0334 0.670, 0.4 -0.0469 0.621, 2K photos,
``--no-timing``, AMD EPYC Zen 4; timed on 4 of them, Bridge, Kleiber, sunset and Wine, ``--threads 1 2 --repeats
3``: rate 0.25 -0.0264 dB 0.615, x1.96 / x1.90 at 1 / 2 threads; all 13 timed: rate 0.2 x1.56 / x1.64, 0.25
x1.60 / x1.69; since session 27, 3 pixels of context and margin-aware routing, the router of width 32 with
contrast: rate 0.35 -0.0295 / -0.0634 dB 0.573, x1.99 / x2.02, all 13 timed; the 5 validation photos, not timed:
rate 0.4 -0.0234 dB 0.724); PCSR's saving is capped by its shared backbone; rdsr_adaptive on the
validation photos (0.71 of the MACs at -0.03 dB at either rule; at rate 0.2 x1.23 at one thread and x0.98 at
two: their LR images are a quarter of the 2K photos' and the cascade's fixed costs weigh more).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from srlab.adaptive import adaptive_upscale, adaptive_upscale_regions, build_adaptive
from srlab.adaptive.reference import StaticRoutes
from srlab.data.io import list_images, read_rgb
from srlab.data.resize import imresize
from srlab.metrics.color import rgb_to_y
from srlab.metrics.psnr import psnr
from srlab.models.complexity import count_macs
from srlab.models.create import create_model
from machine import cpu_model  # bench/machine.py: scripts run as python bench/<name>.py

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "official-weights"
SCALE = 4
LOSS_LIMIT_DB = 0.03
MAC_TARGET = 0.5  # spent / full at most
SPEED_TARGET = 1.6  # full time / adaptive time at least


@dataclass
class Case:
    """One way to upscale: ``run(lr) -> (sr, macs)``, ``macs()`` counting what that run spent (outside the
    timed call)."""

    name: str
    knob: float | None
    run: object
    mac_reference: bool = False  # the full path: PSNR and MACs are compared with its own
    static: bool = False  # a static full path: the fastest of these is the time reference
    psnr: dict[str, float] = field(default_factory=dict)  # per photo
    macs: dict[str, float] = field(default_factory=dict)  # per photo, MACs spent
    times: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # (photo, threads) -> seconds


def channels_last(lr: torch.Tensor) -> torch.Tensor:
    """The whole-image forwards take channels-last input: 1.3-1.5x faster CPU convolutions (see the docstring)."""
    return lr.contiguous(memory_format=torch.channels_last)


def region_cases(label: str, network: torch.nn.Module, method, knobs: list[float]) -> list[Case]:
    """The full path (``network``) on the whole image and on 128-pixel tiles (the region mode, one route),
    and ``method`` in the region mode at each knob."""
    static = StaticRoutes(network)

    def whole(lr):
        return network(channels_last(lr)), lambda: count_macs(network, tuple(lr.shape[-2:]))

    def tiles(lr):  # often the fastest static way: 128-pixel tiles with 4 pixels of context
        sr, stats = adaptive_upscale_regions(static, lr)
        return sr, lambda: stats.macs_spent

    def adaptive(knob):
        def run(lr):
            method.knob = knob
            sr, stats = method.upscale(lr)  # the region mode on the method's blocks; MACs include its router
            return sr, lambda: stats.macs_spent
        return run

    cases = [Case(f"{label}, whole image", None, whole, mac_reference=True, static=True),
             Case(f"{label}, tiles", None, tiles, static=True)]
    return cases + [Case(f"{method.method_name} {method.knob_name} {knob:g}", knob, adaptive(knob)) for knob in knobs]


def arm_cases(knobs: list[float], protocol_knob: float | None) -> list[Case]:
    checkpoint = WEIGHTS / "arm" / "arm-carn.pth"
    supernet = create_model("arm_carn", scale=SCALE, checkpoint=checkpoint).eval()
    method = build_adaptive("arm", supernet, checkpoint=checkpoint, knob=1.0).eval()
    cases = region_cases("ARM-CARN full width", supernet, method, knobs)

    def protocol(lr):
        method.knob = protocol_knob
        sr, stats = adaptive_upscale(method, lr, whole_image=True, batch_size=64)
        return sr, lambda: stats.macs_spent

    if protocol_knob is not None:
        cases.append(Case(f"ARM-CARN eta {protocol_knob:g} 32/28 protocol", protocol_knob, protocol))
    return cases


def arm_learned_cases(rates: list[float], checkpoint: str | None) -> list[Case]:
    """ARM-CARN routed by srlab's learned router (``arm_learned``; its router beside ``checkpoint``, a copy of
    the released weights: ``srlab arm-router --checkpoint COPY --data TRAIN`` writes it there)."""
    checkpoint = Path(checkpoint) if checkpoint else WEIGHTS / "arm" / "arm-carn.pth"
    supernet = create_model("arm_carn", scale=SCALE, checkpoint=checkpoint).eval()
    method = build_adaptive("arm_learned", supernet, checkpoint=checkpoint, knob=0.0).eval()
    return region_cases("ARM-CARN full width", supernet, method, rates)


def pcsr_cases(knobs: list[float]) -> list[Case]:
    checkpoint = WEIGHTS / "pcsr" / "carn-pcsr-phase1_iter_last.pth"
    routed = create_model("pcsr_carn", scale=SCALE, checkpoint=str(checkpoint)).eval()
    heavy, light = copy.deepcopy(routed), copy.deepcopy(routed)
    heavy.routing, light.routing = "heavy", "light"

    def full(lr):
        sr, _ = heavy.upscale_routed(channels_last(lr))
        return sr, lambda: heavy.macs_spent(tuple(lr.shape[-2:]), lr.shape[-2] * lr.shape[-1] * SCALE**2)

    def adaptive(knob):
        def run(lr):
            sr, routing = routed.upscale_routed(channels_last(lr), k=knob)
            return sr, lambda: routed.macs_spent(tuple(lr.shape[-2:]), int(routing.heavy.sum()))
        return run

    def all_light(lr):
        sr, _ = light.upscale_routed(channels_last(lr))
        return sr, lambda: light.macs_spent(tuple(lr.shape[-2:]), 0)

    cases = [Case("PCSR-CARN all heavy", None, full, mac_reference=True, static=True)]
    cases += [Case(f"PCSR-CARN k {knob:g}", knob, adaptive(knob)) for knob in knobs]
    return cases + [Case("PCSR-CARN all light (the floor)", None, all_light)]


def rdsr_mode(spec: str) -> dict[str, object]:
    """``EXECUTION[-bBLOCK][-raise][-fSHARE][-mMARGIN][-cCONTEXT][-sSIDE][-gSIDE]`` (e.g. ``shared-b32-raise``,
    ``cascade-f0.5-m3-c4-s128-g128``) -> RdsrExitRouting attributes."""
    execution, *options = spec.split("-")
    attributes: dict[str, object] = {"execution": execution, "raise_lone": "raise" in options}
    for prefix, name, kind in (("b", "region_block", int), ("f", "first_stage_share", float),
                               ("m", "region_margin", int), ("c", "first_block_context", int),
                               ("s", "region_side", int), ("g", "first_block_side", int)):
        attributes.update({name: kind(o[1:]) for o in options if o.startswith(prefix)})
    return attributes


def rdsr_cases(knobs: list[float], weights: str | None, modes: list[str], rule: str) -> list[Case]:
    """srlab's own ``rdsr_adaptive`` (bundled weights, or ``weights``): early exits routed per block by the
    adaptive method ``rule`` (``rdsr_adaptive``: a loss budget per image, ``rdsr_adaptive_rate``: one
    exchange rate), run in each of ``modes`` (:func:`rdsr_mode`)."""
    if weights:
        network = create_model("rdsr_adaptive", scale=SCALE, checkpoint=weights).eval()
    else:
        network = create_model("rdsr_adaptive", scale=SCALE, pretrained=True).eval()
    method = build_adaptive(rule, network, knob=0.0).eval()
    cases = region_cases("rdsr_adaptive full path", network, method, [])
    defaults = {name: getattr(method, name) for name in ("execution", "raise_lone", "region_block", "first_stage_share",
                                                            "region_margin", "first_block_context", "region_side",
                                                            "first_block_side")}

    def adaptive(knob, attributes):
        def run(lr):
            for name, value in {**defaults, **attributes}.items():
                setattr(method, name, value)
            method.knob = knob
            sr, stats = method.upscale(lr)  # MACs include the router
            return sr, lambda: stats.macs_spent
        return run

    return cases + [Case(f"rdsr_adaptive {mode} {method.knob_name} {knob:g}", knob, adaptive(knob, rdsr_mode(mode)))
                    for mode in modes for knob in knobs]


def load_photo(path: Path, crop: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """HR (1, 3, H, W) cut to a multiple of the scale (and to a centre crop of ``crop`` LR pixels), and its LR."""
    hr = read_rgb(path)[None]
    h, w = (side // SCALE * SCALE for side in hr.shape[-2:])
    if crop is not None:
        ch, cw = min(h, crop * SCALE), min(w, crop * SCALE)
        top, left = (h - ch) // 2 // SCALE * SCALE, (w - cw) // 2 // SCALE * SCALE
        hr = hr[..., top : top + ch, left : left + cw]
    else:
        hr = hr[..., :h, :w]
    return hr, imresize(hr, scale=1 / SCALE, quantize=True)


def psnr_y(sr: torch.Tensor, hr: torch.Tensor) -> float:
    sr = torch.round(sr.clamp(0, 1) * 255) / 255
    return psnr(rgb_to_y(sr.double()), rgb_to_y(hr.double()), crop_border=SCALE).item()


def measure(cases: list[Case], photos: dict[str, tuple[torch.Tensor, torch.Tensor]], threads: list[int],
            repeats: int) -> None:
    for name, (hr, lr) in photos.items():
        with torch.no_grad():
            for case in cases:  # quality and MACs once (also the warm-up, which fills the MAC caches)
                sr, macs = case.run(lr)
                case.psnr[name], case.macs[name] = psnr_y(sr, hr), macs()
            for count in threads:
                torch.set_num_threads(count)
                for case in cases:
                    case.run(lr)  # warm-up at this thread count
                for _ in range(repeats):
                    for case in cases:
                        start = time.perf_counter()
                        case.run(lr)
                        case.times.setdefault((name, count), []).append(time.perf_counter() - start)
        print(f"  measured {name} {tuple(lr.shape[-2:])}", file=sys.stderr, flush=True)


def report(cases: list[Case], photos: list[str], threads: list[int]) -> None:
    reference = next(case for case in cases if case.mac_reference)  # the full path: PSNR and MACs
    statics = [case for case in cases if case.static]

    def fastest(photo: str, count: int) -> float:
        """The fastest full static way on this photo at this thread count (median seconds)."""
        return min(statistics.median(case.times[(photo, count)]) for case in statics)

    print(f"\n{reference.name}: dPSNR and MACs against it; time ratio = the fastest of "
          f"{' / '.join(case.name for case in statics)} over the case (medians)")
    header = f"{'photo':14s} {'case':34s} {'PSNR-Y':>8s} {'dPSNR':>8s} {'MACs':>6s}" + "".join(
        f" {f'x{t}thr':>7s} {f'{t}thr s':>7s}" for t in threads)
    print(header)
    for photo in photos:
        for case in cases:
            cells = [f"{photo:14s} {case.name:34s} {case.psnr[photo]:8.4f}",
                     f"{case.psnr[photo] - reference.psnr[photo]:+8.4f} {case.macs[photo] / reference.macs[photo]:6.3f}"]
            for t in threads:
                own = statistics.median(case.times[(photo, t)])
                cells.append(f"{fastest(photo, t) / own:7.2f} {own:7.3f}")
            print(" ".join(cells))
    print(f"\nover the {len(photos)} photos (dPSNR mean / worst; MACs and times summed over photos):")
    rows = []
    for case in cases:
        if case is reference:
            continue
        deltas = [case.psnr[p] - reference.psnr[p] for p in photos]
        macs = sum(case.macs.values()) / sum(reference.macs.values())
        speed = {t: sum(fastest(p, t) for p in photos) / sum(statistics.median(case.times[(p, t)]) for p in photos)
                 for t in threads}
        rows.append((case, statistics.mean(deltas), min(deltas), macs, speed))
        print(f"  {case.name:34s} dPSNR {statistics.mean(deltas):+.4f} / {min(deltas):+.4f} dB  MACs {macs:.3f}  "
              + "  ".join(f"{t} thr x{speed[t]:.2f}" for t in threads))
    within = [row for row in rows if row[0].knob is not None and row[1] >= -LOSS_LIMIT_DB]
    if not within:
        print(f"  TARGET: no knob within {LOSS_LIMIT_DB} dB of the full path: not met")
        return
    case, mean_delta, _, macs, speed = min(within, key=lambda row: row[3])
    verdict = [f"MACs {1 - macs:.0%} fewer ({'met' if macs <= MAC_TARGET else 'NOT met'}, target >= 50%)"]
    verdict += [f"{t} thread(s) x{speed[t]:.2f} ({'met' if speed[t] >= SPEED_TARGET else 'NOT met'}, target >= 1.6x)"
                for t in threads]
    print(f"  TARGET at the cheapest knob within {LOSS_LIMIT_DB} dB ({case.name}, {mean_delta:+.4f} dB): "
          + "; ".join(verdict))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True, help="folder of HR photos not used for training")
    parser.add_argument("--full", action="store_true", help="whole photos, 5 repeats, 1 and 2 threads")
    parser.add_argument("--crop", type=int, default=128, help="quick mode: centre crop, LR pixels a side")
    parser.add_argument("--threads", type=int, nargs="+")
    parser.add_argument("--no-timing", action="store_true",
                        help="PSNR and MACs only, no times (for a machine that other jobs load)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--methods", nargs="+", choices=["arm", "arm_learned", "pcsr", "rdsr"],
                        default=["arm", "pcsr", "rdsr"])
    parser.add_argument("--rdsr-knob", "--rdsr-loss", dest="rdsr_knob", type=float, nargs="+",
                        default=[0.03, 0.05, 0.1, 0.2], help="rdsr_adaptive's knobs (the --rdsr-rule's: loss or rate)")
    parser.add_argument("--rdsr-rule", choices=["rdsr_adaptive", "rdsr_adaptive_rate"], default="rdsr_adaptive",
                        help="rdsr_adaptive's routing rule: a loss budget per image (knob: dB) or one exchange "
                             "rate (knob: dB per full path's MACs)")
    parser.add_argument("--rdsr-modes", nargs="+", default=["regions", "shared"],
                        help="how rdsr_adaptive runs its routes: "
                             "EXECUTION[-bBLOCK][-raise][-fSHARE][-mMARGIN][-cCONTEXT][-sSIDE][-gSIDE], EXECUTION "
                             "regions, shared, cascade or cascade_shared, BLOCK the routing block (default 64), "
                             "raise: lone shallow blocks raised, SHARE: the cascade's first-stage share of the knob, "
                             "MARGIN: the windows' context in LR pixels (default 2), CONTEXT: the cascade's "
                             "first-block windows' context (default 2), SIDE: the largest side of the cascade's "
                             "route windows after -s (default 128), of its first-block map's windows after -g "
                             "(default 256)")
    parser.add_argument("--rdsr-weights", help="rdsr_adaptive x4 weights with a trained router (default: bundled)")
    parser.add_argument("--arm-eta", type=float, nargs="+", default=[1.0, 1.5, 2.0, 4.0])
    parser.add_argument("--arm-protocol-eta", type=float, default=4.0,
                        help="also run the 32/28 evaluation protocol at this eta (for comparison)")
    parser.add_argument("--arm-rate", type=float, nargs="+", default=[0.2, 0.3, 0.4],
                        help="arm_learned's knobs (dB per full width's MACs)")
    parser.add_argument("--arm-checkpoint", help="ARM-CARN weights with <stem>.router.safetensors beside them "
                                                 "(arm_learned; default: the released weights, which have none)")
    parser.add_argument("--pcsr-k", type=float, nargs="+", default=[-0.5, -0.25, 0.0, 0.5])
    opts = parser.parse_args()
    threads = [] if opts.no_timing else opts.threads or ([1, 2] if opts.full else [1])
    repeats = opts.repeats or (5 if opts.full else 3)
    paths = list_images(opts.photos)
    if not paths:
        sys.exit(f"bench_adaptive_speed: error: no images in {opts.photos} (make them with "
                 "bash ../shared/datasets/make_wallpaper_photos.sh OUT; pass --photos OUT/val/HR)")
    photos = {p.stem: load_photo(p, None if opts.full else opts.crop) for p in paths}
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; threads {threads} (os.cpu_count() = {os.cpu_count()})")
    print(f"photos: {opts.photos} ({len(photos)}; LR sizes "
          + ", ".join(f"{lr.shape[-2]}x{lr.shape[-1]}" for _, lr in photos.values())
          + f"), x{SCALE}, {repeats} interleaved repeats, {'whole photos' if opts.full else f'centre crops {opts.crop} LR'}")
    for method in opts.methods:
        cases = {"arm": lambda: arm_cases(opts.arm_eta, opts.arm_protocol_eta), "pcsr": lambda: pcsr_cases(opts.pcsr_k),
                 "arm_learned": lambda: arm_learned_cases(opts.arm_rate, opts.arm_checkpoint),
                 "rdsr": lambda: rdsr_cases(opts.rdsr_knob, opts.rdsr_weights, opts.rdsr_modes, opts.rdsr_rule)}[method]()
        measure(cases, photos, threads, repeats)
        report(cases, list(photos), threads)


if __name__ == "__main__":
    main()
