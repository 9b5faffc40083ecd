"""Colour-space experiment (issue 17, study section 2.4): the same network trained in each colour space
(``data.color_space=rgb|ycbcr|y|lab|learned``) under the same budget, then scored.

For each space: ``srlab train`` (config.yaml + the space) on the proxy photos, then ``srlab eval`` of the
final weights on Set5, Set14 and the proxy validation photos x4, twice: the papers' protocol (PSNR-Y,
SSIM-Y, and the mean CIEDE2000 colour difference over the shaved pixels) and all three channels
(PSNR-RGB). A bicubic row gives the floor. The table goes to OUT/results.md and OUT/results.json. Run from the repository root:

    PYTHONPATH=src nice -n 15 python experiments/color_spaces/run.py              # the CPU budget of README.md
    PYTHONPATH=src python experiments/color_spaces/run.py --epochs 300 --device cuda --out runs/color-gpu

Runs already finished in --out are scored again, not retrained (delete a run's folder to redo it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPACES = ("rgb", "ycbcr", "y", "lab", "learned")
# The test sets: the two benchmarks, and the 5 proxy validation photos (2K, the training photos' domain).
SETS = ("Set5", "Set14", "val")


def _srlab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "srlab", *args], check=True)


def _scores(model_flags: list[str], out: Path, opts: argparse.Namespace) -> dict[str, float]:
    """{"Set5_psnr_y": ..., "Set5_psnr_rgb": ..., "Set5_ciede2000": ..., ...} of one model."""
    folders = [str(Path(opts.benchmarks) / "Set5"), str(Path(opts.benchmarks) / "Set14"), opts.val_dir]
    data = [item for folder in folders for item in ("--data", folder)]
    row: dict[str, float] = {}
    for protocol, metrics in (("y", "psnr,ssim,ciede2000"), ("rgb", "psnr")):
        path = out / f"eval_{protocol}.json"
        _srlab("eval", *model_flags, "--device", opts.device, *data, "--protocol", protocol,
               "--metrics", metrics, "--json", str(path), "--quiet")
        for label, result in zip(SETS, json.loads(path.read_text())["results"], strict=True):
            for key in ("psnr_y", "ssim_y", "ciede2000", "psnr_rgb"):
                if key in result:
                    row[f"{label}_{key}"] = result[key]
    return row


def run_space(space: str, opts: argparse.Namespace) -> dict:
    run_dir = Path(opts.out) / space
    if not (run_dir / "last.safetensors").exists():
        _srlab("train", "--config", str(HERE / "config.yaml"), "--set", f"data.color_space={space}",
               "--train_dir", opts.train_dir, "--val_dir", opts.val_dir, "--epochs", str(opts.epochs),
               "--set", f"val_every={opts.epochs}", "--device", opts.device, "--out", str(run_dir), "--quiet")
    return {"space": space, **_scores(["--checkpoint", str(run_dir / "last.safetensors")], run_dir, opts)}


def run_bicubic(opts: argparse.Namespace) -> dict:
    out = Path(opts.out) / "bicubic"
    out.mkdir(parents=True, exist_ok=True)
    return {"space": "bicubic (no training)", **_scores(["--model", "bicubic", "--scale", "4"], out, opts)}


def table(rows: list[dict]) -> str:
    head = " | ".join(f"{s} PSNR-Y / PSNR-RGB / ΔE00" for s in SETS)
    lines = [f"| space | {head} |", "|---|" + "---:|" * len(SETS)]
    for r in rows:
        cells = " | ".join(f"{r[f'{s}_psnr_y']:.2f} / {r[f'{s}_psnr_rgb']:.2f} / {r[f'{s}_ciede2000']:.3f}"
                           for s in SETS)
        lines.append(f"| {r['space']} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_dir", default="../photos/train/HR")
    parser.add_argument("--val_dir", default="../photos/val/HR")
    parser.add_argument("--benchmarks", default="../shared/benchmarks")
    parser.add_argument("--epochs", type=int, default=6, help="49 iterations each (default 6: 294 iterations)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=SPACES)
    parser.add_argument("--out", default="runs/color_spaces")
    opts = parser.parse_args()
    rows = [run_bicubic(opts)] + [run_space(space, opts) for space in opts.spaces]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = f"CPU time of this invocation's srlab commands: {children.ru_utime + children.ru_stime:.0f} s\n"
    out = Path(opts.out)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "results.md").write_text(table(rows) + "\n" + cpu)
    print(table(rows) + "\n" + cpu)


if __name__ == "__main__":
    main()
