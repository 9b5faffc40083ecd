"""Normalisation experiment (issue 17, study section 6.6): the same network trained with each feature-map
normalisation (``--model_arg norm=none|batch|layer|instance``) under the same budget, then scored.

For each network and norm: ``srlab train`` (config.yaml + the model's arguments) on the proxy photos,
``srlab eval`` of the final weights on Set5 and Set14 x4 (PSNR-Y / SSIM-Y, the papers' protocol); the table
(results.md, results.json) adds the validation PSNR-Y of the last epoch on the proxy val photos and the
trainable parameters. Run from the repository root:

    PYTHONPATH=src nice -n 15 python experiments/normalisation/run.py            # the CPU budget of README.md
    PYTHONPATH=src python experiments/normalisation/run.py --epochs 200 --device cuda --out runs/norm-gpu

Runs already finished in --out are scored again, not retrained (delete a run's folder to redo it).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from srlab.models.registry import build_model, count_parameters

HERE = Path(__file__).resolve().parent
NORMS = ("none", "batch", "layer", "instance")
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


def run_one(label: str, norm: str, opts: argparse.Namespace) -> dict:
    model, args = NETS[label]
    args = {**args, "norm": norm}
    run_dir = Path(opts.out) / f"{label}_{norm}"
    if not (run_dir / "last.safetensors").exists():
        _srlab("train", "--config", str(HERE / "config.yaml"), "--model", model, *_model_args(args),
               "--train_dir", opts.train_dir, "--val_dir", opts.val_dir, "--epochs", str(opts.epochs),
               "--set", f"val_every={opts.epochs}", "--device", opts.device, "--out", str(run_dir), "--quiet")
    scores = run_dir / "benchmarks.json"
    _srlab("eval", "--checkpoint", str(run_dir / "last.safetensors"), "--device", opts.device,
           *(item for name in ("Set5", "Set14") for item in ("--data", str(Path(opts.benchmarks) / name))),
           "--json", str(scores), "--quiet")
    row = {"net": label, "model": model, "norm": norm, "args": args,
           "params": count_parameters(build_model(model, scale=4, args=args), trainable_only=True),
           "val_psnr_y": _last_val_psnr(run_dir)}
    for result in json.loads(scores.read_text())["results"]:
        row[f"{result['dataset']}_psnr_y"], row[f"{result['dataset']}_ssim_y"] = result["psnr_y"], result["ssim_y"]
    return row


def table(rows: list[dict]) -> str:
    lines = ["| net | norm | params | val PSNR-Y | Set5 PSNR-Y / SSIM-Y | Set14 PSNR-Y / SSIM-Y |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['norm']} | {r['params']:,} | {r['val_psnr_y']:.2f} | "
                     f"{r['Set5_psnr_y']:.2f} / {r['Set5_ssim_y']:.4f} | {r['Set14_psnr_y']:.2f} / {r['Set14_ssim_y']:.4f} |")
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
    rows = [run_one(label, norm, opts) for label in opts.nets for norm in opts.norms]
    out = Path(opts.out)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "results.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
