"""``srlab.report.tradeoff``: a knob sweep gives one point per knob value plus the full path (and static
references), the MACs follow the routing, the full path is scored under the method's own protocol, the
files (JSON list, meta, CSV, SVG curves, HTML) agree, and bad input fails before any work. No timing is
asserted beyond "measured" (speed lives in bench/)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest
import torch

from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared, write_folder
from srlab.adaptive import adaptive_for, build_adaptive
from srlab.adaptive.reference import GradientRoutes
from srlab.errors import SrlabError
from srlab.models.create import create_model
from srlab.models.registry import build_model
from srlab.report.plots import Curve, Point, curves_svg
from srlab.report.tradeoff import load_static, run_tradeoff

ISSUE_KEYS = {"knob", "psnr_y", "ssim_y", "macs_spent", "macs_full", "latency_ms", "latency_full_ms"}
FAST = {"threads": 1, "repeats": 1, "warmup": 0, "log": None}
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("tradeoff")
    return write_folder(root / "photos", {"astronaut": ("astronaut", (96, 72)), "coffee": ("coffee", (96, 72))})


def light_and_heavy():
    torch.manual_seed(0)
    light = build_model("fsrcnn_etds", scale=2, args={"d": 8, "s": 4, "m": 1}).eval()
    heavy = build_model("fsrcnn_etds", scale=2, args={"d": 16, "s": 8, "m": 2}).eval()
    return light, heavy


def groups(path, cls: str) -> list[ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def test_a_sweep_writes_one_point_per_knob_and_the_full_path(photos, tmp_path):
    light, heavy = light_and_heavy()
    method = GradientRoutes(light, heavy, threshold=0.05)
    out = tmp_path / "report"
    result = run_tradeoff(heavy, method, [photos], out, **FAST)

    points = json.loads((out / "tradeoff.json").read_text())
    assert isinstance(points, list) and points == [p.to_json() for p in result.points]
    assert all(ISSUE_KEYS <= set(p) for p in points)
    swept, full = points[:-1], points[-1]
    assert [p["knob"] for p in swept] == list(GradientRoutes.knob_sweep)  # cheap to expensive
    macs = [p["macs_spent"] for p in swept]
    assert macs == sorted(macs) and macs[0] < macs[-1]  # a lower threshold sends more patches heavy
    assert swept[-1]["routes"] == {"route 0": 0, "route 1": swept[-1]["routes"]["route 1"]}  # threshold 0: all heavy
    # The full path is scored under the method's patch protocol: threshold 0 computes exactly it.
    assert full["full_path"] and full["knob"] is None
    assert (full["psnr_y"], full["ssim_y"], full["macs_spent"]) == (swept[-1]["psnr_y"], swept[-1]["ssim_y"], macs[-1])
    assert {p["macs_full"] for p in points} == {full["macs_spent"]}
    assert all(p["latency_ms"] > 0 for p in points)
    assert {p["latency_full_ms"] for p in points} == {full["latency_ms"]}  # timed side by side, once

    meta = json.loads((out / "tradeoff_meta.json").read_text())
    assert meta["threads"] == 1 and meta["torch"] == torch.__version__ and meta["cpu"]
    assert meta["knob_name"] == "threshold" and meta["latency_images"] == {"photos": 2}
    with open(out / "tradeoff.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["psnr_y"]) for r in rows] == [p["psnr_y"] for p in points]
    assert [r["full_path"] for r in rows] == ["False"] * len(swept) + ["True"]

    for name in ("psnr_vs_macs.svg", "psnr_vs_latency.svg"):
        curves = groups(out / name, "curve")
        assert [c.get("data-model") for c in curves] == ["fsrcnn_etds (GradientRoutes)"]
        assert len([m for m in curves[0].iter(f"{SVG}circle") if m.get("class") == "marker"]) == len(swept)
        assert [g.get("data-model") for g in groups(out / name, "point")] == ["fsrcnn_etds full path"]
    page = (out / "index.html").read_text()
    assert 'src="psnr_vs_macs.svg"' in page and 'src="psnr_vs_latency.svg"' in page
    assert page.count("<tr><td>") == len(points)


def test_a_method_without_a_knob_is_one_point_beside_static_references(photos, tmp_path):
    light, heavy = light_and_heavy()
    method = build_adaptive("static", heavy)
    out = tmp_path / "report"
    points = run_tradeoff(heavy, method, [photos], out, statics=[("light", light)], **FAST).points
    assert [(p.knob, p.full_path, p.static, p.model) for p in points] == [
        (None, False, False, "fsrcnn_etds"), (None, True, False, "fsrcnn_etds"), (None, False, True, "light"),
    ]
    one, full, static = points
    assert (one.psnr_y, one.macs_spent) == (full.psnr_y, full.macs_spent)  # one route: the full path itself
    assert static.method is None and 0 < static.macs_spent == static.macs_full < full.macs_spent
    assert static.latency_full_ms == static.latency_ms > 0
    references = groups(out / "psnr_vs_macs.svg", "point")
    assert [g.get("data-model") for g in references] == ["fsrcnn_etds full path", "light"]


def test_several_data_sets_get_their_own_plots(photos, tmp_path):
    other = write_folder(tmp_path / "other", {"chelsea": ("chelsea", (60, 48))})
    light, heavy = light_and_heavy()
    method = GradientRoutes(light, heavy, threshold=0.05)
    out = tmp_path / "report"
    points = run_tradeoff(heavy, method, [photos, other], out, knobs=[0.1, 0.0], latency_images=1, **FAST).points
    assert [p.dataset for p in points] == ["photos"] * 3 + ["other"] * 3
    assert sorted(p.name for p in out.glob("*.svg")) == [
        "psnr_vs_latency_other.svg", "psnr_vs_latency_photos.svg", "psnr_vs_macs_other.svg", "psnr_vs_macs_photos.svg",
    ]
    assert json.loads((out / "tradeoff_meta.json").read_text())["latency_images"] == {"photos": 1, "other": 1}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"knobs": [0.1, 3.0]}, "threshold of adaptive method GradientRoutes must be a number in [0.0, 2.0], got 3.0"),
    ({"latency_images": 0}, "--latency_images must be >= 1, got 0"),
])
def test_bad_settings_fail_before_any_work(photos, tmp_path, kwargs, message):
    light, heavy = light_and_heavy()
    out = tmp_path / "report"
    with pytest.raises(SrlabError, match=re.escape(message)):
        run_tradeoff(heavy, GradientRoutes(light, heavy, threshold=0.05), [photos], out, **FAST, **kwargs)
    assert not out.exists()


def test_bad_inputs_are_one_line_errors(photos, tmp_path):
    light, heavy = light_and_heavy()
    static = build_adaptive("static", heavy)
    with pytest.raises(SrlabError, match="adaptive method static has no knob: drop --knobs"):
        run_tradeoff(heavy, static, [photos], tmp_path / "a", knobs=[1.0], **FAST)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(SrlabError, match="--out '.*file' is a file: give a folder"):
        run_tradeoff(heavy, static, [photos], afile, **FAST)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "results.json").write_text("{}")
    (bench / "index.html").write_text("<html></html>")
    with pytest.raises(SrlabError, match="holds a `srlab benchmark` report, whose index.html this would replace"):
        run_tradeoff(heavy, static, [photos], bench, **FAST)
    assert sorted(p.name for p in bench.iterdir()) == ["index.html", "results.json"]
    x3 = build_model("fsrcnn_etds", scale=3, args={"d": 8, "s": 4, "m": 1}).eval()
    with pytest.raises(SrlabError, match="--static small is x3, not x2 like --model"):
        run_tradeoff(heavy, static, [photos], tmp_path / "b", statics=[("small", x3)], **FAST)
    with pytest.raises(SrlabError, match="--static expects NAME or NAME:CHECKPOINT"):
        load_static(":weights.pth", 2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_curves_are_lines_through_their_markers_and_references_are_points_named_in_a_legend():
    curves = [
        Curve("a (arm)", (0.0, 0.0, 1.0, 2.0), (30.0, 30.0, 31.0, 31.5), ("eta=0.1", "eta=0.3", "eta=1", "eta=3")),
        Curve("b (pcsr)", (0.5, 1.5), (30.5, 31.2), ("k=2", "k=0")),
    ]
    reference = Point("static <net>", 2.5, 31.6, None)
    root = ET.fromstring(curves_svg(curves, [reference], title="t", x_label="x", y_label="y"))
    found = [g for g in root.iter(f"{SVG}g") if g.get("class") == "curve"]
    assert [g.get("data-model") for g in found] == ["a (arm)", "b (pcsr)"]
    markers = [float(m.get("cx")) for m in found[0].iter(f"{SVG}circle") if m.get("class") == "marker"]
    assert markers[0] == markers[1] < markers[2] < markers[3]  # linear x: 0 sits on the axis
    polyline = found[0].find(f"{SVG}polyline").get("points").split()
    assert len(polyline) == 4
    labels = [t.text for t in found[0].iter(f"{SVG}text") if t.get("class") == "marker-label"]
    assert labels == ["eta=0.1", "eta=1", "eta=3"]  # the second marker sits on the first: named once
    points = [g for g in root.iter(f"{SVG}g") if g.get("class") == "point"]
    assert [g.get("data-model") for g in points] == ["static <net>"]
    legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend-label"]
    assert legend == ["a (arm)", "b (pcsr)", "static <net>"]


ARM = OFFICIAL_WEIGHTS / "arm" / "arm-fsrcnn.pth"
FSRCNN = OFFICIAL_WEIGHTS / "etds-fsrcnn" / "FSRCNN_x4.pth"
SET5 = BENCHMARKS / "Set5" / "HR"


@needs_shared(ARM, FSRCNN, SET5)
def test_arm_fsrcnn_on_two_set5_images(tmp_path):
    data = tmp_path / "Set5_two"
    data.mkdir()
    for name in ("baby.png", "bird.png"):
        shutil.copy(SET5 / name, data / name)
    model = create_model("arm_fsrcnn", scale=4, checkpoint=ARM).eval()
    method = adaptive_for(model, checkpoint=ARM)
    out = tmp_path / "report"
    static = load_static(f"fsrcnn_etds:{FSRCNN}", 4)
    points = run_tradeoff(model, method, [data], out, statics=[static], latency_images=1, **FAST).points
    written = json.loads((out / "tradeoff.json").read_text())
    assert all(ISSUE_KEYS <= set(p) for p in written)
    swept = [p for p in points if not (p.full_path or p.static)]
    assert [p.knob for p in swept] == list(method.knob_sweep)
    macs = [p.macs_spent for p in swept]
    assert macs == sorted(macs) and macs[0] < macs[-1] <= swept[0].macs_full
    assert all(p.latency_ms > 0 and p.latency_full_ms > 0 for p in points)
    full = next(p for p in points if p.full_path)
    assert full.macs_spent == full.macs_full == swept[0].macs_full  # every patch on the full width
    assert full.psnr_y > swept[0].psnr_y
    for name in ("psnr_vs_macs.svg", "psnr_vs_latency.svg"):
        assert [g.get("data-model") for g in groups(out / name, "curve")] == ["arm_fsrcnn (arm)"]
        assert [g.get("data-model") for g in groups(out / name, "point")] == ["arm_fsrcnn full path", "fsrcnn_etds"]
