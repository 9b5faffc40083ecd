"""The benchmark's numbers as files: ``results.json``, ``results.csv`` and ``results.md``.

One record per (model, scale, data set), carrying the model's profile at that scale (parameters as the
papers count them, MACs for a 1280x720 output, CPU latency with its thread count) and the set means of
the evaluation protocol (``psnr_y``, ``ssim_y``, plus any extra metrics). The JSON also holds every
image's scores. The Markdown table is laid out as the papers' tables are: one block of rows per scale,
one row per model, ``PSNR/SSIM`` per data set (e.g. ``32.21/0.8948``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from srlab.fileio import atomic_path
from srlab.report.result import BenchmarkResult

CSV_FIELDS = (
    "model", "scale", "dataset", "images", "weights", "params", "macs_720p", "latency_ms", "latency_iqr_ms",
    "latency_threads", "latency_lr_size",
)


def records(result: BenchmarkResult) -> list[dict]:
    """One flat record per (model, scale, data set), in the order of the table (scale, model, set)."""
    rows = []
    for scale in result.scales:
        for entry in result.entries_at(scale):
            profile = entry.profile
            for dataset in result.datasets:
                scores = entry.results[dataset]
                rows.append({
                    "model": entry.model,
                    "scale": scale,
                    "dataset": dataset,
                    "images": len(scores.images),
                    "weights": entry.weights,
                    "params": profile.params,
                    "macs_720p": profile.macs_720p,
                    "latency_ms": profile.latency_ms,
                    "latency_iqr_ms": profile.latency_iqr_ms,
                    "latency_threads": profile.threads,
                    "latency_lr_size": "x".join(map(str, profile.lr_size)),
                    **scores.scores,
                    # adaptive models: mean MACs per image actually spent, and the same weights' full path
                    **({} if scores.compute is None else {
                        "macs_spent": scores.compute.macs_spent, "macs_full": scores.compute.macs_full,
                        "adaptive_method": scores.compute.method, "knob": scores.compute.knob,
                    }),
                })
    return rows


def results_json(result: BenchmarkResult) -> dict:
    rows = records(result)
    for row in rows:
        entry = result.entry(row["model"], row["scale"])
        row["per_image"] = [image.to_json() for image in entry.results[row["dataset"]].images]
    return {
        "meta": result.meta,
        "models": result.models,
        "scales": result.scales,
        "datasets": result.datasets,
        "score_keys": list(result.score_keys),
        "profiles": [
            {"weights": entry.weights, **entry.profile.to_json()} for entry in result.entries
        ],
        "results": rows,
    }


def results_csv(result: BenchmarkResult) -> str:
    rows = records(result)
    adaptive = ["macs_spent", "macs_full", "adaptive_method", "knob"] if any("macs_spent" in row for row in rows) else []
    fields = list(CSV_FIELDS) + adaptive + list(result.score_keys)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    return buffer.getvalue()


def format_params_k(params: int) -> str:
    if params == 0:
        return "0"
    return f"{params / 1000:,.0f}" if params >= 10_000 else f"{params / 1000:.1f}"


def format_macs_g(macs: int) -> str:
    return f"{macs / 1e9:.1f}" if macs >= 1e9 or macs == 0 else f"{macs / 1e9:.3f}"


def format_latency(latency_ms: float | None) -> str:
    if latency_ms is None:
        return "-"
    return f"{latency_ms:.0f}" if latency_ms >= 100 else f"{latency_ms:.1f}"


def format_scores(psnr: float, ssim: float) -> str:
    return f"{psnr:.2f}/{ssim:.4f}"


def table_rows(result: BenchmarkResult) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the papers' layout; the first cell of a scale's first row names the scale."""
    psnr_key, ssim_key = result.score_keys[:2]
    header = ["Scale", "Model", "Params (K)", "MACs (G, 720p)", "Latency (ms)", *result.datasets]
    rows = []
    for scale in result.scales:
        for index, entry in enumerate(result.entries_at(scale)):
            cells = [
                f"x{scale}" if index == 0 else "",
                entry.model,
                format_params_k(entry.profile.params),
                format_macs_g(entry.profile.macs_720p),
                format_latency(entry.profile.latency_ms),
            ]
            for dataset in result.datasets:
                scores = entry.results[dataset].scores
                cells.append(format_scores(scores[psnr_key], scores[ssim_key]))
            rows.append(cells)
    return header, rows


def latency_note(result: BenchmarkResult) -> str:
    meta = result.meta
    return (
        f"Latency: median of {meta['latency_repeats']} runs after {meta['latency_warmup']} warm-up on "
        f"{meta['latency_device']}, {meta['latency_threads']} thread(s), LR input {meta['latency_lr_size']} "
        f"(torch {meta['torch']}). MACs for a 1280x720 output; parameters as the papers count them. "
        f"PSNR/SSIM on {meta['protocol']}."
    )


def results_markdown(result: BenchmarkResult) -> str:
    header, rows = table_rows(result)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + latency_note(result) + "\n"


def write_tables(result: BenchmarkResult, out: Path) -> dict[str, Path]:
    """Write results.json, results.csv and results.md into ``out`` (atomically); returns their paths."""
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    texts = {
        "json": json.dumps(results_json(result), indent=2) + "\n",
        "csv": results_csv(result),
        "md": results_markdown(result),
    }
    for key, path in paths.items():
        with atomic_path(path) as tmp:
            tmp.write_text(texts[key], encoding="utf-8")
    return paths
