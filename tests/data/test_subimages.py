"""The ClassSR sub-image protocol: crop positions, extraction, the reference PSNR and the class split, in
the library and through ``srlab data subimages`` / ``srlab data classsr-split``."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from conftest import photo, run_cli
from srlab.data.io import read_rgb
from srlab.data.resize import bicubic_downscale
from srlab.data.subimages import (
    CLASSSR_THRESHOLDS, crop_origins, difficulty_class, extract_subimages, reference_psnr, split_by_difficulty,
)
from srlab.errors import SrlabError
from srlab.metrics.psnr import psnr


def test_crop_origins_follow_the_official_script():
    assert crop_origins(300, 128, 64, 48) == [0, 64, 128]  # 44 pixels left over: no extra crop
    assert crop_origins(310, 128, 64, 48) == [0, 64, 128, 182]  # 54 > 48: one more, flush with the border
    assert crop_origins(128, 128, 64, 48) == [0]
    assert crop_origins(100, 128, 64, 48) == []
    # a DIV2K LR width at x4 (510): 14 > 12 pixels remain past 464 + 32, so one more crop at 478
    assert crop_origins(510, 32, 16, 12) == [*range(0, 465, 16), 478]


def test_extract_writes_the_official_names_and_pixels(tmp_path):
    src = tmp_path / "hr"
    src.mkdir()
    Image.fromarray(photo("astronaut", (310, 300))).save(src / "0001.png")
    Image.fromarray(photo("coffee", (100, 100))).save(src / "0002.png")
    report = extract_subimages(src, tmp_path / "sub")
    assert report.written == 3 * 4 and report.skipped == ("0002.png",)
    names = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert names == [f"0001_s{i:03d}.png" for i in range(1, 13)]
    whole = read_rgb(src / "0001.png")
    # s008: row 2 (top 64), column 4 (left 182)
    assert torch.equal(read_rgb(tmp_path / "sub" / "0001_s008.png"), whole[:, 64:192, 182:310])


def test_classes_follow_the_official_thresholds():
    low, high = CLASSSR_THRESHOLDS
    assert (low, high) == (27.16882, 35.149761)
    assert difficulty_class(low - 1e-6) == 3 and difficulty_class(low) == 2
    assert difficulty_class(high - 1e-6) == 2 and difficulty_class(high) == 1
    assert difficulty_class(30.0, (31.0, 32.0)) == 3


def test_reference_psnr_is_rgb_8bit_with_a_border_of_scale():
    hr = read_rgb_like(photo("chelsea", (66, 50)))
    model = srlab.create_model("bicubic", scale=2).eval()
    lr = bicubic_downscale(hr[:, :50, :66], 2, quantize=True)
    with torch.no_grad():
        sr = torch.round(model(lr[None])[0].clamp(0, 1) * 255) / 255
    expected = float(psnr(sr.double(), hr.double(), crop_border=2))
    assert reference_psnr(model, hr, 2) == pytest.approx(expected, abs=1e-9)


def read_rgb_like(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255


def _flat_and_noisy(folder):
    folder.mkdir()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(folder / "flat.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "noise.png")
    Image.fromarray(photo("astronaut", (32, 32))).save(folder / "photo.png")


def test_split_copies_each_sub_image_into_its_class(tmp_path):
    _flat_and_noisy(tmp_path / "sub")
    model = srlab.create_model("bicubic", scale=4).eval()
    report = split_by_difficulty(tmp_path / "sub", tmp_path / "classes", model=model, scale=4)
    assert report.psnr["flat.png"] == float("inf") and report.psnr["noise.png"] < 12
    assert (tmp_path / "classes" / "class1" / "flat.png").read_bytes() == (tmp_path / "sub" / "flat.png").read_bytes()
    assert (tmp_path / "classes" / "class3" / "noise.png").is_file()
    assert sum(report.counts) == 3 and report.counts[0] >= 1 and report.counts[2] >= 1
    rows = list(csv.DictReader((tmp_path / "classes" / "psnr.csv").open()))
    assert [r["name"] for r in rows] == ["flat.png", "noise.png", "photo.png"]
    assert {r["name"]: int(r["class"]) for r in rows}["noise.png"] == 3


def test_split_refuses_to_write_into_its_input(tmp_path):
    _flat_and_noisy(tmp_path / "sub")
    with pytest.raises(SrlabError, match="is the input folder: give another --out"):
        split_by_difficulty(tmp_path / "sub", tmp_path / "sub", model=srlab.create_model("bicubic", scale=4), scale=4)


def test_the_cli_extracts_and_splits(tmp_path, capsys):
    src = tmp_path / "hr"
    src.mkdir()
    Image.fromarray(photo("astronaut", (64, 64))).save(src / "a.png")
    code, out, _ = run_cli(capsys, "data", "subimages", "--hr", src, "--out", tmp_path / "sub", "--crop", "32",
                           "--step", "16", "--min-rest", "4")
    assert code == 0 and "wrote 9 sub-images" in out
    code, out, _ = run_cli(capsys, "data", "classsr-split", "--hr", tmp_path / "sub", "--out", tmp_path / "classes",
                           "--scale", "4", "--model", "bicubic", "--thresholds", "20", "30")
    assert code == 0 and out.startswith("class1 (simple) ")
    assert sum(len(list((tmp_path / "classes" / f"class{k}").iterdir())) for k in (1, 2, 3)) == 9


def test_the_cli_names_a_missing_folder(tmp_path, capsys):
    code, _, err = run_cli(capsys, "data", "classsr-split", "--hr", tmp_path / "none", "--out", tmp_path / "o",
                           "--scale", "4", "--model", "bicubic")
    assert code != 0 and "is not a folder of images" in err and len(err.strip().splitlines()) == 1


def test_a_corrupt_image_is_reported_and_the_others_processed(tmp_path, capsys):
    _flat_and_noisy(tmp_path / "sub")
    (tmp_path / "sub" / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "data", "classsr-split", "--hr", tmp_path / "sub", "--out", tmp_path / "classes",
                             "--scale", "4", "--model", "bicubic")
    assert code == 1 and "broken.png" in err and len(err.strip().splitlines()) == 1
    assert sum(len(list((tmp_path / "classes" / f"class{k}").iterdir())) for k in (1, 2, 3)) == 3
    code, out, err = run_cli(capsys, "data", "subimages", "--hr", tmp_path / "sub", "--out", tmp_path / "crops",
                             "--crop", "16", "--step", "16")
    assert code == 1 and "broken.png" in err and "wrote 12 sub-images" in out
