"""``srlab profile``: the table, the JSON file, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

import srlab
from conftest import run_cli
from srlab.inference import aot
from srlab.models import count_parameters, paper_parameter_count
from srlab.profile import count_activations, count_macs, macs_720p


FAST = ["--device", "cpu", "--threads", "1", "--repeats", "3", "--warmup", "1", "--lr_size", "24x32"]


@pytest.mark.parametrize(("name", "scale"), [("rdsr_s", 2), ("imdn", 4), ("bicubic", 4)])
def test_json_and_table(name, scale, tmp_path, capsys):
    out = tmp_path / "sub" / "p.json"
    code, stdout, stderr = run_cli(capsys, "profile", "--model", name, "--scale", scale, *FAST, "--json", out)
    assert code == 0, stderr
    data = json.loads(out.read_text())
    for key in ("params", "macs_720p", "macs_256", "latency_ms", "peak_memory_mb", "acts_720p", "acts_256",
                "params_total", "params_trainable", "params_deploy", "latency_iqr_ms", "threads", "device"):
        assert key in data, key
    # the model profiled is the one the flags name: bundled weights for rdsr_s, else a fresh one
    model = srlab.create_model(name, scale=scale)
    fused = srlab.deploy(model)
    assert data["params"] == paper_parameter_count(model)
    assert data["params_deploy"] == count_parameters(fused)
    assert isinstance(data["macs_720p"], int) and data["macs_720p"] == macs_720p(fused)
    assert data["macs_256"] == count_macs(fused, (256, 256))
    assert data["acts_256"] == count_activations(fused, (256, 256))
    assert data["latency_ms"] > 0 and data["latency"]["repeats"] == 3 and data["threads"] == 1
    assert data["peak_memory_mb"] > 0 and "RSS" in data["peak_memory_method"]
    assert data["lr_size"] == [24, 32] and data["device"] == "cpu"
    assert data["weights"] == ("bundled" if name == "rdsr_s" else "none (no parameters)" if name == "bicubic"
                               else "random initialisation")
    # the table states both conventions and the figures of the file
    assert f"{data['params']:,} as papers count them" in stdout
    assert f"{data['macs_720p'] / 1e9:.3f} G for a 1280x720 output" in stdout
    assert f"{data['macs_256'] / 1e9:.3f} G for a 256x256 LR input" in stdout
    assert f"median {data['latency_ms']:.2f} ms" in stdout and "1 thread(s)" in stdout
    assert f"wrote {out}" in stdout
    assert not list(out.parent.glob("*.tmp*"))  # written atomically, nothing left behind


def test_checkpoint_and_defaults(tmp_path, capsys):
    """--checkpoint names the weights; the latency size defaults to the 720p convention's LR size."""
    from srlab.models.create import bundled_weights

    ckpt = bundled_weights("rdsr_s", 4)
    out = tmp_path / "p.json"
    code, stdout, stderr = run_cli(capsys, "profile", "--checkpoint", ckpt, "--threads", "1", "--repeats", "1", "--warmup", "0",
                                   "--path", "eager", "--json", out)  # eager: the path choice is tested elsewhere
    assert code == 0, stderr
    data = json.loads(out.read_text())
    assert (data["model"], data["scale"]) == ("rdsr_s", 4)
    assert data["lr_size"] == data["lr_size_720p"] == [180, 320]
    assert "LR 180x320 HxW" in stdout
    assert data["weights"] == str(ckpt)


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "nosuchnet", "--scale", "2"], "unknown model 'nosuchnet'"),
    (["--model", "rdsr_s", "--scale", "5"], "does not support scale 5"),
    (["--model", "rdsr_s"], "no scale given"),
    (["--model", "rdsr_s", "--scale", "2", "--lr_size", "0x10"], "--lr_size"),
    (["--model", "rdsr_s", "--scale", "2", "--lr_size", "big"], "--lr_size"),
    (["--model", "rdsr_s", "--scale", "2", "--repeats", "0"], "--repeats"),
    (["--model", "rdsr_s", "--scale", "2", "--threads", "-1"], "--threads"),
])
def test_errors_are_one_line(argv, message, capsys):
    code, _, stderr = run_cli(capsys, "profile", *argv)
    assert code == 2
    assert stderr.startswith("srlab: error:") and message in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


def test_json_into_a_folder_is_refused(tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "profile", "--model", "bicubic", "--scale", "2", *FAST, "--json", tmp_path)
    assert code == 2 and "is a folder" in stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda(tmp_path, capsys):
    out = tmp_path / "p.json"
    code, _, stderr = run_cli(capsys, "profile", "--model", "rdsr_s", "--scale", "4", "--device", "cuda", "--repeats", "5",
                              "--json", out)
    assert code == 0, stderr
    data = json.loads(out.read_text())
    assert data["device"].startswith("cuda") and data["latency_ms"] > 0
    assert "max_memory_allocated" in data["peak_memory_method"] and data["peak_memory_mb"] > 10


def test_compile_threshold_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SRLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch, "compile", lambda net, **kwargs: net)  # the flag is under test, not inductor
    monkeypatch.setattr(aot, "_build", lambda *args: (_ for _ in ()).throw(RuntimeError("no package here")))
    out = tmp_path / "p.json"
    args = ["profile", "--model", "espcn", "--scale", "2", *FAST, "--path", "auto", "--precision", "fp32", "--json", out]
    for threshold, tried in (("2", False), ("0", True)):
        code, _, stderr = run_cli(capsys, *args, "--compile_from", threshold)
        assert code == 0, stderr
        compiled = next(c for c in json.loads(out.read_text())["path_selection"]["candidates"] if c["path"] == "compile")
        assert (compiled["skipped"] is None) is tried, compiled
    code, _, stderr = run_cli(capsys, *args, "--compile_from", "-1")
    assert code == 2 and "--compile_from" in stderr and "a number >= 0" in stderr and len(stderr.strip().splitlines()) == 1
