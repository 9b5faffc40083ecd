"""``srlab degrade``: LR images and their δ, byte for byte the same for a seed; the exit-code contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import BENCHMARKS, needs_benchmarks, photo, run_cli
from srlab.data.datasets import modcrop
from srlab.data.degrade import apply_ops
from srlab.data.io import read_rgb


@pytest.fixture()
def hr_folder(tmp_path) -> Path:
    folder = tmp_path / "hr"
    folder.mkdir()
    Image.fromarray(photo("chelsea", (66, 50))).save(folder / "cat.png")
    Image.fromarray(photo("astronaut", (48, 48))).save(folder / "astronaut.png")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("preset", ["realesrgan", "bsrgan"])
def test_same_seed_same_bytes_and_the_json_replays_the_image(hr_folder, tmp_path, capsys, preset):
    runs = []
    for name in ("a", "b"):
        code, out, err = run_cli(capsys, "degrade", hr_folder, "-o", tmp_path / name, "--scale", 4,
                                 "--preset", preset, "--seed", 5)
        assert (code, err) == (0, "") and out.count(" -> ") == 2
        runs.append(_files(tmp_path / name))
    assert runs[0] == runs[1] and sorted(runs[0]) == ["astronaut.json", "astronaut.png", "cat.json", "cat.png"]

    record = json.loads(runs[0]["cat.json"])
    assert record["seed"] == 5 and record["degradation"] == {"preset": preset} and record["hr_size"] == [48, 64]
    hr = modcrop(read_rgb(hr_folder / "cat.png"), 4)
    lr = read_rgb(tmp_path / "a" / "cat.png")
    assert lr.shape == (3, 12, 16) and torch.equal(apply_ops(hr, record["ops"]), lr)

    code, _, _ = run_cli(capsys, "degrade", hr_folder, "-o", tmp_path / "c", "--scale", 4, "--preset", preset,
                         "--seed", 6)
    assert code == 0 and _files(tmp_path / "c")["cat.png"] != runs[0]["cat.png"]


@needs_benchmarks
def test_noise_sigma_is_the_benchmark_lr_image_plus_that_noise(tmp_path, capsys):
    """The issue's example: Set14-style LR test images with sigma=15 Gaussian noise."""
    code, _, err = run_cli(capsys, "degrade", BENCHMARKS / "Set5" / "HR" / "bird.png", "-o", tmp_path,
                           "--scale", 4, "--noise-sigma", 15)
    assert (code, err) == (0, "")
    noisy, clean = read_rgb(tmp_path / "bird.png"), read_rgb(BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "birdx4.png")
    inner = (clean > 0.15) & (clean < 0.85)  # away from clamping
    assert abs((noisy - clean)[inner].std().item() * 255 - 15) < 0.6
    record = json.loads((tmp_path / "bird.json").read_text())
    assert [e["op"] for e in record["ops"]] == ["resize", "gaussian_noise"] and record["ops"][1]["sigma"] == 15.0


def test_steps_file(hr_folder, tmp_path, capsys):
    steps = tmp_path / "steps.yaml"
    steps.write_text("- {step: blur, kernel: iso, sigma: 1.2, size: 9}\n- {step: downscale, method: area}\n"
                     "- {step: jpeg, quality: 40}\n")
    code, _, err = run_cli(capsys, "degrade", hr_folder / "cat.png", "-o", tmp_path / "out", "--scale", 2,
                           "--steps", steps)
    assert (code, err) == (0, "")
    ops = json.loads((tmp_path / "out" / "cat.json").read_text())["ops"]
    assert ops == [{"op": "blur", "kernel": {"type": "gaussian", "size": 9, "sigma_x": 1.2}},
                   {"op": "resize", "size": [25, 33], "method": "area"}, {"op": "jpeg", "quality": 40}]


def test_a_bad_image_is_reported_and_the_others_written(hr_folder, tmp_path, capsys):
    (hr_folder / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "degrade", hr_folder, "-o", tmp_path / "out", "--scale", 2)
    assert code == 1 and out.count(" -> ") == 2
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"srlab: error: cannot read image '{hr_folder / 'broken.png'}'")
    assert lines[1] == "srlab: 1 of 3 images failed"
    assert (tmp_path / "out" / "cat.png").is_file() and not (tmp_path / "out" / "broken.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--preset", "realesrgan2"], "argument --preset: invalid choice: 'realesrgan2'"),
    (["--preset", "bsrgan", "--noise-sigma", "15"], "argument --noise_sigma/--noise-sigma: not allowed with argument --preset"),
    (["--steps", "missing.yaml"], "steps file 'missing.yaml' does not exist"),
    (["--scale", "0"], "argument --scale: must be a positive number, got '0'"),
])
def test_bad_flags_exit_2_in_one_line(hr_folder, tmp_path, capsys, argv, message):
    base = ["degrade", hr_folder, "-o", tmp_path / "out"]
    code, out, err = run_cli(capsys, *base, *(["--scale", "2"] if "--scale" not in argv else []), *argv)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_refuses_to_write_into_the_input_folder(hr_folder, capsys):
    code, _, err = run_cli(capsys, "degrade", hr_folder, "-o", hr_folder, "--scale", 2)
    assert code == 2 and "is the input folder" in err and "inputs are never overwritten" in err
    assert sorted(p.name for p in hr_folder.iterdir()) == ["astronaut.png", "cat.png"]


def test_eval_reads_a_degraded_lr_folder(hr_folder, tmp_path, capsys):
    lr_dir = tmp_path / "noisy_x2"
    code, _, err = run_cli(capsys, "degrade", hr_folder, "-o", lr_dir, "--scale", 2, "--noise-sigma", 10, "--seed", 1)
    assert (code, err) == (0, "")
    report = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "eval", "--model", "bicubic", "--scale", 2, "--data", hr_folder,
                             "--lr_dir", lr_dir, "--json", report, "--quiet")
    assert (code, err) == (0, "") and "hr/noisy_x2" in out
    result = json.loads(report.read_text())["results"][0]
    assert result["dataset"] == "hr/noisy_x2" and len(result["images"]) == 2
    # the score is that of the degraded LR images, not of bicubic downscaling: noise costs dB
    code, out, _ = run_cli(capsys, "eval", "--model", "bicubic", "--scale", 2, "--data", hr_folder,
                           "--json", tmp_path / "clean.json", "--quiet")
    clean = json.loads((tmp_path / "clean.json").read_text())["results"][0]
    assert result["psnr_y"] < clean["psnr_y"] - 0.5  # measured 25.20 vs 25.91


@pytest.mark.parametrize(("extra", "message"), [
    (["--lr_dir", "missing"], "srlab: error: LR folder 'missing' does not exist or is not a folder: check --lr_dir"),
    (["--lr_dir", "a", "--lr_dir", "b"], "srlab: error: give --lr_dir once per --data (in the same order): 1 --data, 2 --lr_dir"),
])
def test_eval_lr_dir_mistakes_are_one_line(hr_folder, capsys, monkeypatch, tmp_path, extra, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "eval", "--model", "bicubic", "--scale", 2, "--data", hr_folder, *extra)
    assert code == 2 and err.strip() == message


def test_eval_lr_dir_missing_an_image_is_one_line(hr_folder, tmp_path, capsys):
    lr_dir = tmp_path / "partial"
    lr_dir.mkdir()
    Image.fromarray(photo("chelsea", (33, 25))).save(lr_dir / "cat.png")
    code, _, err = run_cli(capsys, "eval", "--model", "bicubic", "--scale", 2, "--data", hr_folder, "--lr_dir", lr_dir)
    assert code == 2 and err.strip() == (
        f"srlab: error: no LR image for '{hr_folder / 'astronaut.png'}' in '{lr_dir}' (expected astronaut"
        "x2.png or astronaut.png): add it, or give the LR folder that matches the HR images")
