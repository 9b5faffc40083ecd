"""Normalisation experiment (issue 17, study section 6.6): the same network trained with each feature-map
normalisation (``--model_arg norm=none|batch|layer|instance``) under the same budget, then scored.

For each network and norm: ``srlab train`` (config.yaml + the model's arguments) on the proxy photos,
``srlab eval`` of the final weights on Set5 and Set14 x4 (PSNR-Y / SSIM-Y, the papers' protocol); the table
(results.md, results.json) adds the validation PSNR-Y of the last epoch on the proxy val photos, the
trainable parameters, how far tiled inference (64 px tiles) lands from whole-image inference (PSNR between the
two outputs of the central 256 x 256 of Set5's HR baby upscaled x4) and MATLAB bicubic as the floor.
Run from the repository root:

    PYTHONPATH=src nice -n 15 python experiments/normalisation/run.py            # the CPU budget of README.md
    PYTHONPATH=src python experiments/normalisation/run.py --epochs 200 --device cuda --out runs/norm-gpu

Runs and scores already in --out are reused (delete a run's folder to redo it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

from torch import nn

from srlab.data.io import read_rgb
from srlab.inference import upscale_tensor
from srlab.models.create import create_model
from srlab.models.registry import build_model, count_parameters

HERE = Path(__file__).resolve().parent
NORMS = ("none", "batch", "layer", "instance")
BENCHMARKS = ["Set5", "Set14"]
# Two small nets of ~0.1-0.2 M parameters: the study's rdsr_s and an EDSR-baseline cut to 32 channels x 4
# blocks (EDSR's residual block, where EDSR removed SRResNet's BatchNorm). Both with their default init.
NETS = {
    "rdsr_s": ("rdsr_s", {}),
    "edsr_c32b4": ("edsr_baseline", {"channels": 32, "num_blocks": 4}),
}


def _srlab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "srlab", *args], check=True)


def _model_args(args: dict) -> list[str]:
    return [item for key, value in args.items() for item in ("--model_arg", f"{key}={value}")]


def _last_val_psnr(run_dir: Path) -> float:
    scores = re.findall(r"val_psnr_y (\S+)", (run_dir / "train.log").read_text())
    return float(scores[-1])


def _benchmark_scores(scores: Path, model_flags: list[str], opts: argparse.Namespace, datasets: list[str]) -> dict:
    """``srlab eval`` on ``datasets`` (names under --benchmarks, or folders), once: kept in ``scores``."""
    if not scores.exists():
        folders = [str(Path(opts.benchmarks) / d) if (Path(opts.benchmarks) / d).is_dir() else d for d in datasets]
        _srlab("eval", *model_flags, "--device", opts.device, *(i for f in folders for i in ("--data", f)),
               "--json", str(scores), "--quiet")
    results = json.loads(scores.read_text())["results"]
    return {f"{name}_{key}": result[key] for name, result in zip(datasets, results) for key in ("psnr_y", "ssim_y")}


def _tiled_vs_whole_db(model: nn.Module, image: Path) -> float | None:
    """PSNR (RGB) between the tiled (64 px tiles, the model's overlap) and the whole-image output of the
    central 256 x 256 of ``image`` upscaled x4: what tiling changes. Whole-image norms refuse tiles; their
    refusal is lifted here to measure why."""
    spec = model.srlab_spec
    model.srlab_spec = dataclasses.replace(spec, info=dataclasses.replace(spec.info, tiling_refusal=""))
    lr = read_rgb(image)
    top, left = (lr.shape[-2] - 256) // 2, (lr.shape[-1] - 256) // 2
    lr = lr[:, top:top + 256, left:left + 256]
    whole, tiled = upscale_tensor(model, lr).clamp(0, 1), upscale_tensor(model, lr, tile=64).clamp(0, 1)
    mse = (whole - tiled).pow(2).mean().item()
    return None if mse == 0 else round(10 * math.log10(1 / mse), 2)  # None: identical


def run_one(label: str, norm: str, opts: argparse.Namespace) -> dict:
    model, args = NETS[label]
    args = {**args, "norm": norm}
    run_dir = Path(opts.out) / f"{label}_{norm}"
    weights = run_dir / "last.safetensors"
    if not weights.exists():
        _srlab("train", "--config", str(HERE / "config.yaml"), "--model", model, *_model_args(args),
               "--train_dir", opts.train_dir, "--val_dir", opts.val_dir, "--epochs", str(opts.epochs),
               "--set", f"val_every={opts.epochs}", "--device", opts.device, "--out", str(run_dir), "--quiet")
    row = {"net": label, "model": model, "norm": norm, "args": args,
           "params": count_parameters(build_model(model, scale=4, args=args), trainable_only=True),
           "val_psnr_y": _last_val_psnr(run_dir)}
    row.update(_benchmark_scores(run_dir / "benchmarks.json", ["--checkpoint", str(weights)], opts, BENCHMARKS))
    trained = create_model(checkpoint=weights)
    row["tiled_vs_whole_db"] = _tiled_vs_whole_db(trained, Path(opts.benchmarks) / "Set5" / "HR" / "baby.png")
    return row


def bicubic_row(opts: argparse.Namespace) -> dict:
    """MATLAB bicubic upscaling on the same images: the floor every trained row should clear."""
    scores = _benchmark_scores(Path(opts.out) / "bicubic.json", ["--model", "bicubic", "--scale", "4"], opts,
                               [opts.val_dir, *BENCHMARKS])
    val = scores.pop(f"{opts.val_dir}_psnr_y"), scores.pop(f"{opts.val_dir}_ssim_y")
    return {"net": "bicubic", "norm": "-", "params": 0, "val_psnr_y": val[0], **scores}


def _db(row: dict) -> str:
    if "tiled_vs_whole_db" not in row:
        return "-"
    return "identical" if row["tiled_vs_whole_db"] is None else f"{row['tiled_vs_whole_db']:.1f}"


def table(rows: list[dict]) -> str:
    lines = ["| net | norm | params | val PSNR-Y | Set5 PSNR-Y / SSIM-Y | Set14 PSNR-Y / SSIM-Y | tiled vs whole, dB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['norm']} | {r['params']:,} | {r['val_psnr_y']:.2f} | "
                     f"{r['Set5_psnr_y']:.2f} / {r['Set5_ssim_y']:.4f} | {r['Set14_psnr_y']:.2f} / "
                     f"{r['Set14_ssim_y']:.4f} | {_db(r)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_dir", default="../photos/train/HR")
    parser.add_argument("--val_dir", default="../photos/val/HR")
    parser.add_argument("--benchmarks", default="../shared/benchmarks")
    parser.add_argument("--epochs", type=int, default=4, help="49 iterations each (default 4: 196 iterations)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--norms", nargs="+", default=list(NORMS), choices=NORMS)
    parser.add_argument("--out", default="runs/normalisation")
    opts = parser.parse_args()
    rows = [bicubic_row(opts), *(run_one(label, norm, opts) for label in opts.nets for norm in opts.norms)]
    out = Path(opts.out)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "results.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
