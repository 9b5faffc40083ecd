"""Network fusion (study 6.4): IMDN + RLFN + BSRN with their official x4 weights, a fusion layer trained
on the proxy photos, scored on Set5/Set14 x4 against each single model and its x8 self-ensemble.

    python experiments/fusion/run.py                       # train conv1x1, softmax, conv3x3; evaluate; time
    python experiments/fusion/run.py --ensemble_sets Set5 --rounds 1 --no-time_ensembles  # the busy-CPU run
    python experiments/fusion/run.py --kinds conv1x1,softmax,conv3x3 --set epochs=100 --set data.patch_size=192

Steps: (1) 5 centre crops (192x192) of the proxy validation photos, so that validating three networks each
epoch stays cheap; (2) `srlab train --config fusion_x4.yaml` per fusion kind (frozen members; a run that
already has best.safetensors is reused); (3) every member's output on each Set5/Set14 image, plain and x8
self-ensembled (srlab.inference.upscale_tensor), scored with srlab eval's MATLAB-exact protocol; the fusions
are scored by applying their fusion layer to those cached member outputs, which is what the fusion's own
forward computes (`srlab eval --checkpoint RUN/best.safetensors` gives the same scores); (4) params, MACs
(srlab's counter, LR 320x180 = 720p output) and the CPU time per Set5 image (1 thread; see measure_cost).
Member outputs are cached under WORK/outputs (a rerun that adds a fusion kind computes none again).
Writes results.json and results.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "bench"))

import srlab  # noqa: E402
from machine import cpu_model, median_ms  # noqa: E402
from srlab.data.datasets import discover_pairs  # noqa: E402
from srlab.inference.evaluate import iter_folder  # noqa: E402
from srlab.inference.upscale import upscale_tensor  # noqa: E402
from srlab.metrics.accumulator import ScoreAccumulator  # noqa: E402
from srlab.models import count_parameters, macs_720p  # noqa: E402

MEMBERS = {"imdn": "imdn/IMDN_x4.pth", "rlfn": "rlfn/rlfn_x4.pth", "bsrn": "bsrn/net_g_BSRN_x4.pth"}
SCALE = 4
VAL_CROP = 192


def members_arg() -> str:
    return ",".join(f"{name}:{SHARED / 'official-weights' / file}" for name, file in MEMBERS.items())


def val_crops(photos: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((photos / "val" / "HR").glob("*.png")):
        image = Image.open(path).convert("RGB")
        left, top = (image.width - VAL_CROP) // 2, (image.height - VAL_CROP) // 2
        image.crop((left, top, left + VAL_CROP, top + VAL_CROP)).save(out / path.name)
    return out


def train(kind: str, photos: Path, val: Path, work: Path, overrides: list[str]) -> tuple[Path, float | None]:
    """The run's best weights and the wall time of its training (None: an earlier run's, reused)."""
    run = work / f"run_{kind}"
    best = run / "best.safetensors"
    if best.is_file():
        return best, None
    command = [
        sys.executable, "-m", "srlab", "train", "--config", str(HERE / "fusion_x4.yaml"),
        "--model_arg", f"members={members_arg()}", "--model_arg", f"fusion={kind}",
        "--train_dir", str(photos / "train" / "HR"), "--val_dir", str(val), "--out", str(run), "--quiet",
        *[item for override in overrides for item in ("--set", override)],
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return best, time.perf_counter() - start


def cached(path: Path, compute) -> torch.Tensor:
    """A member's output for one benchmark image, computed once (reruns that add a fusion kind reuse it)."""
    if path.is_file():
        return torch.load(path, weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    sr = compute()
    torch.save(sr, path)
    return sr


def score(rows: dict, key: str, dataset: str, sr: torch.Tensor, hr: torch.Tensor) -> None:
    rows.setdefault(key, {}).setdefault(dataset, ScoreAccumulator()).update(sr.float(), hr, SCALE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="conv1x1,softmax,conv3x3", help="fusion layers to train (comma-separated)")
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "photos", help="proxy photos (train/HR, val/HR)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "fusion", help="run directories")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="srlab train override")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for scoring (timing uses 1)")
    parser.add_argument("--ensemble_sets", default="Set5,Set14", help="data sets on which to score the x8 self-ensembles")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (median; the self-ensembles: 1 round)")
    parser.add_argument("--time_ensembles", action=argparse.BooleanOptionalAction, default=True,
                        help="time the self-ensembles (8 passes each); without: 8 x the single model's time")
    options = parser.parse_args()
    kinds = options.kinds.split(",")

    val = val_crops(options.photos, options.work / "val_crops")
    trained, train_s = {}, {}
    for kind in kinds:
        trained[kind], train_s[kind] = train(kind, options.photos, val, options.work, options.set)

    torch.set_num_threads(options.threads)
    singles = {name: srlab.create_model(name, scale=SCALE, checkpoint=SHARED / "official-weights" / file)
               for name, file in MEMBERS.items()}
    fusions = {"fusion (untrained: average)": srlab.create_model("fusion", scale=SCALE,
                                                                   args={"members": members_arg()}).eval()}
    fusions.update({f"fusion {kind} (trained)": srlab.create_model(checkpoint=trained[kind]) for kind in kinds})

    rows: dict[str, dict[str, ScoreAccumulator]] = {}
    with torch.no_grad():
        for dataset in ("Set5", "Set14"):
            folder = discover_pairs(SHARED / "benchmarks" / dataset, SCALE)
            for image, lr, hr in iter_folder(folder, SCALE):
                outputs = []
                for name, model in singles.items():
                    for ensemble in (False, True)[: 2 if dataset in options.ensemble_sets.split(",") else 1]:
                        cache = options.work / "outputs" / dataset / f"{image}.{name}{'.x8' if ensemble else ''}.pt"
                        sr = cached(cache, lambda: upscale_tensor(model, lr, self_ensemble=ensemble))
                        score(rows, f"{name} x8 self-ensemble" if ensemble else name, dataset, sr, hr)
                        if not ensemble:
                            outputs.append(sr)
                for label, fusion in fusions.items():
                    score(rows, label, dataset, fusion.fuse([o[None] for o in outputs])[0], hr)
    torch.set_num_threads(1)

    results = {label: {dataset: acc.compute() for dataset, acc in by_set.items()} for label, by_set in rows.items()}
    cost = measure_cost(singles, fusions, options.rounds, options.time_ensembles)
    record = {"cpu": cpu_model(), "threads": 1, "train_s": train_s, "scores": results, "cost": cost,
              "overrides": options.set, "argv": sys.argv[1:]}
    (HERE / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    (HERE / "results.md").write_text(table(record))
    print(table(record))


def measure_cost(singles: dict, fusions: dict, rounds: int, time_ensembles: bool) -> dict:
    """Params, MACs at 720p output, and the time per Set5 image (1 thread) of each row: the single models and
    one fusion (all fusions run the same members; their layers differ by < 0.1% of the MACs) interleaved,
    median of ``rounds``; the self-ensembles one round, or 8 x the single model's time."""
    images = [lr for _, lr, _ in iter_folder(discover_pairs(SHARED / "benchmarks" / "Set5", SCALE), SCALE)]

    def run(model, ensemble=False):
        return lambda: [upscale_tensor(model, lr, self_ensemble=ensemble) for lr in images]

    timed_fusion = list(fusions)[-1]
    with torch.no_grad():
        times = median_ms({**{n: run(m) for n, m in singles.items()}, timed_fusion: run(fusions[timed_fusion])},
                          runs=rounds, warmup=0)
        if time_ensembles:
            times.update(median_ms({f"{n} x8 self-ensemble": run(m, True) for n, m in singles.items()}, runs=1, warmup=0))
        else:
            times.update({f"{n} x8 self-ensemble": 8 * times[n] for n in singles})
    rows = {**singles, **{f"{n} x8 self-ensemble": m for n, m in singles.items()}, **fusions}
    return {
        label: {
            "params": count_parameters(model), "trainable": count_parameters(model, trainable_only=True),
            "gmacs_720p": macs_720p(model) * (8 if "self-ensemble" in label else 1) / 1e9,
            "ms_per_set5_image": times.get(label, times[timed_fusion]) / len(images),
            "timed": label in times and ("self-ensemble" not in label or time_ensembles),
        }
        for label, model in rows.items()
    }


def table(record: dict) -> str:
    lines = [
        "| model | Set5 PSNR-Y / SSIM-Y | Set14 PSNR-Y / SSIM-Y | params | GMACs (720p out) | ms / Set5 image |",
        "|---|---|---|---|---|---|",
    ]
    for label, by_set in record["scores"].items():
        cost = record["cost"][label]
        cells = [f"{by_set[d]['psnr_y']:.2f} / {by_set[d]['ssim_y']:.4f}" if d in by_set else "not run"
                 for d in ("Set5", "Set14")]
        params = f"{cost['params']:,}" + (f" ({cost['trainable']:,} trained)" if cost["trainable"] != cost["params"] else "")
        lines.append(f"| {label} | {' | '.join(cells)} | {params} | {cost['gmacs_720p']:.1f} | {cost['ms_per_set5_image']:.0f}{'' if cost['timed'] else '*'} |")
    return "\n".join(lines) + (
        f"\n\nCPU: {record['cpu']}, {record['threads']} thread(s). *: not timed separately (a fusion: the timed "
        "fusion's time, same members; a self-ensemble without --time_ensembles: 8 x the single model's).\n")


if __name__ == "__main__":
    main()
