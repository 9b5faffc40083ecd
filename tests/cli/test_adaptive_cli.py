"""``--adaptive`` / ``--knob`` in eval, upscale, profile and benchmark, with the released adaptive weights."""

import json
import re
import shutil

import pytest

import srlab
from srlab.adaptive import build_adaptive
from srlab.data.datasets import discover_pairs
from srlab.inference.evaluate import evaluate_folder
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared, run_cli

ARM_FSRCNN = OFFICIAL_WEIGHTS / "arm" / "arm-fsrcnn.pth"
PCSR_FSRCNN = OFFICIAL_WEIGHTS / "pcsr" / "fsrcnn-pcsr-phase1_iter_last.pth"
SET5 = BENCHMARKS / "Set5"
pytestmark = needs_shared(ARM_FSRCNN, PCSR_FSRCNN, SET5)


@pytest.fixture()
def two_images(tmp_path):
    """Two Set5 HR images (the LR made by srlab's MATLAB bicubic): a fast data set."""
    folder = tmp_path / "two" / "HR"
    folder.mkdir(parents=True)
    for name in ("bird", "butterfly"):
        shutil.copy(SET5 / "HR" / f"{name}.png", folder)
    return folder.parent


def test_eval_reports_macs_spent_and_full_and_the_knob_trades_them(capsys, tmp_path, two_images):
    spent = []
    for knob in ("0.1", "1000"):
        out = tmp_path / f"arm_{knob}.json"
        code, stdout, _ = run_cli(capsys, "eval", "--model", "arm_fsrcnn", "--scale", "4", "--checkpoint", ARM_FSRCNN,
                                  "--data", two_images, "--knob", knob, "--json", out, "--quiet")
        assert code == 0 and f"arm eta={float(knob):g}:" in stdout
        result = json.loads(out.read_text())["results"][0]
        assert result["adaptive"]["method"] == "arm" and result["adaptive"]["unit"] == "patch"
        assert 0 <= result["macs_spent"] <= result["macs_full"]  # bicubic costs no MACs by convention
        assert {"macs_spent", "macs_full", "routes"} <= set(result["images"][0])
        spent.append(result["macs_spent"] / result["macs_full"])
    assert spent[0] < spent[1]


def test_eval_of_pcsr_scores_the_official_patch_test_and_adaptive_off_the_per_image_one(capsys, tmp_path, two_images):
    model = srlab.create_model("pcsr_fsrcnn", scale=4, checkpoint=PCSR_FSRCNN).eval()
    folder = discover_pairs(two_images, 4)
    out = tmp_path / "pcsr.json"
    code, _, _ = run_cli(capsys, "eval", "--model", "pcsr_fsrcnn", "--scale", "4", "--checkpoint", PCSR_FSRCNN,
                         "--data", two_images, "--json", out, "--quiet")
    result = json.loads(out.read_text())["results"][0]
    assert code == 0 and result["adaptive"]["knob"] == 0.0 and set(result["adaptive"]["routes"]) == {"light", "heavy"}
    patches = evaluate_folder(model, folder, adaptive=build_adaptive("pcsr", model))
    assert result["psnr_y"] == pytest.approx(patches.psnr_y, abs=1e-9)
    code, _, _ = run_cli(capsys, "eval", "--model", "pcsr_fsrcnn", "--scale", "4", "--checkpoint", PCSR_FSRCNN,
                         "--data", two_images, "--adaptive", "off", "--json", tmp_path / "plain.json", "--quiet")
    plain = json.loads((tmp_path / "plain.json").read_text())["results"][0]
    assert code == 0 and "macs_spent" not in plain
    assert plain["psnr_y"] == pytest.approx(evaluate_folder(model, folder).psnr_y, abs=1e-9)
    assert abs(plain["psnr_y"] - result["psnr_y"]) > 0.01  # the two tests differ (patch borders, the crop)


def test_upscale_and_profile_report_what_the_image_took(capsys, tmp_path):
    lr = SET5 / "LR_bicubic" / "X4" / "birdx4.png"
    code, stdout, _ = run_cli(capsys, "upscale", lr, "-o", tmp_path / "out", "--model", "pcsr_fsrcnn", "--scale", "4",
                              "--checkpoint", PCSR_FSRCNN, "--knob", "1", "--tile", "40")
    assert code == 0 and "GMACs (" in stdout and (tmp_path / "out" / "birdx4_x4.png").is_file()
    code, stdout, _ = run_cli(capsys, "profile", "--model", "arm_fsrcnn", "--scale", "4", "--checkpoint", ARM_FSRCNN,
                              "--image", lr, "--repeats", "1", "--warmup", "0", "--lr_size", "16x16",
                              "--json", tmp_path / "p.json")
    profile = json.loads((tmp_path / "p.json").read_text())["adaptive"]
    assert code == 0 and "MACs spent" in stdout and sum(profile["routes"].values()) == 9  # 72x72 LR: 3x3 patches
    assert profile["macs_spent"] <= profile["macs_full"]


def test_benchmark_scores_adaptive_models_through_their_method(capsys, tmp_path, two_images):
    code, _, _ = run_cli(capsys, "benchmark", "--models", "pcsr_fsrcnn", "--checkpoint", f"pcsr_fsrcnn={PCSR_FSRCNN}",
                         "--knob", "pcsr_fsrcnn=2", "--data", two_images, "--scales", "4", "--out", tmp_path / "bm",
                         "--repeats", "1", "--warmup", "0", "--latency_size", "16x16", "--images", "0", "--quiet")
    row = json.loads((tmp_path / "bm" / "results.json").read_text())["results"][0]
    assert code == 0 and row["knob"] == 2.0 and row["macs_spent"] < row["macs_full"]
    assert "macs_spent" in (tmp_path / "bm" / "results.csv").read_text().splitlines()[0]
    assert row["adaptive_method"] == "pcsr"


def test_benchmark_scores_a_model_through_the_method_it_is_given(capsys, tmp_path, two_images):
    """``--adaptive NAME=METHOD``: another method (a static network through the patch engine) or ``off``."""
    code, _, _ = run_cli(capsys, "benchmark", "--models", "bicubic", "pcsr_fsrcnn",
                         "--checkpoint", f"pcsr_fsrcnn={PCSR_FSRCNN}", "--adaptive", "bicubic=static", "pcsr_fsrcnn=off",
                         "--data", two_images, "--scales", "4", "--out", tmp_path / "bm", "--repeats", "1",
                         "--warmup", "0", "--latency_size", "16x16", "--images", "0", "--quiet")
    rows = {row["model"]: row for row in json.loads((tmp_path / "bm" / "results.json").read_text())["results"]}
    assert code == 0 and rows["bicubic"]["adaptive_method"] == "static" and "macs_spent" not in rows["pcsr_fsrcnn"]
    folder = discover_pairs(two_images, 4)
    model = srlab.create_model("pcsr_fsrcnn", scale=4, checkpoint=PCSR_FSRCNN).eval()
    assert rows["pcsr_fsrcnn"]["psnr_y"] == pytest.approx(evaluate_folder(model, folder).psnr_y, abs=1e-9)


@pytest.mark.parametrize(("argv", "message"), [
    (["--adaptive", "bicubic=classy"], r"--adaptive bicubic=classy: unknown adaptive method; choose one of .*static"),
    (["--adaptive", "rdsr_s=static"], "--adaptive names model 'rdsr_s', which is not in --models"),
    (["--adaptive", "bicubic=static", "bicubic=off"], "--adaptive bicubic= is given 2 times"),
    (["--adaptive", "bicubic"], "--adaptive expects NAME=METHOD"),
    (["--adaptive", "bicubic=off", "--knob", "bicubic=1"], "--knob bicubic= needs adaptive inference"),
])
def test_bad_benchmark_adaptive_flags_are_one_line_errors(capsys, tmp_path, two_images, argv, message):
    code, _, stderr = run_cli(capsys, "benchmark", "--models", "bicubic", "--data", two_images, "--scales", "4",
                              "--out", tmp_path / "bm", "--quiet", *argv)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert re.search(message, stderr), stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "rdsr_s", "--scale", "4", "--knob", "1"], "model 'rdsr_s' is not content-adaptive and has no knob"),
    (["--model", "pcsr_fsrcnn", "--scale", "4", "--checkpoint", PCSR_FSRCNN, "--adaptive", "off", "--knob", "1"],
     "--knob needs adaptive inference: drop --adaptive off"),
    (["--model", "pcsr_fsrcnn", "--scale", "4", "--checkpoint", PCSR_FSRCNN, "--knob", "-1"],
     r"k of adaptive method PcsrRouting must be a number in \[0.0, 10.0\]"),
    (["--model", "arm_fsrcnn", "--scale", "4"], "model 'arm_fsrcnn' x4 has no weights"),
    (["--model", "pcsr_fsrcnn", "--scale", "4", "--checkpoint", PCSR_FSRCNN, "--adaptive", "arm"],
     "adaptive method arm runs ARM supernets"),
    (["--model", "pcsr_fsrcnn", "--scale", "4", "--checkpoint", PCSR_FSRCNN, "--tile", "32"],
     "adaptive inference routes whole images: drop --tile"),
    (["--model", "rdsr_s", "--scale", "4", "--adaptive", "classy"], "argument --adaptive: invalid choice: 'classy'"),
    (["--model", "rdsr_s", "--scale", "4", "--adaptive", "static", "--knob", "nan"], "argument --knob: must be a finite number"),
])
def test_bad_adaptive_flags_are_one_line_errors(capsys, two_images, argv, message):
    code, _, stderr = run_cli(capsys, "eval", "--data", two_images, "--quiet", *argv)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert re.search(message, stderr), stderr


def test_the_bundled_adaptive_rdsr_reproduces_its_measured_curve(capsys, tmp_path):
    """srlab's own adaptive network (weights bundled, router trained on the proxy photos): Set5 x4. The
    full path exactly; routed, within a few routes (the router's float predictions decide near ties)."""
    for knob, psnr, share in (("0", 30.1043, 1.0), ("0.03", 30.0701, 0.707), ("0.5", 29.4708, 0.211)):
        out = tmp_path / f"rdsr_{knob}.json"
        code, _, _ = run_cli(capsys, "eval", "--model", "rdsr_adaptive", "--scale", "4", "--data", SET5,
                             "--knob", knob, "--json", out, "--quiet")
        result = json.loads(out.read_text())["results"][0]
        assert code == 0 and result["psnr_y"] == pytest.approx(psnr, abs=1e-4 if knob == "0" else 5e-3)
        assert result["macs_spent"] / result["macs_full"] == pytest.approx(share, abs=5e-4 if knob == "0" else 5e-3)


def test_the_bundled_adaptive_rdsr_routes_at_one_rate_with_its_measured_curve(capsys, tmp_path):
    """The same weights through ``--adaptive rdsr_adaptive_rate``: Set5 x4 at two rates (knob: dB per full
    path's MACs), each cheaper than the loss budget's curve at its PSNR (test above)."""
    for knob, psnr, share in (("0.32", 30.0425, 0.607), ("1", 29.8696, 0.389)):
        out = tmp_path / f"rate_{knob}.json"
        code, _, _ = run_cli(capsys, "eval", "--model", "rdsr_adaptive", "--adaptive", "rdsr_adaptive_rate",
                             "--scale", "4", "--data", SET5, "--knob", knob, "--json", out, "--quiet")
        result = json.loads(out.read_text())["results"][0]
        assert code == 0 and result["adaptive"]["method"] == "rdsr_adaptive_rate"
        assert result["adaptive"]["knob_name"] == "rate"
        assert result["psnr_y"] == pytest.approx(psnr, abs=5e-3)
        assert result["macs_spent"] / result["macs_full"] == pytest.approx(share, abs=5e-3)


def test_upscale_and_eval_refuse_an_inference_path_for_adaptive_inference(capsys, tmp_path, two_images):
    lr = SET5 / "LR_bicubic" / "X4" / "birdx4.png"
    code, _, err = run_cli(capsys, "upscale", lr, "-o", tmp_path / "out", "--model", "pcsr_fsrcnn", "--scale", "4",
                           "--checkpoint", PCSR_FSRCNN, "--path", "bf16")
    assert code == 2 and "srlab: error: adaptive inference runs its own float32 path: drop --path bf16" in err
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, "eval", "--model", "pcsr_fsrcnn", "--scale", "4", "--checkpoint", PCSR_FSRCNN,
                           "--data", two_images, "--path", "channels_last")
    assert code == 2 and "drop --path channels_last (or use --adaptive off)" in err
