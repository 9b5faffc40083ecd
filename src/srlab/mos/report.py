"""The report of a MOS study (``srlab mos report``): a JSON summary, an offline HTML page, a CSV of ratings.

:func:`write_report` screens the raters, scores the methods (:mod:`srlab.mos.analysis` documents every
statistic) and writes whichever outputs it is given, each atomically. The JSON (also returned as a dict):

- ``methods``: ``[{"name", "mos", "ci95", "n", "raters"}]`` in the study's order: the MOS, the half-width
  of its 95% interval (over the per-rater means), ``n`` ratings from ``raters`` raters. In a pair design
  ``mos`` and ``ci95`` are null (a choice is not a score), ``n`` is the method's comparisons and ``wins``
  its wins; its scores are under ``bradley_terry``.
- ``images``: per (method, image): ``{"method", "image", "mos", "ci95", "n", "raters"}`` (ACR/DCR) or
  ``{"method", "image", "wins", "n"}`` (pair: ``n`` comparisons).
- ``raters``: ``[{"id", "n", "kept", "reason"}]``, ``n`` the rater's answers (checks included), ``reason``
  why a rater was excluded (attention check or ITU-R BT.500), null for a kept rater.
- ``bradley_terry`` (pair designs): ``{"methods": [{"name", "score", "ci95", "wins", "comparisons"}],
  "gauge", "regularised", "prior_wins", "interval"}``; a method not compared yet has a null ``score``;
  null when no kept rater compared anything.
- ``correlations`` (when metrics are given): ``[{"metric", "against", "n", "pearson", "pearson_p",
  "spearman", "spearman_p", "kendall", "kendall_p"}]`` of each metric with the methods' MOS (or their
  Bradley-Terry scores in a pair design), over the methods that have both.
- ``design``, ``study``, ``ratings`` (``{"total", "kept"}``: real trials' ratings, of all raters and of the
  kept ones).

A study without any rating is an error (a report of nothing would only hide that the link was never
shared); a study whose raters were all excluded gives a valid report whose methods have ``mos`` null and
``n`` 0, with the reasons under ``raters``. The CSV holds the kept raters' answers to the real trials (the
attention checks only screen raters).

Metric values come from a ``srlab eval --json`` file or a ``srlab benchmark`` folder's ``results.json``
(:func:`read_metric_results`); a method is matched to a model by its name.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.mos.analysis import (
    PRIOR_WINS, bradley_terry, check_design, correlations, image_scores, latest_ratings, method_scores,
    screen_raters, win_matrix,
)
from srlab.mos.records import Rating, Trial
from srlab.report.html import render_page
from srlab.report.plots import Mark, bars_svg, xy_svg

TITLE = "srlab MOS report"
CSV_FIELDS = ("rater", "trial", "image", "method", "other", "score", "winner", "time")
# Keys of an eval/benchmark result row that are not metric values.
_NOT_METRICS = {
    "model", "scale", "dataset", "images", "per_image", "weights", "self_ensemble", "adaptive", "params",
    "macs_720p", "latency_ms", "latency_iqr_ms", "latency_threads", "latency_lr_size", "macs_spent", "macs_full",
    "knob",
}


def read_metric_results(path: Path, *, dataset: str | None = None,
                        scale: int | None = None) -> dict[str, dict[str, float]]:
    """Model -> metric -> set mean from a ``srlab eval --json`` file (``{"results": [{"model", "dataset",
    "scale", "psnr_y", ...}]}``) or a benchmark's ``results.json`` (the same rows, its ``score_keys`` naming
    the metrics). A model with rows for several data sets or scales needs ``dataset``/``scale`` to pick one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["results"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "model" in r for r in rows):
            raise TypeError
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        reason = "no list of results with a model each" if isinstance(e, (KeyError, TypeError)) else e
        raise SrlabError(f"metric results '{path}' cannot be read ({reason}): give the JSON written by "
                         "srlab eval --json or a srlab benchmark folder's results.json") from None
    keys = data.get("score_keys")
    rows = [r for r in rows
            if (dataset is None or r.get("dataset") == dataset) and (scale is None or r.get("scale") == scale)]
    found: dict[str, dict[str, float]] = {}
    where: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        model = str(row["model"])
        where[model].append(f"{row.get('dataset')} x{row.get('scale')}")
        names = keys if keys is not None else [k for k in row if k not in _NOT_METRICS]
        found[model] = {k: float(row[k]) for k in names
                        if isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool)}
    several = {model: places for model, places in where.items() if len(places) > 1}
    if several:
        model, places = next(iter(several.items()))
        raise SrlabError(f"metric results '{path}' hold {model} on several data sets or scales ({', '.join(places)}): "
                         "evaluate the study's images alone, or pick one data set and scale")
    if not found:
        raise SrlabError(f"metric results '{path}' have no results for data set {dataset} and scale {scale}: "
                         "give a data set and scale that it holds")
    return found


def _study_methods(trials: Sequence[Trial], design: str) -> list[str]:
    """The methods of the real trials, in the order they first appear."""
    methods: dict[str, None] = {}
    for trial in trials:
        if trial.check is not None:
            continue
        if design == "pair" and trial.other is None:
            raise SrlabError(f"trial {trial.id!r} of a pair study has no second method: the study's trials "
                             "do not match its design")
        methods[trial.method] = None
        if design == "pair":
            methods[trial.other] = None
    return list(methods)


def _rated_summary(kept: list[Rating], methods: list[str]) -> dict[str, Any]:
    return {
        "methods": [{"name": s.method, "mos": s.mos, "ci95": s.ci95, "n": s.n, "raters": s.raters}
                    for s in method_scores(kept, methods)],
        "images": [{"method": s.method, "image": s.image, "mos": s.mos, "ci95": s.ci95, "n": s.n, "raters": s.raters}
                   for s in image_scores(kept)],
    }


def _pair_summary(kept: list[Rating], methods: list[str]) -> dict[str, Any]:
    wins = win_matrix(kept, methods)
    games = wins + wins.T
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (method, image) -> [wins, comparisons]
    for rating in kept:
        for method in (rating.trial.method, rating.trial.other):
            cell = cells[(method, rating.trial.image)]
            cell[0] += rating.winner == method
            cell[1] += 1
    summary: dict[str, Any] = {
        "methods": [{"name": m, "mos": None, "ci95": None, "n": int(games[i].sum()), "wins": int(wins[i].sum())}
                    for i, m in enumerate(methods)],
        "images": [{"method": m, "image": image, "wins": w, "n": n} for (m, image), (w, n) in sorted(cells.items())],
        "bradley_terry": None,
    }
    compared = [i for i in range(len(methods)) if games[i].sum() > 0]  # a method not compared yet has no score
    if compared:
        bt = bradley_terry(wins[np.ix_(compared, compared)], [methods[i] for i in compared])
        fitted = {i: k for k, i in enumerate(compared)}
        summary["bradley_terry"] = {
            "methods": [{"name": m, "score": float(bt.scores[fitted[i]]) if i in fitted else None,
                         "ci95": float(bt.ci95[fitted[i]]) if i in fitted else None, "wins": int(wins[i].sum()),
                         "comparisons": int(games[i].sum())} for i, m in enumerate(methods)],
            "gauge": "natural-log strengths, mean 0 over the methods compared",
            "interval": "1.96 standard errors from the Fisher information",
            "regularised": bt.regularised,
            "prior_wins": PRIOR_WINS if bt.regularised else 0.0,
        }
    return summary


def _method_values(report: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """What the metrics are correlated with: ("mos", method -> MOS) or ("bradley_terry", method -> score)."""
    if report["design"] == "pair":
        bt = report["bradley_terry"]
        scored = [] if bt is None else [m for m in bt["methods"] if m["score"] is not None]
        return "bradley_terry", {m["name"]: m["score"] for m in scored}
    return "mos", {m["name"]: m["mos"] for m in report["methods"] if m["mos"] is not None}


def _correlations(report: dict[str, Any], metrics: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    against, values = _method_values(report)
    names = list(dict.fromkeys(name for per_method in metrics.values() for name in per_method))
    rows = []
    for name in names:
        methods = [m for m in values if name in metrics.get(m, {})]
        result = correlations([metrics[m][name] for m in methods], [values[m] for m in methods])
        rows.append({"metric": name, "against": against, "n": len(methods), **result})
    return rows


def build_report(study_dir: Path, trials: Sequence[Trial], ratings: Sequence[Rating], *, design: str,
                 metrics: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The report's JSON dict (see the module docstring)."""
    check_design(design)
    ratings = latest_ratings(ratings)
    if not ratings:
        raise SrlabError(f"study '{study_dir}' has no ratings yet: share the rater link that srlab mos serve "
                         "prints, then report")
    # The ratings' own trials too: a rating of a trial the list lacks still names its methods.
    methods = _study_methods([*trials, *(r.trial for r in ratings)], design)
    verdicts = screen_raters(ratings, design)
    kept_raters = {v.id for v in verdicts if v.kept}
    real = [r for r in ratings if r.trial.check is None]
    kept = [r for r in real if r.rater in kept_raters]
    summary = _pair_summary(kept, methods) if design == "pair" else _rated_summary(kept, methods)
    report: dict[str, Any] = {
        "study": str(study_dir),
        "design": design,
        "methods": summary.pop("methods"),
        "images": summary.pop("images"),
        "raters": [{"id": v.id, "n": v.n, "kept": v.kept, "reason": v.reason} for v in verdicts],
        "ratings": {"total": len(real), "kept": len(kept)},
        **summary,
    }
    if metrics:
        report["correlations"] = _correlations(report, metrics)
    return report


def ratings_csv(ratings: Sequence[Rating]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in ratings:
        t = r.trial
        writer.writerow([r.rater, t.id, t.image, t.method, t.other or "", "" if r.score is None else r.score,
                         r.winner or "", r.time])
    return buffer.getvalue()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _plots(svgs: Sequence[str]) -> str:
    return '<div class="plots">' + "".join(svgs) + "</div>" if svgs else ""


def _methods_section(report: dict[str, Any]) -> list[str]:
    if report["design"] == "pair":
        bt = report["bradley_terry"]
        if bt is None:
            return ["<h2>Bradley-Terry scores</h2>", '<p class="note">No kept rater compared any pair.</p>']
        rows = [(m["name"], _num(m["score"], 3), _num(m["ci95"], 3), m["wins"], m["comparisons"])
                for m in bt["methods"]]
        marks = [Mark(m["name"], 0.0, m["score"], m["ci95"]) for m in bt["methods"] if m["score"] is not None]
        note = " (regularised: a method never won)" if bt["regularised"] else ""
        return [
            "<h2>Bradley-Terry scores</h2>",
            _table(("Method", "Score (log strength)", "95% CI ±", "Wins", "Comparisons"), rows),
            f'<p class="note">Log strengths, mean 0; the difference of two is the log-odds that one is preferred. '
            f"Intervals: {_e(bt['interval'])}{_e(note)}.</p>",
            _plots([bars_svg(marks, title="Bradley-Terry score", y_label="log strength")]),
        ]
    rows = [(m["name"], _num(m["mos"]), _num(m["ci95"]), m["raters"], m["n"]) for m in report["methods"]]
    marks = [Mark(m["name"], 0.0, m["mos"], m["ci95"]) for m in report["methods"] if m["mos"] is not None]
    return [
        "<h2>Mean opinion scores</h2>",
        _table(("Method", "MOS", "95% CI ±", "Raters", "Ratings"), rows),
        '<p class="note">95% intervals: Student t over the per-rater means of each method.</p>',
        _plots([bars_svg(marks, title="MOS (95% CI)", y_label="MOS", y_range=(1.0, 5.0))] if marks else []),
    ]


def _correlations_section(report: dict[str, Any], metrics: dict[str, dict[str, float]]) -> list[str]:
    rows = [(c["metric"], c["n"], *(_num(c[k], 3) for k in ("pearson", "pearson_p", "spearman", "spearman_p",
                                                            "kendall", "kendall_p"))) for c in report["correlations"]]
    against, values = _method_values(report)
    y_label = "MOS" if against == "mos" else "Bradley-Terry score"
    scored = report["methods"] if against == "mos" else (report["bradley_terry"] or {"methods": []})["methods"]
    errors = {m["name"]: m["ci95"] for m in scored}
    svgs = []
    for c in report["correlations"]:
        marks = [Mark(m, metrics[m][c["metric"]], v, errors.get(m))
                 for m, v in values.items() if c["metric"] in metrics.get(m, {})]
        if marks:
            svgs.append(xy_svg(marks, title=f"{c['metric']} vs {y_label}", x_label=c["metric"], y_label=y_label))
    return [
        "<h2>Correlation with objective metrics</h2>",
        _table(("Metric", "Methods", "Pearson", "p", "Spearman", "p", "Kendall", "p"), rows),
        _plots(svgs),
    ]


def render_report_html(report: dict[str, Any], metrics: dict[str, dict[str, float]] | None = None) -> str:
    kept = sum(r["kept"] for r in report["raters"])
    body = [
        f'<p class="note">Study {_e(report["study"])}, design {_e(report["design"].upper())}: '
        f'{kept} of {len(report["raters"])} raters kept, {report["ratings"]["kept"]} of '
        f'{report["ratings"]["total"]} ratings used.</p>',
        *_methods_section(report),
    ]
    if report.get("correlations"):
        body += _correlations_section(report, metrics or {})
    body += [
        "<h2>Raters</h2>",
        _table(("Rater", "Answers", "Kept", "Reason"),
               [(r["id"], r["n"], "yes" if r["kept"] else "no", r["reason"] or "") for r in report["raters"]]),
        "<h2>Per image</h2>",
    ]
    if report["design"] == "pair":
        body.append(_table(("Method", "Image", "Wins", "Comparisons"),
                           [(i["method"], i["image"], i["wins"], i["n"]) for i in report["images"]]))
    else:
        body.append(_table(("Method", "Image", "MOS", "95% CI ±", "Raters"),
                           [(i["method"], i["image"], _num(i["mos"]), _num(i["ci95"]), i["raters"])
                            for i in report["images"]]))
    return render_page(TITLE, body)


def _write_text(path: Path, text: str) -> None:
    path = Path(path)
    if path.is_dir():
        raise SrlabError(f"report output '{path}' is a folder: give a file name, e.g. {path / 'report.html'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_report(study_dir: Path, trials: list[Trial], ratings: list[Rating], *, design: str,
                 json_out: Path | None = None, html_out: Path | None = None, csv_out: Path | None = None,
                 metrics: dict[str, dict[str, float]] | None = None) -> dict:
    """Analyse the study and write the outputs asked for (atomically); returns the JSON dict."""
    report = build_report(study_dir, trials, ratings, design=design, metrics=metrics)
    if json_out is not None:
        _write_text(json_out, json.dumps(report, indent=2) + "\n")
    if html_out is not None:
        _write_text(html_out, render_report_html(report, metrics))
    if csv_out is not None:
        kept = {r["id"] for r in report["raters"] if r["kept"]}
        _write_text(csv_out, ratings_csv([r for r in latest_ratings(ratings)
                                          if r.rater in kept and r.trial.check is None]))
    return report
