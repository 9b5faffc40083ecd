"""The plot of each experiment, from its ``results.json``: ``experiments/<name>/results.svg``.

    python experiments/plot_results.py            # every experiment that has a results.json

Drawn with srlab's own SVG plotter (srlab.report.plots), the one of the benchmark and MOS reports. Each
experiment's README shows its plot beside its table; a rerun of the experiment followed by this script
redraws it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from srlab.fileio import atomic_write_bytes
from srlab.report.plots import Mark, bars_svg, xy_svg

HERE = Path(__file__).resolve().parent


def _range(values: list[float]) -> tuple[float, float]:
    """A bar range that shows differences of tenths of a dB: 0.2 below the lowest, 0.2 above the highest."""
    return round(min(values) - 0.2, 1), round(max(values) + 0.2, 1)


def fusion(results: dict) -> str:
    marks, fused = [], []
    for label, scores in results["scores"].items():
        if label.startswith("fusion"):  # the fusions share one cost and lie within 0.01 dB: one point, their best
            fused.append((scores["Set5"]["psnr_y"], results["cost"][label]["gmacs_720p"]))
        else:
            marks.append(Mark(label, results["cost"][label]["gmacs_720p"], scores["Set5"]["psnr_y"]))
    if fused:
        best, macs = max(fused)
        marks.append(Mark(f"fusion (best of {len(fused)} layers)", macs, best))
    return xy_svg(marks, title="Network fusion: Set5 x4 PSNR-Y against cost", x_label="GMACs (720p output)",
                  y_label="PSNR-Y (dB)", note=f"{results['cpu']}; official IMDN, RLFN, BSRN weights")


def nas(results: dict) -> str:
    marks = [Mark(label, row["macs"] / 1e9, row["scores"]["Set5"]["psnr_y"]) for label, row in results["final"].items()]
    return xy_svg(marks, title="Architecture search: Set5 x4 PSNR-Y of the picks against MACs",
                  x_label="GMACs (LR 64x64)", y_label="PSNR-Y (dB)", note="the same final training budget each")


def normalisation(results: list) -> str:
    short = {"-": "", "none": "", "batch": " BN", "layer": " LN", "instance": " IN"}
    marks = [Mark(row["net"].split("_")[0] + short[row["norm"]], 0.0, row["Set5_psnr_y"]) for row in results]
    return bars_svg(marks, title="Normalisation: Set5 x4 PSNR-Y per network and norm", y_label="PSNR-Y (dB)",
                    x_label="network and norm (BN batch, LN layer, IN instance)", y_range=_range([m.y for m in marks]),
                    note="one seed each")


def color_spaces(results: list) -> str:
    marks = [Mark(row["space"].split(" ")[0], row["Set5_ciede2000"], row["Set5_psnr_y"]) for row in results]
    return xy_svg(marks, title="Colour spaces: Set5 x4 PSNR-Y against the colour error",
                  x_label="mean CIEDE2000 (lower is better)", y_label="PSNR-Y (dB)", note="rdsr_s, one seed each")


def multitask(results: dict) -> str:
    marks = [Mark("bicubic", 0.0, results["bicubic"]["all"]["psnr_y"])]
    for weight in results["weights"]:
        values = [results["runs"][f"w{weight:g}_seed{seed}"]["all"]["psnr_y"] for seed in results["seeds"]]
        marks.append(Mark(f"weight {weight:g}", 0.0, sum(values) / len(values), error=(max(values) - min(values)) / 2))
    ends = [v for m in marks for v in (m.y - (m.error or 0), m.y + (m.error or 0))]
    return bars_svg(marks, title="Multi-task: validation PSNR-Y (mean and half the seed spread)",
                    y_label="PSNR-Y (dB)", x_label="classification weight", y_range=_range(ends))


PLOTS: dict[str, Callable[[object], str]] = {
    "fusion": fusion, "nas": nas, "normalisation": normalisation, "color_spaces": color_spaces, "multitask": multitask,
}


def main() -> None:
    for name, plot in PLOTS.items():
        results = HERE / name / "results.json"
        if not results.is_file():
            print(f"{name}: no results.json yet (run experiments/{name}/run.py)")
            continue
        svg = HERE / name / "results.svg"
        atomic_write_bytes(svg, plot(json.loads(results.read_text())).encode())
        print(f"{name}: {svg.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
