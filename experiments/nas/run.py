"""Architecture search under rdsr_s's MAC budget: TPE against a random-search baseline, then the best found
architecture against the hand-designed rdsr_s, both trained with the same budget and scored on Set5/Set14 x4.

    nice -n 15 python experiments/nas/run.py                  # the CPU budget of the README
    nice -n 15 python experiments/nas/run.py --trials 40 --proxy_epochs 50 --final_epochs 500   # larger

Steps: (1) training crops of the proxy photos (CROP x CROP centre crops, so that every trial decodes small
images) and validation crops; (2) ``srlab nas`` twice with one budget, the MACs of rdsr_s on a LR_SIZE LR
image: ``--sampler tpe`` and ``--sampler random`` (each its own study and --out); (3) ``srlab train`` of
each search's best.yaml and of rdsr_s with one config; (4) PSNR-Y/SSIM-Y on Set5 and Set14 x4 by
evaluate_folder (srlab eval's MATLAB-exact protocol). Everything is resumable: rerunning skips what exists.
Writes results.json and results.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "bench"))

import srlab  # noqa: E402
from machine import cpu_model  # noqa: E402
from srlab.data.datasets import discover_pairs  # noqa: E402
from srlab.inference.evaluate import evaluate_folder  # noqa: E402
from srlab.models.complexity import count_macs  # noqa: E402

SCALE = 4
LR_SIZE = (64, 64)
CROP = 240
BATCH, PATCH = 8, 96


def crops(source: Path, out: Path, side: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.png")):
        if not (out / path.name).is_file():
            image = Image.open(path).convert("RGB")
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image.crop((left, top, left + side, top + side)).save(out / path.name)
    return out


def srlab_command(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "srlab", *args], check=True)


def search(sampler: str, budget: int, train: Path, val: Path, work: Path, options: argparse.Namespace) -> dict:
    out = work / f"search_{sampler}"
    srlab_command(
        "nas", "--space", "rdsr", "--budget_macs", str(budget), "--scale", str(SCALE), "--trials", str(options.trials),
        "--train_dir", str(train), "--val_dir", str(val), "--out", str(out), "--sampler", sampler,
        "--lr_size", f"{LR_SIZE[0]}x{LR_SIZE[1]}", "--startup_trials", str(options.startup_trials),
        "--epochs", str(options.proxy_epochs), "--patch_size", str(PATCH), "--batch_size", str(BATCH),
        "--threads", "1", "--seed", "0",
    )
    return {"pareto": json.loads((out / "pareto.json").read_text()), "best_yaml": str(out / "best.yaml")}


def final_train(name: str, config: dict, train: Path, val: Path, work: Path, epochs: int) -> Path:
    run = work / f"final_{name}"
    if not (run / "best.safetensors").is_file():
        config_file = work / f"final_{name}.yaml"
        config_file.write_text(yaml.safe_dump(config))
        srlab_command("train", "--config", str(config_file), "--train_dir", str(train), "--val_dir", str(val),
                      "--out", str(run), "--epochs", str(epochs), "--patch_size", str(PATCH),
                      "--batch_size", str(BATCH), "--device", "cpu", "--seed", "0", "--quiet",
                      "--set", f"val_every={epochs}")
    return run / "best.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "photos", help="proxy photos (train/HR, val/HR)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "nas_experiment", help="run directories")
    parser.add_argument("--trials", type=int, default=10, help="complete trials per search")
    parser.add_argument("--startup_trials", type=int, default=4, help="TPE's random trials first")
    parser.add_argument("--proxy_epochs", type=int, default=16, help="proxy training epochs (6 iterations each)")
    parser.add_argument("--final_epochs", type=int, default=100, help="final training epochs (6 iterations each)")
    options = parser.parse_args()

    train = crops(options.photos / "train" / "HR", options.work / "train_crops", CROP)
    val = crops(options.photos / "val" / "HR", options.work / "val_crops", CROP)
    budget = count_macs(srlab.create_model("rdsr_s", scale=SCALE), LR_SIZE)
    searches = {sampler: search(sampler, budget, train, val, options.work, options) for sampler in ("tpe", "random")}

    contenders = {"rdsr_s": ("rdsr_s (hand-designed)", {"scale": SCALE, "model": {"name": "rdsr_s"}})}
    for sampler, found in searches.items():
        contenders[sampler] = (f"best of the {sampler} search", yaml.safe_load(Path(found["best_yaml"]).read_text()))
    models = {"bicubic (reference, untrained)": srlab.create_model("bicubic", scale=SCALE)}
    for name, (label, config) in contenders.items():
        models[label] = srlab.create_model(checkpoint=final_train(name, config, train, val, options.work,
                                                                  options.final_epochs))
    rows = {}
    for label, model in models.items():
        rows[label] = {
            "macs": count_macs(model, LR_SIZE),
            "params": sum(p.numel() for p in model.parameters()),
            "scores": {name: evaluate_folder(model, discover_pairs(SHARED / "benchmarks" / name, SCALE)).scores
                       for name in ("Set5", "Set14")},
        }
    record = {"cpu": cpu_model(), "budget_macs": budget, "lr_size": LR_SIZE, "options": vars(options) | {
        "photos": str(options.photos), "work": str(options.work)}, "searches": searches, "final": rows}
    (HERE / "results.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    (HERE / "results.md").write_text(table(record))
    print(table(record))


def table(record: dict) -> str:
    lines = [f"Budget: {record['budget_macs'] / 1e9:.3f} GMACs on a {record['lr_size'][0]}x{record['lr_size'][1]} "
             f"LR image (rdsr_s's), x{SCALE}. CPU: {record['cpu']}.", "",
             "| search | Pareto front (trial: GMACs, proxy PSNR-Y) | best architecture |", "|---|---|---|"]
    for sampler, found in record["searches"].items():
        front = "; ".join(f"{e['trial']}: {e['macs'] / 1e9:.3f}, {e['psnr_y']:.3f}" for e in found["pareto"])
        best = max(found["pareto"], key=lambda e: e["psnr_y"])
        lines.append(f"| {sampler} | {front} | {' '.join(f'{k}={v}' for k, v in best['config'].items())} |")
    lines += ["", "| model | GMACs | params | Set5 PSNR-Y / SSIM-Y | Set14 PSNR-Y / SSIM-Y |", "|---|---|---|---|---|"]
    for label, row in record["final"].items():
        s5, s14 = row["scores"]["Set5"], row["scores"]["Set14"]
        lines.append(f"| {label} | {row['macs'] / 1e9:.3f} | {row['params']} | {s5['psnr_y']:.3f} / {s5['ssim_y']:.4f} | "
                     f"{s14['psnr_y']:.3f} / {s14['ssim_y']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
