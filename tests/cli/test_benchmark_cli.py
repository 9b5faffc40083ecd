"""``srlab benchmark``: flags to report folder, and one-line errors (exit status 2)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import srlab
from conftest import run_cli, write_folder
from srlab.models.weights import save_weights


FAST = ["--threads", "1", "--repeats", "1", "--warmup", "0", "--latency_size", "16x16", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_cli")
    data = write_folder(root / "photos", {"astronaut": ("astronaut", (60, 48)), "coffee": ("coffee", (60, 48))})
    torch.manual_seed(0)
    tiny = {"channels": 8, "mid_channels": 4}
    x2 = root / "espcn_x2.safetensors"
    save_weights(x2, srlab.create_model("espcn_etds", scale=2, args=tiny))
    # an official-style .pth: a bare state dict, no record of the model, its hyper-parameters or scale
    pth = root / "espcn_x3.pth"
    torch.save(srlab.create_model("espcn_etds", scale=3, args=tiny).state_dict(), pth)
    return {"root": root, "data": data, "x2": x2, "pth": pth}


def test_report_folder(files, capsys):
    out = files["root"] / "report"
    code, stdout, stderr = run_cli(
        capsys, "benchmark", "--models", "bicubic", "rdsr_s", "espcn_etds", "--data", files["data"], "--scales", "2", "3",
        "--checkpoint", f"espcn_etds={files['x2']}", f"espcn_etds={files['pth']}",
        "--model_arg", "espcn_etds:channels=8", "espcn_etds:mid_channels=4",
        "--metrics", "psnr,ssim,gmsd", "--images", "1", "--out", out, *FAST,
    )
    assert code == 0, stderr
    for name in ("results.json", "results.csv", "results.md", "index.html"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    assert len(data["results"]) == 3 * 2
    weights = {(r["model"], r["scale"]): r["weights"] for r in data["results"]}
    assert weights["espcn_etds", 2] == str(files["x2"]) and weights["espcn_etds", 3] == str(files["pth"])
    assert weights["rdsr_s", 3] == "bundled"
    assert all("gmsd" in r and 0 <= r["gmsd"] < 1 for r in data["results"])  # extra metric joins the numbers
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["gmsd"]) for r in rows] == [r["gmsd"] for r in data["results"]]
    # the table is printed, with where the report went
    assert "| x2 | bicubic |" in stdout and "| x3 | bicubic |" in stdout and "rdsr_s" in stdout
    assert f"wrote {out / 'index.html'}" in stdout
    assert len(list((out / "plots").glob("*.svg"))) == 3 * 2
    assert len(list((out / "crops").glob("*_x3_*.png"))) == 4 + 2  # HR, 3 models; overview, strip


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "bicubic", "espcn_etds"], "has no weights"),
    (["--models", "espcn_etds", "--checkpoint", "espcn_etds=X2"], "holds espcn_etds x2, not x4"),
    (["--models", "bicubic", "--checkpoint", "espcn_etds=X2"], "not in --models"),
    (["--models", "bicubic", "--checkpoint", "X2"], "--checkpoint expects NAME=FILE"),
    (["--models", "bicubic", "--model_arg", "channels=8"], "--model_arg expects NAME:KEY=VALUE"),
    (["--models", "bicubic", "--crop", "astronaut:1,2"], "--crop expects NAME:X,Y,SIZE"),
    (["--models", "bicubic", "--metrics", "psnr,vif"], "unknown metric 'vif'"),
    (["--models", "no_such_model"], "no_such_model"),
    (["--models", "bicubic", "--scales", "0"], "must be a positive integer"),
])
def test_one_line_errors(files, capsys, argv, message):
    argv = [a.replace("X2", str(files["x2"])) for a in argv]
    out = files["root"] / "never"
    code, stdout, stderr = run_cli(capsys, "benchmark", "--data", files["data"], "--scales", "4", "--out", out, *FAST, *argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("srlab: error: ") and message in lines[0], stderr
    assert not out.exists()
