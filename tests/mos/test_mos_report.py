"""The MOS report: its JSON contract, HTML and CSV, metric files, and the refusals."""

from __future__ import annotations

import csv
import json
import math

import pytest

from srlab.errors import SrlabError
from srlab.mos.analysis import Z95
from srlab.mos.records import Rating, Trial
from srlab.mos.report import read_metric_results, write_report
from srlab.report.plots import Mark, bars_svg, xy_svg

METHODS = ("bicubic", "rdsr", "safmn")
IMAGES = ("baby", "bird")
# Scores of each rater for (method, image) in the order bicubic/baby, bicubic/bird, rdsr/baby, ...
PANEL = {
    "r1": (2, 2, 4, 3, 5, 4),
    "r2": (1, 2, 3, 4, 4, 5),
    "r3": (2, 1, 4, 4, 4, 4),
}


def acr_study() -> tuple[list[Trial], list[Rating]]:
    trials = [Trial(f"{m}-{i}", i, m) for m in METHODS for i in IMAGES]
    repeat = Trial("rep", "baby", "rdsr", check="repeat", repeats="rdsr-baby")
    bad = Trial("bad", "bird", "_bad", check="bad")  # as srlab mos create makes it
    ratings = [Rating(r, t, score=s, time=k)
               for r, scores in PANEL.items() for k, (t, s) in enumerate(zip(trials, scores))]
    ratings += [Rating(r, repeat, score=PANEL[r][2]) for r in PANEL] + [Rating(r, bad, score=1) for r in PANEL]
    # "lazy" rates everything 5, the degraded image included: excluded by the attention check.
    ratings += [Rating("lazy", t, score=5) for t in trials + [repeat, bad]]
    return trials + [repeat, bad], ratings


def test_json_contract_and_values(tmp_path):
    trials, ratings = acr_study()
    out = tmp_path / "out" / "report.json"
    report = write_report(tmp_path, trials, ratings, design="acr", json_out=out)
    assert json.loads(out.read_text()) == report
    assert [m["name"] for m in report["methods"]] == list(METHODS)
    assert set(report["methods"][0]) == {"name", "mos", "ci95", "n", "raters"}
    # bicubic, kept raters r1-r3: per-rater means 2, 1.5, 1.5; MOS (2+2+1+2+2+1)/6 = 10/6;
    # s of the means = sqrt(((1/3)^2 + 2 (1/6)^2) / 2) = sqrt(1/12),
    # half-width t(0.975, 2) sqrt(1/12) / sqrt(3) = t / 6.
    t = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    bicubic = report["methods"][0]
    assert bicubic["mos"] == pytest.approx(10 / 6)
    assert bicubic["ci95"] == pytest.approx(t / 6)
    assert (bicubic["n"], bicubic["raters"]) == (6, 3)
    raters = {r["id"]: r for r in report["raters"]}
    assert set(raters) == {"r1", "r2", "r3", "lazy"}
    assert set(raters["r1"]) == {"id", "n", "kept", "reason"}
    assert raters["r1"]["kept"] and raters["r1"]["n"] == 8
    assert not raters["lazy"]["kept"] and raters["lazy"]["reason"].startswith("attention check: scored the degraded")
    assert report["ratings"] == {"total": 24, "kept": 18}
    image = next(i for i in report["images"] if (i["method"], i["image"]) == ("safmn", "bird"))
    # safmn/bird: 4, 5, 4: mean 13/3, s = sqrt((2 (1/3)^2 + (2/3)^2) / 2) = sqrt(1/3),
    # half-width t sqrt(1/3) / sqrt(3) = t / 3
    assert image == {"method": "safmn", "image": "bird", "mos": pytest.approx(13 / 3), "ci95": pytest.approx(t / 3),
                     "n": 3, "raters": 3}
    assert "bradley_terry" not in report and "correlations" not in report


def test_html_and_csv_written(tmp_path):
    trials, ratings = acr_study()
    metrics = {"bicubic": {"psnr_y": 30.1, "lpips": 0.30}, "rdsr": {"psnr_y": 32.0, "lpips": 0.20},
               "safmn": {"psnr_y": 32.3, "lpips": 0.12}}
    report = write_report(tmp_path, trials, ratings, design="acr", html_out=tmp_path / "report.html",
                          csv_out=tmp_path / "ratings.csv", metrics=metrics)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "srlab MOS report" in page
    assert page.count('<g class="bar"') == 3 and 'data-label="safmn"' in page
    assert page.count("<svg") == 3  # the MOS bars, psnr_y vs MOS, lpips vs MOS
    assert "attention check" in page
    rows = list(csv.DictReader((tmp_path / "ratings.csv").open()))
    assert len(rows) == 18 and {r["rater"] for r in rows} == {"r1", "r2", "r3"}
    assert rows[0] == {"rater": "r1", "trial": "bicubic-baby", "image": "baby", "method": "bicubic", "other": "",
                       "score": "2", "winner": "", "time": "0"}
    by_metric = {c["metric"]: c for c in report["correlations"]}
    assert by_metric["psnr_y"]["n"] == 3 and by_metric["psnr_y"]["against"] == "mos"
    assert by_metric["psnr_y"]["spearman"] == pytest.approx(1.0)
    assert by_metric["lpips"]["kendall"] == pytest.approx(-1.0)


def test_pair_report_has_bradley_terry(tmp_path):
    # A beats B 3 times of 4 (rater choices below): scores +-log(3)/2, intervals 1.96 sqrt(1/3).
    trial = Trial("p1", "baby", "A", other="B")
    ratings = [Rating(f"r{k}", trial, winner=w) for k, w in enumerate("AABA")]
    report = write_report(tmp_path, [trial], ratings, design="pair", json_out=tmp_path / "r.json",
                          html_out=tmp_path / "r.html", metrics={"A": {"psnr_y": 30.0}, "B": {"psnr_y": 29.0}})
    bt = {m["name"]: m for m in report["bradley_terry"]["methods"]}
    assert bt["A"]["score"] == pytest.approx(math.log(3) / 2)
    assert bt["B"]["ci95"] == pytest.approx(Z95 / math.sqrt(3))
    assert (bt["A"]["wins"], bt["A"]["comparisons"]) == (3, 4)
    assert not report["bradley_terry"]["regularised"]
    assert report["methods"][0] == {"name": "A", "mos": None, "ci95": None, "n": 4, "wins": 3}
    assert report["images"] == [{"method": "A", "image": "baby", "wins": 3, "n": 4},
                                {"method": "B", "image": "baby", "wins": 1, "n": 4}]
    assert report["correlations"][0]["against"] == "bradley_terry" and report["correlations"][0]["pearson"] is None
    assert "Bradley-Terry" in (tmp_path / "r.html").read_text()


def test_pair_method_not_compared_yet_has_no_score(tmp_path):
    ab, bc = Trial("ab", "baby", "A", other="B"), Trial("bc", "baby", "B", other="C")
    ratings = [Rating(f"r{k}", ab, winner=w) for k, w in enumerate("AABA")]  # nobody reached trial bc yet
    report = write_report(tmp_path, [ab, bc], ratings, design="pair", html_out=tmp_path / "r.html")
    scores = {m["name"]: m["score"] for m in report["bradley_terry"]["methods"]}
    assert scores == {"A": pytest.approx(math.log(3) / 2), "B": pytest.approx(-math.log(3) / 2), "C": None}
    assert (tmp_path / "r.html").read_text().count('<g class="bar"') == 2


def test_no_ratings_is_a_one_line_error(tmp_path):
    with pytest.raises(SrlabError, match="has no ratings yet: share the rater link"):
        write_report(tmp_path, [Trial("t", "baby", "A")], [], design="acr", json_out=tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_an_output_that_is_a_folder_is_refused(tmp_path):
    trials, ratings = acr_study()
    with pytest.raises(SrlabError, match=r"report output '.*' is a folder: give a file name"):
        write_report(tmp_path, trials, ratings, design="acr", json_out=tmp_path)


def test_pair_study_without_pairs_is_refused(tmp_path):
    trial = Trial("t", "baby", "A")
    with pytest.raises(SrlabError, match="trial 't' of a pair study has no second method"):
        write_report(tmp_path, [trial], [Rating("r", trial, score=3)], design="pair")


def test_all_raters_excluded_is_a_valid_empty_report(tmp_path):
    trials, ratings = acr_study()
    lazy_only = [r for r in ratings if r.rater == "lazy"]
    report = write_report(tmp_path, trials, lazy_only, design="acr", html_out=tmp_path / "r.html")
    assert [(m["mos"], m["n"]) for m in report["methods"]] == [(None, 0)] * 3
    assert "<svg" not in (tmp_path / "r.html").read_text()


def test_read_metric_results_from_eval_and_benchmark(tmp_path):
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({"results": [
        {"dataset": "study", "scale": 4, "model": "rdsr", "psnr_y": 32.0, "ssim_y": 0.9, "lpips": 0.2,
         "images": [{"name": "baby", "psnr_y": 33.0, "ssim_y": 0.91, "lpips": 0.18}]},
    ]}))
    assert read_metric_results(eval_json) == {"rdsr": {"psnr_y": 32.0, "ssim_y": 0.9, "lpips": 0.2}}
    bench = tmp_path / "results.json"
    rows = [{"model": m, "scale": 4, "dataset": d, "params": 1000, "latency_ms": 3.0, "psnr_y": p, "ssim_y": 0.8,
             "per_image": []}
            for m, d, p in (("rdsr", "Set5", 32.0), ("rdsr", "Set14", 28.0), ("bicubic", "Set5", 28.4))]
    bench.write_text(json.dumps({"score_keys": ["psnr_y", "ssim_y"], "results": rows}))
    assert read_metric_results(bench, dataset="Set5") == {"rdsr": {"psnr_y": 32.0, "ssim_y": 0.8},
                                                          "bicubic": {"psnr_y": 28.4, "ssim_y": 0.8}}
    with pytest.raises(SrlabError, match=r"hold rdsr on several data sets or scales \(Set5 x4, Set14 x4\)"):
        read_metric_results(bench)
    with pytest.raises(SrlabError, match="no results for data set Urban100 and scale None"):
        read_metric_results(bench, dataset="Urban100")


def test_read_metric_results_refuses_a_bad_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(SrlabError, match=r"metric results '.*m.json' cannot be read .*srlab eval --json"):
        read_metric_results(path)
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(SrlabError, match="no list of results with a model each"):
        read_metric_results(path)


def test_bars_rise_from_the_bottom_of_the_mos_range_with_their_interval():
    # Plot area y 40..360 for 5..1: a MOS of 3 is at y 200, its bar 160 px high from y 360; 3 +- 0.5 spans 160..240.
    svg = bars_svg([Mark("a", 0.0, 3.0, 0.5), Mark("b", 0.0, 4.5)], title="MOS", y_label="MOS", y_range=(1.0, 5.0))
    first = svg[svg.index('data-label="a"'):svg.index('data-label="b"')]
    assert 'y="200.0" width="60.0" height="160.0"' in first
    assert '<line class="error" x1="205.0" y1="160.0" x2="205.0" y2="240.0"' in first
    assert "error" not in svg[svg.index('data-label="b"'):]


def test_xy_points_carry_their_error_bars():
    svg = xy_svg([Mark("a", 30.0, 3.0, 0.4), Mark("b", 32.0, 4.0, None)], title="t", x_label="psnr_y", y_label="MOS")
    assert svg.count('<g class="point"') == 2 and svg.count('class="error"') == 1
    assert '<text class="axis-label"' in svg and ">psnr_y</text>" in svg
