"""``srlab.report.plots``: the SVG documents parse as XML, hold one labelled point (box) per model, put
the points where the log-x / linear-y axes say, size bubbles by latency; and the report's plot files."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import srlab
from conftest import write_folder
from srlab.models.weights import save_weights
from srlab.report import run_benchmark
from srlab.report.plots import MAX_RADIUS, Point, Series, box_svg, scatter_svg, series_svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == cls]


def texts(root: ET.Element, cls: str) -> list[str]:
    return [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == cls]


def tick_positions(root: ET.Element) -> dict[str, float]:
    """x of each x-axis tick label (those under the plot, text-anchor middle)."""
    found = {}
    for t in root.iter("{http://www.w3.org/2000/svg}text"):
        if t.get("class") == "tick" and t.get("text-anchor") == "middle":
            found[t.text] = float(t.get("x"))
    return found


POINTS = [
    Point("bicubic", 0.0, 28.4, 1.0),
    Point("espcn", 1.4, 30.0, 4.0),
    Point("rdsr_s", 8.2, 31.9, 16.0),
    Point("imdn & co <x>", 40.9, 32.2, 64.0),
]


def test_scatter_points_axes_and_bubbles():
    root = parse(scatter_svg(POINTS, title="Set5 x4", x_label="MACs (G)", y_label="PSNR (dB)"))
    points = groups(root, "point")
    assert [g.get("data-model") for g in points] == ["imdn & co <x>", "rdsr_s", "espcn", "bicubic"]  # big first
    assert texts(root, "axis-label") == ["MACs (G)", "PSNR (dB)"]
    assert sorted(texts(root, "point-label")) == sorted(p.label for p in POINTS)
    bubble = {g.get("data-model"): g.findall("svg:circle", NS)[0] for g in points}
    radius = {k: float(c.get("r")) for k, c in bubble.items()}
    # area proportional to latency: r^2 ratios are the latency ratios
    assert radius["imdn & co <x>"] == pytest.approx(MAX_RADIUS, abs=0.01)
    assert (radius["rdsr_s"] / radius["imdn & co <x>"]) ** 2 == pytest.approx(16 / 64, rel=1e-3)
    assert (radius["espcn"] / radius["rdsr_s"]) ** 2 == pytest.approx(4 / 16, rel=1e-2)
    # log x axis: equal ratios are equal distances; the ticks agree with the points
    ticks = tick_positions(root)
    decade = ticks["20"] - ticks["2"]
    assert ticks["50"] - ticks["5"] == pytest.approx(decade, abs=0.2)
    assert ticks["5"] - ticks["2"] == pytest.approx(ticks["50"] - ticks["20"], abs=0.2)
    x = {k: float(c.get("cx")) for k, c in bubble.items()}
    for name, value in (("rdsr_s", 8.2), ("espcn", 1.4), ("imdn & co <x>", 40.9)):
        assert x[name] == pytest.approx(ticks["10"] + (math.log10(value) - 1) * decade, abs=0.2)
    # the zero-cost model sits hollow at the left end, at the "0" tick
    assert bubble["bicubic"].get("fill") == "none" and x["bicubic"] == pytest.approx(ticks["0"], abs=0.2)
    assert x["bicubic"] < min(x["espcn"], x["rdsr_s"])
    # linear y axis: higher PSNR is higher up, proportionally
    y = {k: float(c.get("cy")) for k, c in bubble.items()}
    assert (y["espcn"] - y["rdsr_s"]) / (y["rdsr_s"] - y["imdn & co <x>"]) == pytest.approx(1.9 / 0.3, rel=1e-2)


def test_box_plot_quartiles():
    values = {"a": [30.0, 31.0, 32.0, 33.0, 34.0], "b": [20.0, 25.0, 26.0, 27.0]}
    root = parse(box_svg(list(values.items()), title="per image", y_label="PSNR (dB)"))
    boxes = groups(root, "box")
    assert [b.get("data-model") for b in boxes] == ["a", "b"]
    assert texts(root, "axis-label") == ["model", "PSNR (dB)"]
    # recover the y mapping from two y tick labels, then check each box's median and quartiles
    y_ticks = [(float(t.text), float(t.get("y")) - 4) for t in root.iter("{http://www.w3.org/2000/svg}text")
               if t.get("class") == "tick" and t.get("text-anchor") == "end"]
    (v0, y0), (v1, y1) = y_ticks[0], y_ticks[-1]

    def value_at(y: float) -> float:
        return v0 + (y - y0) * (v1 - v0) / (y1 - y0)

    for box in boxes:
        data = np.asarray(values[box.get("data-model")])
        median = next(line for line in box.findall("svg:line", NS) if line.get("class") == "median")
        assert value_at(float(median.get("y1"))) == pytest.approx(np.median(data), abs=0.05)
        rect = box.find("svg:rect", NS)
        top, bottom = float(rect.get("y")), float(rect.get("y")) + float(rect.get("height"))
        q1, q3 = np.percentile(data, [25, 75])
        assert value_at(top) == pytest.approx(q3, abs=0.05) and value_at(bottom) == pytest.approx(q1, abs=0.05)
        samples = [c for c in box.findall("svg:circle", NS) if c.get("class") == "sample"]
        assert len(samples) == len(data)


def test_report_svgs(tmp_path):
    data = write_folder(tmp_path / "setA", {"astronaut": ("astronaut", (48, 48)), "coffee": ("coffee", (48, 48))})
    torch.manual_seed(0)
    checkpoint = tmp_path / "espcn_x2.safetensors"
    save_weights(checkpoint, srlab.create_model("espcn_etds", scale=2, args={"channels": 8, "mid_channels": 4}))
    models = ["bicubic", "rdsr_s", "espcn_etds"]
    result = run_benchmark(
        models, [data], [2], tmp_path / "report", checkpoints={"espcn_etds": [checkpoint]}, images=0,
        threads=1, repeats=1, warmup=0, latency_lr_size=(12, 12), progress=False, log=None,
    )
    files = sorted(p.name for p in (tmp_path / "report" / "plots").iterdir())
    assert files == ["psnr_per_image_x2_setA.svg", "psnr_vs_macs_x2_setA.svg", "psnr_vs_params_x2_setA.svg"]
    psnr = {e.model: e.results["setA"].psnr_y for e in result.entries}
    for name in files:
        root = parse((tmp_path / "report" / "plots" / name).read_text())
        kind = "box" if "per_image" in name else "point"
        assert sorted(g.get("data-model") for g in groups(root, kind)) == sorted(models)  # one per model
        labels = texts(root, "axis-label")
        assert len(labels) == 2 and "PSNR" in labels[1]
        expected = {"psnr_vs_macs": "MACs", "psnr_vs_params": "parameters", "psnr_per_image": "model"}
        assert re.match(expected[name.rsplit("_x2", 1)[0]], labels[0])
        if kind == "point":
            y = {g.get("data-model"): float(g.find("svg:circle", NS).get("cy")) for g in groups(root, kind)}
            assert y["rdsr_s"] < y["bicubic"] < y["espcn_etds"]  # SVG y grows downwards
            assert psnr["rdsr_s"] > psnr["bicubic"] > psnr["espcn_etds"]


def test_series_svg_lines_legend_markers_and_tick_digits():
    many = Series("loss_l1", tuple(float(i) for i in range(100)), tuple(1.0 / (i + 1) for i in range(100)))
    few = Series("loss_gan", (0.0, 50.0, math.nan), (0.5, 0.25, 0.1))
    root = parse(series_svg([many, few], title="t", x_label="iteration", y_label="loss"))
    lines = groups(root, "series")
    assert [g.get("data-series") for g in lines] == ["loss_l1", "loss_gan"]
    points = [len(g.find("svg:polyline", NS).get("points").split()) for g in lines]
    assert points == [100, 2]  # the NaN point is left out
    # A marker per point only for a short series; a legend entry per line.
    assert [len(g.findall("svg:circle", NS)) for g in lines] == [0, 2]
    legends = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "legend"]
    assert len(legends) == 1 and float(legends[0].get("y")) < 100  # falling lines: the upper corner is free
    single = parse(series_svg([Series("lr", (0.0, 10.0), (2.5e-4, 5e-4))], title="t", x_label="i", y_label="lr"))
    assert not [r for r in single.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "legend"]
    ticks = [t.text for t in single.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "tick"]
    assert "0.00025" in ticks or "0.0003" in ticks
    assert all(t != "0.00" for t in ticks)  # a fixed 2-decimal format would flatten the learning rate
