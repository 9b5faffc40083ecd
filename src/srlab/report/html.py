"""``index.html`` of a benchmark report: one self-contained page that opens offline.

It holds the results table (the papers' layout, the best PSNR/SSIM of each scale and data set in
bold), the SVG plots and the visual comparisons (the HR image with the crop outlined, then the zoomed
crops of HR, bicubic and each model with their PSNR/SSIM under each), every file referenced by a path
relative to the page. Styles are inline; nothing is fetched from the network. A small script sets the
page title to ``... [N/N images loaded]`` once the page has loaded, so a headless browser can check that
every image displayed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from srlab.fileio import atomic_path
from srlab.report.result import BenchmarkResult
from srlab.report.tables import format_latency, format_macs_g, format_params_k, latency_note

TITLE = "srlab benchmark report"

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; }
table.results { border-collapse: collapse; font-size: 13px; }
table.results th, table.results td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
table.results th:nth-child(-n+2), table.results td:nth-child(-n+2) { text-align: left; }
table.results tr.first td { border-top: 2px solid #555; }
table.results td.best { font-weight: bold; color: #b00; }
p.note { font-size: 12px; color: #555; max-width: 900px; }
div.plots { display: flex; flex-wrap: wrap; gap: 12px; }
div.plots img { width: 440px; border: 1px solid #eee; }
div.comparison { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 10px; margin-bottom: 20px; }
div.comparison figure { margin: 0; text-align: center; font-size: 12px; }
div.comparison img.crop { image-rendering: pixelated; width: 192px; height: 192px; border: 1px solid #ccc; }
div.comparison img.overview { max-width: 320px; max-height: 260px; }
figcaption b { display: block; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
  }
  document.title = document.title + " [" + loaded + "/" + images.length + " images loaded]";
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def results_table(result: BenchmarkResult) -> str:
    psnr_key, ssim_key = result.score_keys[:2]
    header = ["Scale", "Model", "Params (K)", "MACs (G, 720p)", "Latency (ms)", *result.datasets]
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = ['<table class="results">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for scale in result.scales:
        entries = result.entries_at(scale)
        best = {
            dataset: (
                max(e.results[dataset].scores[psnr_key] for e in entries),
                max(e.results[dataset].scores[ssim_key] for e in entries),
            )
            for dataset in result.datasets
        }
        for index, entry in enumerate(entries):
            cells = [
                f"<td>x{scale}</td>" if index == 0 else "<td></td>",
                f"<td>{_e(entry.model)}</td>",
                f"<td>{format_params_k(entry.profile.params)}</td>",
                f"<td>{format_macs_g(entry.profile.macs_720p)}</td>",
                f"<td>{format_latency(entry.profile.latency_ms)}</td>",
            ]
            for dataset in result.datasets:
                scores = entry.results[dataset].scores
                psnr, ssim = scores[psnr_key], scores[ssim_key]
                is_best = psnr == best[dataset][0] and len(entries) > 1
                cls = ' class="best"' if is_best else ""
                cells.append(f"<td{cls}>{psnr:.2f}/{ssim:.4f}</td>")
            row_class = ' class="first"' if index == 0 else ""
            lines.append(f"<tr{row_class}>" + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _plots_section(result: BenchmarkResult) -> list[str]:
    parts = ["<h2>Efficiency and per-image PSNR</h2>"]
    for scale in result.scales:
        for dataset in result.datasets:
            plots = [p for p in result.plots if p.scale == scale and p.dataset == dataset]
            if not plots:
                continue
            parts.append(f"<h3>{_e(dataset)} x{scale}</h3>")
            parts.append('<div class="plots">')
            parts += [f'<img src="{_e(p.path)}" alt="{_e(p.title)}" title="{_e(p.title)}">' for p in plots]
            parts.append("</div>")
    return parts


def _comparisons_section(result: BenchmarkResult) -> list[str]:
    if not result.comparisons:
        return []
    parts = [
        "<h2>Visual comparison</h2>",
        '<p class="note">Zoomed crops (nearest neighbour) of the region outlined in red; under each, the PSNR/SSIM '
        "of the whole image (Y, the evaluation protocol).</p>",
    ]
    for comparison in result.comparisons:
        top, left, side = comparison.crop
        parts.append(
            f'<h3>{_e(comparison.dataset)} / {_e(comparison.image)} x{comparison.scale} '
            f'<small>(crop {side}x{side} at x={left}, y={top}; '
            f'<a href="{_e(comparison.strip)}">full-size strip</a>)</small></h3>'
        )
        parts.append('<div class="comparison">')
        parts.append(
            f'<figure><img class="overview" src="{_e(comparison.overview)}" alt="{_e(comparison.image)}">'
            f"<figcaption><b>{_e(comparison.image)}</b>HR</figcaption></figure>"
        )
        best = max((p.psnr for p in comparison.panels if p.psnr is not None), default=None)
        for panel in comparison.panels:
            if panel.psnr is None:
                caption = "PSNR / SSIM"
            else:
                text = f"{panel.psnr:.2f} dB / {panel.ssim:.4f}"
                caption = f"<strong>{text}</strong>" if panel.psnr == best else text
            parts.append(
                f'<figure><img class="crop" src="{_e(panel.path)}" alt="{_e(panel.label)}">'
                f'<figcaption><b>{_e(panel.label)}</b><span class="psnr">{caption}</span></figcaption></figure>'
            )
        parts.append("</div>")
    return parts


def render_html(result: BenchmarkResult) -> str:
    meta = result.meta
    weights = ", ".join(f"{_e(k)}: {_e(v)}" for k, v in meta.get("weights", {}).items())
    return render_page(TITLE, [
        f'<p class="note">Models: {_e(", ".join(result.models))}; scales: {_e(", ".join(f"x{s}" for s in result.scales))}; '
        f'data sets: {_e(", ".join(result.datasets))}. Created {_e(meta.get("created", ""))} in '
        f'{_e(meta.get("elapsed_s", "?"))} s.</p>',
        "<h2>Results</h2>",
        results_table(result),
        f'<p class="note">{_e(latency_note(result))} Best PSNR of each scale and data set in bold red.</p>',
        f'<p class="note">Weights: {weights}. The numbers: <a href="results.json">results.json</a>, '
        '<a href="results.csv">results.csv</a>, <a href="results.md">results.md</a>.</p>',
        *_plots_section(result),
        *_comparisons_section(result),
    ])


def render_page(title: str, body: Sequence[str]) -> str:
    """A whole offline page in the reports' style: a heading ``title``, then the HTML ``body`` parts (text
    in them escaped by the caller). The page title gains ``[N/N images loaded]`` once the page has loaded."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_SCRIPT}</script>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        *body,
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_html(result: BenchmarkResult, out: Path) -> Path:
    path = Path(out) / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(render_html(result), encoding="utf-8")
    return path
