"""``srlab.report.run_benchmark``: weights per model and scale, the numbers it writes (JSON, CSV, Markdown)
checked against independent computations, the crops, and one-line errors.

Models: bicubic (no weights), rdsr_s (bundled weights) and espcn_etds, which srlab ships no weights for,
given as tiny random checkpoints (srlab.models.weights.save_weights), on small real photographs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from conftest import photo, write_folder
from srlab.data.datasets import discover_pairs
from srlab.errors import SrlabError
from srlab.inference.evaluate import evaluate_folder
from srlab.models import paper_parameter_count
from srlab.models.weights import save_weights
from srlab.profile import count_macs
from srlab.models.complexity import lr_size_for_720p
from srlab.report import CropSpec, load_benchmark_model, run_benchmark
from srlab.report.benchmark import auto_crop

MODELS = ["bicubic", "rdsr_s", "espcn_etds"]
SCALES = [2, 4]
TINY = {"channels": 8, "mid_channels": 4}


def tiny_checkpoint(path: Path, scale: int, seed: int = 0) -> Path:
    torch.manual_seed(seed + scale)
    save_weights(path, srlab.create_model("espcn_etds", scale=scale, args=TINY))
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    set_a = write_folder(root / "setA", {
        "astronaut": ("astronaut", (72, 60)), "coffee": ("coffee", (72, 60)), "rocket": ("rocket", (72, 60)),
    })
    set_b = write_folder(root / "setB", {"chelsea": ("chelsea", (60, 48)), "hubble": ("hubble_deep_field", (60, 48))})
    checkpoints = [tiny_checkpoint(root / f"espcn_x{s}.safetensors", s) for s in SCALES]
    out = root / "report"
    result = run_benchmark(
        MODELS, [set_a, set_b], SCALES, out, checkpoints={"espcn_etds": checkpoints},
        threads=1, repeats=1, warmup=0, latency_lr_size=(16, 16), images=2, progress=False, log=None,
    )
    return {"root": root, "out": out, "result": result, "data": [set_a, set_b], "checkpoints": checkpoints}


def test_results_json_covers_models_scales_sets(report):
    data = json.loads((report["out"] / "results.json").read_text())
    assert data["models"] == MODELS and data["scales"] == SCALES and data["datasets"] == ["setA", "setB"]
    rows = data["results"]
    assert len(rows) == len(MODELS) * len(SCALES) * 2
    assert {(r["model"], r["scale"], r["dataset"]) for r in rows} == {
        (m, s, d) for m in MODELS for s in SCALES for d in ("setA", "setB")
    }
    for row in rows:
        for key in ("params", "macs_720p", "latency_ms", "psnr_y", "ssim_y"):
            assert row[key] is not None, key
        assert row["latency_threads"] == 1 and row["latency_ms"] > 0
        # the set mean is the mean of the per-image values
        assert row["psnr_y"] == pytest.approx(np.mean([i["psnr_y"] for i in row["per_image"]]), abs=1e-9)
        assert row["images"] == len(row["per_image"]) == (3 if row["dataset"] == "setA" else 2)
    assert data["meta"]["latency_threads"] == 1 and data["meta"]["latency_device"] == "cpu"


def test_profile_numbers_match_independent_counts(report):
    data = json.loads((report["out"] / "results.json").read_text())
    for row in data["results"]:
        scale = row["scale"]
        args = TINY if row["model"] == "espcn_etds" else {}
        fresh = srlab.create_model(row["model"], scale=scale, args=args)
        assert row["params"] == paper_parameter_count(fresh)
        assert row["macs_720p"] == count_macs(srlab.deploy(fresh), lr_size_for_720p(scale))
    by_key = {(r["model"], r["scale"]): r for r in data["results"]}
    assert by_key["rdsr_s", 2]["params"] == 136_012 and by_key["rdsr_s", 4]["params"] == 146_416  # README table
    assert by_key["bicubic", 2]["params"] == 0 and by_key["bicubic", 2]["macs_720p"] == 0


def test_scores_match_a_direct_evaluation(report):
    """Each model's set means equal evaluate_folder on the same weights (checkpoint read back again)."""
    data = json.loads((report["out"] / "results.json").read_text())
    rows = {(r["model"], r["scale"], r["dataset"]): r for r in data["results"]}
    set_a = report["data"][0]
    for scale, path in zip(SCALES, report["checkpoints"]):
        model = srlab.create_model(checkpoint=path)
        direct = evaluate_folder(model, discover_pairs(set_a, scale))
        assert rows["espcn_etds", scale, "setA"]["psnr_y"] == pytest.approx(direct.psnr_y, abs=1e-9)
        assert rows["espcn_etds", scale, "setA"]["weights"] == str(path)
    for scale in SCALES:
        bicubic = rows["bicubic", scale, "setA"]
        assert rows["rdsr_s", scale, "setA"]["psnr_y"] > bicubic["psnr_y"] + 0.3  # bundled weights at work
        assert rows["espcn_etds", scale, "setA"]["psnr_y"] < bicubic["psnr_y"] - 5  # random weights
        assert rows["rdsr_s", scale, "setA"]["weights"] == "bundled"


def test_csv_has_the_same_numbers(report):
    data = json.loads((report["out"] / "results.json").read_text())
    with open(report["out"] / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(data["results"])
    for row, ref in zip(rows, data["results"]):
        assert (row["model"], int(row["scale"]), row["dataset"]) == (ref["model"], ref["scale"], ref["dataset"])
        assert int(row["params"]) == ref["params"] and int(row["macs_720p"]) == ref["macs_720p"]
        for key in ("latency_ms", "psnr_y", "ssim_y"):
            assert float(row[key]) == ref[key], key  # repr round-trips exactly


def test_markdown_table_in_the_papers_layout(report):
    text = (report["out"] / "results.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["Scale", "Model", "Params (K)", "MACs (G, 720p)", "Latency (ms)", "setA", "setB"]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert len(body) == len(MODELS) * len(SCALES)  # one row per model, per scale blocks
    assert [row[0] for row in body] == ["x2", "", "", "x4", "", ""]
    assert [row[1] for row in body] == MODELS * 2
    data = json.loads((report["out"] / "results.json").read_text())
    rows = {(r["model"], r["scale"], r["dataset"]): r for r in data["results"]}
    for index, row in enumerate(body):
        scale = SCALES[index // len(MODELS)]
        for cell, dataset in zip(row[5:], ("setA", "setB")):
            assert re.fullmatch(r"\d+\.\d\d/\d\.\d{4}", cell), cell
            ref = rows[row[1], scale, dataset]
            assert cell == f"{ref['psnr_y']:.2f}/{ref['ssim_y']:.4f}"
    assert body[1][2] == "136" and body[4][2] == "146"  # rdsr_s parameters in K
    assert "1 thread(s)" in text


def test_crops_and_their_psnr(report):
    result = report["result"]
    data = json.loads((report["out"] / "results.json").read_text())
    per_image = {
        (r["model"], r["scale"], i["name"]): i["psnr_y"] for r in data["results"] if r["dataset"] == "setA"
        for i in r["per_image"]
    }
    assert len(result.comparisons) == 2 * len(SCALES)  # first 2 images of the first set, every scale
    for comparison in result.comparisons:
        assert comparison.image in ("astronaut", "coffee") and comparison.dataset == "setA"
        assert [p.label for p in comparison.panels] == ["HR", "bicubic", "rdsr_s", "espcn_etds"]
        sizes = set()
        for panel in comparison.panels:
            with Image.open(report["out"] / panel.path) as im:
                sizes.add(im.size)
            if panel.label != "HR":
                # the caption's PSNR is the evaluation's per-image PSNR of that image
                assert panel.psnr == pytest.approx(per_image[panel.label, comparison.scale, comparison.image], abs=1e-9)
        assert len(sizes) == 1  # same zoomed crop size side by side
        top, left, side = comparison.crop
        with Image.open(report["out"] / comparison.overview) as im:
            assert top + side <= im.size[1] and left + side <= im.size[0]
        assert (report["out"] / comparison.strip).is_file()
    assert not list(report["out"].rglob(".*.tmp*"))  # atomic writes leave no temporaries


def test_auto_crop_finds_the_textured_region():
    image = torch.full((3, 96, 96), 0.5)
    image[:, :, 48:] = torch.from_numpy(photo("coffee", (48, 96)).copy()).permute(2, 0, 1) / 255  # right half
    top, left, side = auto_crop(image, 2)
    assert side == 96 // 5 and left >= 44 and left + side <= 96 - 2 and top + side <= 96 - 2


def test_explicit_crop(tmp_path, report):
    out = tmp_path / "r"
    result = run_benchmark(
        ["bicubic"], [report["data"][1]], [2], out, crops=[CropSpec("hubble", 10, 4, 20)],
        threads=1, repeats=1, warmup=0, latency_lr_size=(8, 8), progress=False, log=None,
    )
    (comparison,) = result.comparisons
    assert comparison.image == "hubble" and comparison.crop == (4, 10, 20)
    with pytest.raises(SrlabError, match=r"--crop hubble:50,4,20 leaves the image .*X \+ SIZE <= 60"):
        run_benchmark(["bicubic"], [report["data"][1]], [2], tmp_path / "r2", crops=[CropSpec("hubble", 50, 4, 20)],
                      threads=1, repeats=1, warmup=0, latency_lr_size=(8, 8), progress=False, log=None)
    with pytest.raises(SrlabError, match="no image named 'nope'"):
        run_benchmark(["bicubic"], [report["data"][1]], [2], tmp_path / "r3", crops=[CropSpec("nope", 0, 0, 8)],
                      threads=1, repeats=1, warmup=0, progress=False, log=None)


def test_weights_selection(tmp_path, report):
    x2, x4 = report["checkpoints"]
    # srlab checkpoints record their scale: each serves its own
    model, weights = load_benchmark_model("espcn_etds", 4, checkpoints=[x2, x4])
    assert weights == str(x4) and srlab.models.registry.spec_of(model).scale == 4
    # a checkpoint that records no scale (an official .pth) serves every scale it loads into strictly:
    # CARN-M's multi-scale network holds all three upsampling branches
    torch.manual_seed(0)
    carn = srlab.create_model("carn_m", scale=2)
    multi = tmp_path / "carn_m.pth"
    torch.save(carn.state_dict(), multi)
    for scale in (2, 3, 4):
        model, weights = load_benchmark_model("carn_m", scale, checkpoints=[multi])
        assert weights == str(multi) and srlab.models.registry.spec_of(model).scale == scale
    # bundled and no weights
    assert load_benchmark_model("rdsr_s", 3)[1] == "bundled"
    assert load_benchmark_model("bicubic", 3)[1] == "none (no parameters)"


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_errors_name_the_fix(tmp_path, report):
    x2, _ = report["checkpoints"]
    with pytest.raises(SrlabError) as e:
        load_benchmark_model("espcn_etds", 4, checkpoints=[x2])
    assert f"--checkpoint espcn_etds={x2} holds espcn_etds x2, not x4" in one_line(e)
    assert "drop 4 from --scales" in str(e.value)
    with pytest.raises(SrlabError) as e:
        load_benchmark_model("espcn_etds", 2)
    assert "pass --checkpoint espcn_etds=FILE" in one_line(e)
    with pytest.raises(SrlabError) as e:
        load_benchmark_model("fsrcnn_etds", 2, checkpoints=[x2])
    assert "holds model 'espcn_etds', not 'fsrcnn_etds'" in one_line(e)
    pth = tmp_path / "espcn_x2.pth"
    torch.save(srlab.create_model("espcn_etds", scale=2).state_dict(), pth)
    with pytest.raises(SrlabError) as e:
        load_benchmark_model("espcn_etds", 3, checkpoints=[pth])
    assert "no --checkpoint given for espcn_etds loads at x3" in one_line(e)
    with pytest.raises(SrlabError) as e:
        load_benchmark_model("rdsr_s", 2, args={"channels": 16})
    assert "drop --model_arg rdsr_s:... or pass --checkpoint rdsr_s=FILE" in one_line(e)
    with pytest.raises(SrlabError) as e:
        load_benchmark_model("no_such_model", 2)
    assert "no_such_model" in one_line(e)
    # checked before the long part: nothing is written
    out = tmp_path / "never"
    with pytest.raises(SrlabError, match="pass --checkpoint espcn_etds=FILE"):
        run_benchmark(["bicubic", "espcn_etds"], report["data"], [2], out, progress=False, log=None)
    assert not out.exists()
    with pytest.raises(SrlabError, match=r"metric 'niqe' needs --metric_weights niqe=PATH \(NIQE's modelparameters"):
        run_benchmark(["bicubic"], report["data"], [2], out, metrics=["niqe"], progress=False, log=None)
    assert not out.exists()
    with pytest.raises(SrlabError, match="not in --models"):
        run_benchmark(["bicubic"], report["data"], [2], out, checkpoints={"espcn_etds": [x2]}, progress=False, log=None)
    with pytest.raises(SrlabError, match="does not exist"):
        run_benchmark(["bicubic"], [tmp_path / "missing"], [2], out, progress=False, log=None)
