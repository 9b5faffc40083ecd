"""``srlab tradeoff``: flags to report folder, and one-line errors (exit status 2) before any work."""

from __future__ import annotations

import json

import pytest

from conftest import OFFICIAL_WEIGHTS, needs_shared, run_cli, write_folder

FAST = ["--threads", "1", "--repeats", "1", "--warmup", "0", "--quiet"]
ARM = OFFICIAL_WEIGHTS / "arm" / "arm-fsrcnn.pth"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("tradeoff_cli")
    return write_folder(root / "photos", {"astronaut": ("astronaut", (64, 48)), "coffee": ("coffee", (64, 48))})


def test_a_static_model_through_the_patch_engine(photos, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, stderr = run_cli(
        capsys, "tradeoff", "--model", "rdsr_s", "--scale", "2", "--adaptive", "static", "--data", photos,
        "--static", "bicubic", "--latency_images", "1", "--out", out, *FAST,
    )
    assert code == 0, stderr
    points = json.loads((out / "tradeoff.json").read_text())
    assert [(p["model"], p["knob"], p["full_path"], p["static"]) for p in points] == [
        ("rdsr_s", None, False, False), ("rdsr_s", None, True, False), ("bicubic", None, False, True),
    ]
    assert points[0]["psnr_y"] == points[1]["psnr_y"] > points[2]["psnr_y"]
    assert f"wrote {out / 'tradeoff.json'} and {out / 'index.html'}" in stdout
    assert "rdsr_s full path" in stdout and "bicubic" in stdout  # a line per point
    meta = json.loads((out / "tradeoff_meta.json").read_text())
    assert (meta["model"], meta["method"], meta["scale"], meta["threads"]) == ("rdsr_s", "static", 2, 1)


@pytest.mark.parametrize(("argv", "message"), [
    ([], "model 'rdsr_s' is not content-adaptive and has no knob"),
    (["--adaptive", "static", "--knobs", "1,2"], "adaptive method static has no knob: drop --knobs"),
    (["--adaptive", "static", "--knobs", "one"], "argument --knobs: must be comma-separated numbers"),
    (["--adaptive", "static", "--tile", "16"], "unrecognized arguments: --tile 16"),
    (["--adaptive", "static", "--static", "nosuchnet"], "nosuchnet"),
    (["--adaptive", "static", "--latency_images", "0"], "must be a positive integer, got '0'"),
])
def test_bad_flags_are_one_line_errors(photos, tmp_path, capsys, argv, message):
    out = tmp_path / "report"
    code, _, stderr = run_cli(
        capsys, "tradeoff", "--model", "rdsr_s", "--scale", "2", "--data", photos, "--out", out, *argv, *FAST
    )
    assert code == 2
    assert stderr.startswith("srlab: error: ") and stderr.count("\n") == 1 and message in stderr, stderr
    assert not out.exists()


def test_out_being_a_file_is_refused(photos, tmp_path, capsys):
    out = tmp_path / "report.txt"
    out.write_text("keep me")
    code, _, stderr = run_cli(
        capsys, "tradeoff", "--model", "rdsr_s", "--scale", "2", "--adaptive", "static", "--data", photos,
        "--out", out, *FAST,
    )
    assert code == 2 and stderr == f"srlab: error: --out '{out}' is a file: give a folder for the report\n"
    assert out.read_text() == "keep me"


@needs_shared(ARM)
def test_a_knob_out_of_the_methods_range_is_refused_before_any_work(photos, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, stderr = run_cli(
        capsys, "tradeoff", "--model", "arm_fsrcnn", "--checkpoint", ARM, "--scale", "4", "--data", photos,
        "--knobs", "1,5000", "--out", out, *FAST,
    )
    assert code == 2 and not out.exists()
    assert stderr == "srlab: error: eta of adaptive method ArmRouting must be a number in [0.001, 1000.0], got 5000.0\n"
