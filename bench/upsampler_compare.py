"""One backbone, every upsampler (issue 13): train the same network with each registered upsampler the same
way, then tabulate parameters, MACs, CPU latency and PSNR on the benchmark sets, and plot PSNR against MACs.

Usage: python bench/upsampler_compare.py --train_dir DIR --val_dir DIR \
           [--config configs/upsampler_compare_x4.yaml] [--upsamplers nearest bilinear ...] [--epochs N] \
           [--from_scratch | --freeze_backbone] [--lr LR] [--val_every N] \
           [--benchmarks ../shared/benchmarks] [--sets Set5 Set14] [--latency_size 128 128] [--threads 1] \
           [--out runs/upsampler_compare_x4]

The README's table: ``--freeze_backbone --epochs 100 --val_every 20`` on the proxy photos (the config's
comment has the whole command).

For each upsampler: ``srlab.train`` on the config with ``model.args.upsampler`` set (its own run folder,
``<out>/<upsampler>``; a finished run is reused, so an interrupted comparison goes on where it stopped),
warm-started from the same trained backbone: srlab's bundled weights of the config's model and scale less
the upsampler (``tail.*``), so every upsampler starts fresh on equal terms and a short run converges
(``--from_scratch``: from the config's initialisation instead). ``--freeze_backbone`` trains the upsampler
alone (``model.freeze``: every parameter outside ``tail.``), so every head learns on the same fixed, trained
features and no short run can degrade the backbone. Then its last weights are scored (PSNR /
SSIM on Y, the paper protocol) on each set's LR_bicubic/X<s> images.
Parameters are counted as the papers count them, MACs at a 1280x720 output (srlab.models.complexity's
convention, which each upsampler's docstring spells out) and latency is the median of whole-image runs on
an LR image of ``--latency_size`` with ``--threads`` threads. Writes ``<out>/table.md`` (the table printed)
and ``<out>/psnr_vs_macs.svg`` (PSNR on the last set against MACs, latency as bubble area).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import srlab  # before torch: srlab sets the OpenMP wait policy
import torch
from safetensors.torch import save_file

from srlab.data.datasets import discover_pairs
from srlab.fileio import atomic_path
from srlab.inference.evaluate import evaluate_folder
from srlab.models.complexity import macs_720p, paper_parameter_count
from srlab.profile.latency import model_latency, torch_threads
from srlab.report.plots import Point, scatter_svg
from srlab.train.checkpoint import LAST_FILE
from srlab.train.config import TrainConfig, apply_overrides, load_yaml
from srlab.train.trainer import train
from machine import cpu_model  # bench/machine.py: scripts run as python bench/<name>.py

STUDY = ("nearest", "bilinear", "bicubic", "transposed", "decomposed", "subpixel", "subpixel_progressive",
         "attention")


@dataclasses.dataclass(frozen=True)
class Row:
    upsampler: str
    params: int
    macs: int
    latency_ms: float
    psnr: dict[str, float]
    ssim: dict[str, float]


def _backbone(config: TrainConfig, out: Path) -> Path:
    """The bundled weights of the config's model without its upsampler's tensors (``tail.*``)."""
    trained = srlab.create_model(config.model.name, scale=config.scale, pretrained=True)
    tensors = {k: v.contiguous() for k, v in trained.state_dict().items() if not k.startswith("tail.")}
    path = out / "backbone.safetensors"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return path


def _backbone_prefixes(config: TrainConfig) -> list[str]:
    """The top-level modules of the config's model other than its upsampler (``tail``)."""
    model = srlab.create_model(config.model.name, scale=config.scale, args=config.model.args)
    return sorted({name.split(".", 1)[0] + "." for name, _ in model.named_parameters()} - {"tail."})


def _config(path: Path, args: argparse.Namespace, upsampler: str) -> TrainConfig:
    config = TrainConfig()
    apply_overrides(config, load_yaml(path))
    config.data.train_dir, config.data.val_dir = args.train_dir, args.val_dir
    if args.epochs:
        config.epochs = args.epochs
    if args.lr:
        config.optim.lr = args.lr
    # 0: validate (and save) once, at the end; else every val_every epochs, to follow convergence in train.log.
    config.val_every = args.val_every or config.epochs
    config.model.args = {**config.model.args, "upsampler": upsampler}
    if args.freeze_backbone:
        config.model.freeze = _backbone_prefixes(config)
    config.out = str(Path(args.out) / upsampler)
    return config


def _trained(config: TrainConfig) -> Path:
    weights = Path(config.out) / LAST_FILE
    if not weights.is_file():
        train(config, progress=False)
    return weights


def _measure(upsampler: str, weights: Path, args: argparse.Namespace) -> Row:
    model = srlab.create_model(checkpoint=weights)
    psnr, ssim = {}, {}
    for name in args.sets:
        folder = discover_pairs(Path(args.benchmarks) / name, srlab.models.registry.spec_of(model).scale)
        with torch.no_grad():
            means = evaluate_folder(model, folder).scores
        psnr[name], ssim[name] = means["psnr_y"], means["ssim_y"]
    latency = model_latency(model, tuple(args.latency_size), repeats=args.repeats, threads=args.threads)
    return Row(upsampler, paper_parameter_count(model), macs_720p(model), latency.median_ms, psnr, ssim)


def _table(rows: list[Row], sets: list[str]) -> str:
    head = ["upsampler", "params", "GMACs (720p)", "CPU ms"] + [f"PSNR / SSIM {s}" for s in sets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        scores = [f"{r.psnr[s]:.2f} / {r.ssim[s]:.4f}" for s in sets]
        lines.append(f"| {r.upsampler} | {r.params:,} | {r.macs / 1e9:.2f} | {r.latency_ms:.0f} | " + " | ".join(scores)
                     + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/upsampler_compare_x4.yaml")
    parser.add_argument("--train_dir", required=True)
    parser.add_argument("--val_dir", required=True)
    parser.add_argument("--upsamplers", nargs="+", default=list(STUDY), choices=srlab.list_upsamplers())
    parser.add_argument("--epochs", type=int, default=0, help="override the config's epochs (0: keep)")
    parser.add_argument("--lr", type=float, default=0.0, help="override the config's optim.lr (0: keep)")
    parser.add_argument("--val_every", type=int, default=0, help="validate every N epochs (0: at the end only)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from_scratch", action="store_true", help="no warm start from the bundled backbone")
    start.add_argument("--freeze_backbone", action="store_true",
                       help="train only the upsampler (tail.*) on the bundled backbone, which stays fixed")
    parser.add_argument("--benchmarks", default="../shared/benchmarks")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--latency_size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/upsampler_compare_x4")
    args = parser.parse_args()

    rows = []
    first = _config(Path(args.config), args, args.upsamplers[0])
    backbone = None if args.from_scratch else _backbone(first, Path(args.out))
    with torch_threads(args.threads):
        for upsampler in args.upsamplers:
            config = _config(Path(args.config), args, upsampler)
            if backbone is not None:
                config.init_from = str(backbone)
            weights = _trained(config)
            rows.append(_measure(upsampler, weights, args))
            print(f"{upsampler}: done", flush=True)
    lr_h, lr_w = args.latency_size
    start = ("from scratch" if backbone is None else
             "on the frozen bundled backbone" if args.freeze_backbone else "from the bundled backbone")
    note = (f"{first.model.name} x{first.scale}, {first.epochs} epochs each at lr {first.optim.lr:g} {start}; "
            f"latency: LR {lr_h}x{lr_w}, {args.threads} thread(s), {cpu_model()}")
    table = _table(rows, args.sets)
    print(note)
    print(table)
    out = Path(args.out)
    (out / "table.md").write_text(note + "\n\n" + table + "\n")
    last = args.sets[-1]
    points = [Point(r.upsampler, r.macs / 1e9, r.psnr[last], r.latency_ms) for r in rows]
    svg = scatter_svg(points, title=f"One backbone, each upsampler ({first.model.name} x{first.scale})",
                      x_label="GMACs at 1280x720 output", y_label=f"PSNR-Y on {last} (dB)", note=note)
    (out / "psnr_vs_macs.svg").write_text(svg)


if __name__ == "__main__":
    main()
