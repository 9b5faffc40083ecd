"""Weakly supervised SR from unpaired data against the same network trained on bicubic pairs.

Usage: python bench/unpaired_demo.py --photos DIR --out RUN_ROOT [--epochs N] [--repeat R] [--seed S]
                                    [--runs bicubic unpaired unpaired_network]
       (DIR holds train/HR and val/HR: e.g. the proxy photos of ../shared/datasets/make_wallpaper_photos.sh)

The target domain's degradation, unknown to both models: Gaussian blur (sigma 1.6 HR pixels), MATLAB-bicubic
x4 downscaling, Gaussian noise (sigma 10/255), 8-bit rounding. The first half of the training photos gives the
unpaired LR images (degraded), the second half the HR images; neither model sees an (LR, HR) pair of the
target degradation. The models (``configs/unpaired_x4.yaml``'s network, same iterations, same seed):

* ``bicubic``: ``step: supervised`` on the HR half with bicubic LR (srlab's default D);
* ``unpaired``: ``step: unpaired`` with the degraded LR half and the HR half (the classical F, the LR
  discriminator on high frequencies: the defaults);
* ``unpaired_network``: the same with the network F and the LR discriminator on the whole image.

All are evaluated on the validation photos degraded the same way (``srlab eval``, Y PSNR / SSIM, shave 4),
beside plain bicubic upscaling of those LR images. Prints one table with the CPU model.

Measured 2026-12-06 (AMD EPYC Zen 4, one thread per run, ``--epochs 6 --repeat 32``: 600 iterations each;
PSNR-Y / SSIM-Y on the 5 validation photos, seed 0 / seed 1): bicubic upscaling 32.11 / 0.8199, trained on
bicubic pairs 31.96 / 31.88 dB, trained unpaired (the classical F, high-pass LR discriminator) 32.46 / 32.29
dB, the network F seen whole 30.08 / 28.50 dB; the classical F learned noise deviations of 0.032-0.043 for the
true 0.039, not the blur (README, "Unpaired").
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import srlab  # noqa: F401  (before torch: srlab sets the thread policy)
import torch
import torch.nn.functional as F

from srlab.cli.main import main as srlab_main
from srlab.data.io import list_images, read_rgb, write_image
from srlab.data.datasets import modcrop
from srlab.data.resize import imresize
from srlab.machine import cpu_model
from srlab.unsupervised.cycle import ClassicalDegrader

SCALE, BLUR_SIGMA, NOISE_SIGMA = 4, 1.6, 10 / 255


def degrade(hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    radius = 6
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-t ** 2 / (2 * BLUR_SIGMA ** 2))
    kernel = (kernel / kernel.sum()).to(hr.dtype)
    blurred = F.pad(hr[None], (radius,) * 4, mode="reflect")
    blurred = F.conv2d(blurred, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)[0]
    lr = imresize(blurred, scale=1 / SCALE)
    return (lr + NOISE_SIGMA * torch.randn(lr.shape, generator=generator, dtype=lr.dtype)).clamp(0, 1)


def build_data(photos: Path, root: Path) -> dict[str, Path]:
    generator = torch.Generator().manual_seed(0)
    train = list_images(photos / "train" / "HR")
    half = len(train) // 2
    folders = {"lr": root / "unpaired_lr", "hr": root / "hr", "val": root / "val"}
    if (root / "done").exists():
        return folders
    shutil.rmtree(root, ignore_errors=True)
    for folder in (folders["lr"], folders["hr"], folders["val"] / "HR", folders["val"] / "LR_bicubic" / f"X{SCALE}"):
        folder.mkdir(parents=True)
    for path in train[:half]:
        write_image(folders["lr"] / f"{path.stem}.png", degrade(modcrop(read_rgb(path), SCALE), generator))
    for path in train[half:]:
        shutil.copy(path, folders["hr"] / path.name)
    for path in list_images(photos / "val" / "HR"):
        hr = modcrop(read_rgb(path), SCALE)
        write_image(folders["val"] / "HR" / f"{path.stem}.png", hr)
        write_image(folders["val"] / "LR_bicubic" / f"X{SCALE}" / f"{path.stem}.png", degrade(hr, generator))
    (root / "done").write_text("")
    return folders


def evaluate(args: list[str], out: Path) -> dict:
    assert srlab_main(["eval", *args, "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--runs", nargs="+", default=["bicubic", "unpaired", "unpaired_network"],
                        choices=["bicubic", "unpaired", "unpaired_network"],
                        help="bicubic: supervised on bicubic pairs; unpaired: configs/unpaired_x4.yaml (the classical F, "
                             "high-pass LR discriminator); unpaired_network: F a network, the discriminator on the image")
    parser.add_argument("--seed", type=int, default=0, help="the runs' seed (their folders get a _seedN suffix)")
    args = parser.parse_args()
    data = build_data(args.photos, args.out / "data")
    common = ["--config", "configs/unpaired_x4.yaml", "--train_dir", str(data["hr"]), "--val_dir", str(data["val"]),
              "--epochs", str(args.epochs), "--set", f"data.repeat={args.repeat}", "--quiet"]
    network_f = ["--set", "unpaired.degrader=network", "--set", "unpaired.lr_discriminator_input=image"]
    runs = {"bicubic": ["--set", "step=supervised"], "unpaired": ["--unpaired_lr_dir", str(data["lr"])],
            "unpaired_network": ["--unpaired_lr_dir", str(data["lr"]), *network_f]}
    runs = {name: [*runs[name], "--set", f"seed={args.seed}"] for name in args.runs}
    run_dirs = {name: args.out / f"{name}_seed{args.seed}" for name in runs}
    for name, extra in runs.items():
        resume = ["--resume"] if (run_dirs[name] / "state.pt").exists() else []
        assert srlab_main(["train", *common, *extra, "--out", str(run_dirs[name]), *resume]) == 0
    rows = {"bicubic upscaling": evaluate(["--model", "bicubic", "--scale", str(SCALE), "--data", str(data["val"])],
                                         args.out / "eval_bicubic_upscaling.json")}
    for name, run_dir in run_dirs.items():
        rows[f"rdsr_s trained {name}"] = evaluate(
            ["--model", "rdsr_s", "--scale", str(SCALE), "--checkpoint", str(run_dir / "last.safetensors"),
             "--data", str(data["val"])], run_dir.with_name(f"eval_{run_dir.name}.json"))
    print(f"CPU: {cpu_model()}; {args.epochs} epochs x {args.repeat} repeats of the HR half, batch 8, patch 64")
    print(f"{'model':32s} {'PSNR-Y':>8s} {'SSIM-Y':>8s}  (validation photos, blur {BLUR_SIGMA} + noise 10/255, x4)")
    for name, result in rows.items():
        score = result["results"][0] if "results" in result else result
        print(f"{name:32s} {score['psnr_y']:8.2f} {score['ssim_y']:8.4f}")
    if "unpaired" in runs:
        print("classical F learned: " + learned_degradation(run_dirs["unpaired"] / "state.pt")
              + f" (the target: blur {BLUR_SIGMA} / {BLUR_SIGMA}, noise {NOISE_SIGMA:.4f} in each channel)")


def learned_degradation(state_file: Path) -> str:
    modules = torch.load(state_file, weights_only=True)["step_modules"]
    prefix = "generators.degrader."
    degrader = ClassicalDegrader(scale=SCALE)
    degrader.load_state_dict({k[len(prefix):]: v for k, v in modules.items() if k.startswith(prefix)})
    blur, noise = degrader.blur_sigmas().tolist(), degrader.noise_sigmas().tolist()
    return f"blur {blur[0]:.2f} / {blur[1]:.2f} HR pixels, noise " + " / ".join(f"{n:.4f}" for n in noise)


if __name__ == "__main__":
    main()
