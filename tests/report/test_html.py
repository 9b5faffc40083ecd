"""``index.html`` of a benchmark report: it references only files inside the report folder (no network),
holds the results table, the plots and the visual comparisons with their PSNR captions; a slow test
renders it in a real headless browser (chromium) and checks that every image displayed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from conftest import write_folder
from srlab.models.weights import save_weights
from srlab.report import run_benchmark

MODELS = ["bicubic", "rdsr_s", "espcn_etds"]
SCALES = [2, 4]


class PageParser(HTMLParser):
    """Collects every URL-bearing attribute, the images, the table cells and the figure captions."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.captions: list[str] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._in_table = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for key in ("src", "href", "data", "srcset", "poster"):
            if attributes.get(key):
                self.urls.append((tag, attributes[key]))
        if tag == "img":
            self.images.append({k: v or "" for k, v in attributes.items()})
        if tag == "table":
            self.tables.append([])
            self._in_table = True
        if tag == "tr" and self._in_table:
            self.tables[-1].append([])
        if tag in ("td", "th") and self._in_table:
            self._cell = []
        if tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._in_table = False
        if tag == "figcaption" and self._caption is not None:
            self.captions.append(" ".join("".join(self._caption).split()))
            self._caption = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data + " ")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    set_a = write_folder(root / "data" / "setA", {"astronaut": ("astronaut", (72, 60)), "coffee": ("coffee", (72, 60))})
    set_b = write_folder(root / "data" / "setB", {"chelsea": ("chelsea", (60, 48))})
    checkpoints = []
    for scale in SCALES:
        torch.manual_seed(scale)
        path = root / f"espcn_x{scale}.safetensors"
        save_weights(path, srlab.create_model("espcn_etds", scale=scale, args={"channels": 8, "mid_channels": 4}))
        checkpoints.append(path)
    out = root / "report"
    result = run_benchmark(
        MODELS, [set_a, set_b], SCALES, out, checkpoints={"espcn_etds": checkpoints}, images=1,
        threads=1, repeats=1, warmup=0, latency_lr_size=(16, 16), progress=False, log=None,
    )
    page = PageParser()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    return {"out": out, "result": result, "page": page}


def test_only_local_files_that_exist(report):
    out, page = report["out"], report["page"]
    text = (out / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", text)  # opens offline: nothing fetched
    assert page.urls
    for tag, url in page.urls:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I) and not url.startswith(("/", "//")), (tag, url)
        target = (out / url).resolve()
        assert target.is_file(), url
        assert out.resolve() in target.parents  # inside the report folder
    assert {"results.json", "results.csv", "results.md"} <= {url for tag, url in page.urls if tag == "a"}


def test_table_matches_results(report):
    page, out = report["page"], report["out"]
    (table,) = page.tables
    header, body = table[0], table[1:]
    assert header == ["Scale", "Model", "Params (K)", "MACs (G, 720p)", "Latency (ms)", "setA", "setB"]
    assert [row[1] for row in body] == MODELS * len(SCALES)
    markdown = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in (out / "results.md").read_text().splitlines()[2:] if line.startswith("|")
    ]
    assert body == markdown  # the same cells as results.md


def test_plots_and_comparisons_present(report):
    page, result = report["page"], report["result"]
    sources = [image["src"] for image in page.images]
    for plot in result.plots:
        assert plot.path in sources
    assert len(result.plots) == 3 * len(SCALES) * 2
    assert len(result.comparisons) == len(SCALES)  # first image of the first set, each scale
    data = json.loads((report["out"] / "results.json").read_text())
    per_image = {
        (r["model"], r["scale"]): {i["name"]: i for i in r["per_image"]} for r in data["results"] if r["dataset"] == "setA"
    }
    for comparison in result.comparisons:
        assert comparison.overview in sources
        for panel in comparison.panels:
            assert panel.path in sources
            with Image.open(report["out"] / panel.path) as im:
                assert im.size[0] >= 150  # zoomed
            if panel.label == "HR":
                continue
            scores = per_image[panel.label, comparison.scale][comparison.image]
            caption = f"{panel.label} {scores['psnr_y']:.2f} dB / {scores['ssim_y']:.4f}"
            assert caption in page.captions, (caption, page.captions)
    assert len(page.images) == len(result.plots) + sum(len(c.panels) + 1 for c in result.comparisons)
    assert all(image.get("alt") for image in page.images)


def find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
@pytest.mark.skipif(find_browser() is None, reason="no chromium / google-chrome binary (apt-get install chromium)")
def test_renders_in_a_headless_browser(report, tmp_path):
    browser = find_browser()
    url = (report["out"] / "index.html").resolve().as_uri()
    common = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "page.png"
    subprocess.run([*common, "--window-size=1400,2000", f"--screenshot={shot}", url], check=True, capture_output=True, timeout=120)
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size == (1400, 2000)
        pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20  # not blank
    assert (pixels.min(-1) < 100).mean() > 0.005  # text, axes, pictures drawn
    assert ((pixels[..., 0] > 150) & (pixels[..., 1] < 80)).sum() > 50  # red (best scores, crop outlines)
    dom = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    expected = len(report["page"].images)
    # the page's script sets the title once loaded: every <img> complete with a natural width
    assert f"[{expected}/{expected} images loaded]" in dom
    assert '<table class="results">' in dom and "rdsr_s" in dom
