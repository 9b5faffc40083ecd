"""Does an image-category head help SR? rdsr_s x4 trained with ``step: multitask`` at several
``multitask.weight`` values (0: plain SR, the head only a probe on detached features) and seeds, on the
labelled set of ``make_dataset.py``; then every run's last weights scored per category.

    nice -n 15 python experiments/multitask/run.py [--data DIR] [--out DIR] [--weights 0 0.01 0.1]
        [--seeds 0 1 2] [--epochs 25] [--jobs 2] [--set KEY=VALUE ...]

(from the repository root, with ``PYTHONPATH=src`` in a checkout). Builds the data set into ``--data``
when it is absent; a finished run is not trained again. ``--jobs`` runs that many trainings at once, each
on one thread (torch.set_num_threads(1)). Writes ``results.md`` and ``results.json`` into
``--out`` and beside this file, and prints the table. ``--set`` overrides ``multitask_x4.yaml`` as ``srlab train
--set`` does (e.g. ``--set data.patch_size=96 --set device=cuda`` with more ``--epochs`` for a GPU).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from srlab.data.datasets import discover_pairs
from srlab.inference.evaluate import evaluate_folder
from srlab.models.create import create_model
from srlab.report.training_curves import parse_line
from srlab.train.config import TrainConfig, apply_overrides, load_yaml, parse_set
from srlab.train.trainer import train

HERE = Path(__file__).resolve().parent


def run_one(data: Path, out: Path, weight: float, seed: int, epochs: int, changes: list[str]) -> Path:
    run_dir = out / f"w{weight:g}_seed{seed}"
    state = run_dir / "state.pt"
    if state.exists() and torch.load(state, weights_only=True)["epoch"] >= epochs:
        return run_dir
    config = TrainConfig()
    apply_overrides(config, load_yaml(HERE / "multitask_x4.yaml"))
    apply_overrides(config, parse_set(changes))
    apply_overrides(config, {"data": {"train_dir": str(data / "train"), "val_dir": str(data / "val")},
                             "multitask": {"weight": weight}, "seed": seed, "epochs": epochs, "out": str(run_dir)})
    train(config, resume=state.exists(), progress=False)
    return run_dir


def scores(run_dir: Path, data: Path) -> dict:
    """PSNR-Y / SSIM-Y of the last weights per validation category and over all images; the log's accuracy."""
    result = category_scores(create_model(checkpoint=run_dir / "last.safetensors"), data)
    lines = [parse_line(line) for line in (run_dir / "train.log").read_text().splitlines()]
    result["acc"] = [record for record in lines if record is not None][-1].accuracy
    return result


def category_scores(model: torch.nn.Module, data: Path) -> dict:
    """PSNR-Y / SSIM-Y per validation category and over all validation images."""
    result, images = {}, []
    for folder in sorted(p for p in (data / "val").iterdir() if p.is_dir()):
        category = evaluate_folder(model, discover_pairs(folder, 4))
        result[folder.name] = {"psnr_y": category.scores["psnr_y"], "ssim_y": category.scores["ssim_y"]}
        images += category.images
    result["all"] = {key: statistics.fmean(i.scores[key] for i in images) for key in ("psnr_y", "ssim_y")}
    return result


def train_and_score(job: tuple[Path, Path, float, int, int, list[str]]) -> tuple[str, dict]:
    data, out, weight, seed, epochs, changes = job
    torch.set_num_threads(1)
    started = resource.getrusage(resource.RUSAGE_SELF)
    run_dir = run_one(data, out, weight, seed, epochs, changes)
    result = scores(run_dir, data)
    ended = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of training and scoring (0 for a run trained earlier and only scored now: see its log)
    result["cpu_s"] = ended.ru_utime + ended.ru_stime - started.ru_utime - started.ru_stime
    return run_dir.name, result


def table(results: dict[str, dict], weights: list[float], seeds: list[int], bicubic: dict) -> str:
    """Mean over the seeds (and half the seeds' spread: (max - min) / 2) per weight; bicubic's row first."""
    categories = [key for key in bicubic if key != "all"]
    head = ["weight"] + [f"{c} PSNR-Y / SSIM-Y" for c in categories] + ["all PSNR-Y / SSIM-Y", "accuracy"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            "| bicubic | " + " | ".join(f"{bicubic[c]['psnr_y']:.3f} / {bicubic[c]['ssim_y']:.4f}"
                                        for c in categories + ["all"]) + " | - |"]
    for weight in weights:
        runs = [results[f"w{weight:g}_seed{seed}"] for seed in seeds]

        def cell(key):
            psnr = [r[key]["psnr_y"] for r in runs]
            ssim = statistics.fmean(r[key]["ssim_y"] for r in runs)
            return f"{statistics.fmean(psnr):.3f} (±{(max(psnr) - min(psnr)) / 2:.3f}) / {ssim:.4f}"

        accuracy = [r["acc"] for r in runs]
        rows.append(f"| {weight:g} | " + " | ".join(cell(c) for c in categories + ["all"])
                    + f" | {statistics.fmean(accuracy):.3f} ({', '.join(f'{a:.3f}' for a in accuracy)}) |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/multitask/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/multitask"))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.01, 0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="override multitask_x4.yaml, as srlab train --set")
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        subprocess.run([sys.executable, str(HERE / "make_dataset.py"), str(args.data)], check=True)
    jobs = [(args.data, args.out, weight, seed, args.epochs, args.changes)
            for seed in args.seeds for weight in args.weights]
    results = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for name, result in pool.imap(train_and_score, jobs):
            results[name] = result
            print(name, json.dumps(result), flush=True)
    bicubic = category_scores(create_model("bicubic", scale=4), args.data)
    text = table(results, args.weights, args.seeds, bicubic)
    cpu = sum(r["cpu_s"] for r in results.values())
    text += (f"\n\nCPU time of this invocation (training the runs it had to train, scoring all {len(results)}): "
             f"{cpu / 60:.1f} min.\n")
    record = json.dumps({"weights": args.weights, "seeds": args.seeds, "runs": results, "bicubic": bicubic}, indent=1)
    for folder in (args.out, HERE):  # the experiment's folder keeps the latest table (experiments/plot_results.py)
        (folder / "results.json").write_text(record + "\n")
        (folder / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
