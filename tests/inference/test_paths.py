"""Inference paths (srlab.inference.paths): every path keeps the model's contract and is checked against
fp32 eager; ``auto`` chooses once per shape and caches the choice; the thread policy's decisions."""

import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import run_cli, write_folder

from srlab import create_model
from srlab.errors import SrlabError, SrlabWarning
from srlab.inference import aot as aot_module
from srlab.inference import path_cache as path_cache_module
from srlab.inference import paths as paths_module
from srlab.inference.path_cache import PathCache
from srlab.inference.paths import FP32_MAX_ABS_DIFF, PATHS, PathModel, check_path, unavailable_reason
from srlab.inference.threads import choose_threads
from srlab.inference.upscale import upscale_tensor

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("espcn", scale=2).eval()


@pytest.fixture(scope="module")
def lr():
    return torch.rand(3, 20, 28, generator=torch.Generator().manual_seed(1))


def test_fp32_paths_match_eager_through_the_tiled_path(model, lr):
    eager = upscale_tensor(model, lr)
    for path in ("eager", "channels_last"):  # compile: the slow test below
        on_path = PathModel(model, path=path)
        for tile in (None, 12):
            out = upscale_tensor(on_path, lr, tile=tile, tile_overlap=8)
            assert out.dtype == torch.float32 and out.shape == eager.shape
            assert (out - eager).abs().max().item() <= FP32_MAX_ABS_DIFF, (path, tile)
        assert on_path.selection((1, 3, 20, 28)).path == path


@pytest.mark.slow
def test_compile_with_freezing_matches_eager(model, lr):
    if reason := unavailable_reason(PATHS["compile"], model, CPU, "fp32"):
        pytest.skip(reason)
    on_path = PathModel(model, path="compile")
    out = upscale_tensor(on_path, lr)
    assert on_path.selection((1, 3, 20, 28)).path == "compile"
    assert (out - upscale_tensor(model, lr)).abs().max().item() <= FP32_MAX_ABS_DIFF


@pytest.mark.slow
def test_compiled_bf16_stays_within_bf16s_difference_to_eager(model, lr):
    if reason := unavailable_reason(PATHS["bf16_compile"], model, CPU, "auto"):
        pytest.skip(reason)
    on_path = PathModel(model, path="bf16_compile")
    out, eager = upscale_tensor(on_path, lr), upscale_tensor(model, lr)
    assert on_path.selection((1, 3, 20, 28)).path == "bf16_compile"
    assert out.dtype == torch.float32 and next(model.parameters()).dtype == torch.float32
    assert 0 < (out - eager).abs().max().item() < 0.05


def _no_package(*args, **kwargs):
    raise RuntimeError("no package in this test")


def test_auto_compiles_only_from_its_threshold(model, lr, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda net, **kwargs: net)  # the gate is under test, not inductor
    monkeypatch.setattr(aot_module, "_build", _no_package)
    cache = PathCache(tmp_path / "paths.json")
    default = PathModel(model, precision="fp32", cache=cache).selection((1, 3, 20, 28))
    skipped = next(c.skipped for c in default.candidates if c.path == "compile")
    assert skipped.startswith("eager takes ") and skipped.endswith("pays off from 2 s (--path compile forces it)")
    always = PathModel(model, precision="fp32", cache=cache, compile_from=0).selection((1, 3, 20, 28))
    tried = next(c for c in always.candidates if c.path == "compile")
    assert tried.skipped is None and tried.latency_ms > 0
    assert not always.cached  # a choice made under another threshold is not reused
    assert PathModel(model, precision="fp32", cache=cache, compile_from=0).selection((1, 3, 20, 28)).cached


def test_bf16_path_casts_at_the_boundary(model, lr):
    if reason := unavailable_reason(PATHS["bf16"], model, CPU, "auto"):
        pytest.skip(reason)
    out = upscale_tensor(PathModel(model, path="bf16"), lr)
    assert out.dtype == torch.float32
    assert next(model.parameters()).dtype == torch.float32  # the model itself is left in float32
    assert 0 < (out - upscale_tensor(model, lr)).abs().max().item() < 0.05


def test_a_compiled_path_compiles_its_boundary_casts_with_the_network(model, monkeypatch):
    """The casts in and out run inside the compiled graph: outside it, the output's change of layout (a
    3-channel channels_last image back to NCHW) was a copy of its own (10 ms of SPAN-ch28's 105 ms)."""
    compiled = []

    class Recorder:
        def __init__(self, net, original, path_name):
            compiled.append(net)
            self.net = net

        def __call__(self, x):
            return self.net(x)

    monkeypatch.setattr(paths_module, "AotCompiled", Recorder)
    run = paths_module.build_path(PATHS["bf16_compile"], model)
    out = run(torch.rand(1, 3, 10, 12))
    net = compiled[0]
    assert out.dtype == torch.float32 and out.is_contiguous()
    # the module handed to the compiler takes and returns float32 NCHW: the casts are in its graph
    seen = []
    inner = net.net
    handle = inner.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    result = net(torch.rand(1, 3, 10, 12))
    handle.remove()
    assert result.dtype == torch.float32 and result.is_contiguous()
    assert seen[0].dtype == torch.bfloat16 and seen[0].is_contiguous(memory_format=torch.channels_last)


def test_no_native_bf16_units_means_no_bf16_path(model, lr, monkeypatch):
    monkeypatch.setattr(paths_module, "cpu_has_bf16", lambda: False)  # an AMD Zen 3
    for name in ("bf16", "bf16_compile"):
        assert unavailable_reason(PATHS[name], model, CPU, "auto") == "no native bf16 units on this CPU"
    forced = PathModel(model, path="bf16")
    with pytest.warns(SrlabWarning, match=r"--path bf16 is not used for 20x28 inputs \(no native bf16 units"):
        out = upscale_tensor(forced, lr)
    assert torch.equal(out, upscale_tensor(model, lr))  # eager instead


def test_reduced_precision_needs_precision_auto_and_a_safe_model(model):
    assert unavailable_reason(PATHS["bf16"], model, CPU, "fp32") == "--precision fp32"
    assert unavailable_reason(PATHS["bf16_compile"], model, CPU, "fp32") == "--precision fp32"
    omnisr = create_model("omnisr", scale=2)
    assert "not marked half-precision safe" in unavailable_reason(PATHS["bf16"], omnisr, CPU, "auto")
    assert unavailable_reason(PATHS["fp16"], model, CPU, "auto") == "no native fp16 units on this CPU"
    with pytest.raises(SrlabError, match="--path bf16 computes in reduced precision: drop --precision fp32"):
        PathModel(model, path="bf16", precision="fp32")


def test_auto_chooses_among_checked_paths_and_records_why(model, lr, tmp_path):
    on_path = PathModel(model, precision="fp32", cache=PathCache(tmp_path / "paths.json"))
    upscale_tensor(on_path, lr)
    selection = on_path.selection((1, 3, 20, 28))
    by_name = {c.path: c for c in selection.candidates}
    assert selection.path in ("eager", "channels_last")
    assert by_name["bf16"].skipped == "--precision fp32"
    assert by_name["compile"].skipped  # a tiny input never pays for compiling
    assert by_name["channels_last"].check.startswith("max |diff|")
    assert all(by_name[name].latency_ms > 0 for name in ("eager", "channels_last"))


def test_a_path_that_fails_is_skipped_with_its_reason(model, lr, monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no inductor here")

    monkeypatch.setattr(torch.export, "export", broken_compile)  # no package: torch.compile is tried next
    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(SrlabWarning, match="--path compile is not used .*RuntimeError: no inductor here"):
        out = upscale_tensor(PathModel(model, path="compile"), lr)
    assert torch.equal(out, upscale_tensor(model, lr))


@pytest.mark.parametrize(("offset", "passes"), [(2e-3, True), (5e-2, False)])
def test_an_fp32_path_beyond_1e4_passes_where_eager_itself_is_as_far_from_float64(model, lr, monkeypatch, offset,
                                                                                    passes):
    """An ill-conditioned network (eager float32 1e-3 from float64 here): a path within rounding of that
    passes, one further off (a different function) is skipped."""
    monkeypatch.setattr(paths_module, "float64_reference", lambda net, x: net(x).double() - 1e-3)
    monkeypatch.setattr(paths_module, "build_path", lambda path, net: lambda x: net(x) + offset)
    on_path = PathModel(model, path="channels_last")
    with contextlib.nullcontext() if passes else pytest.warns(SrlabWarning, match="from float64"):
        upscale_tensor(on_path, lr)
    candidate = next(c for c in on_path.selection((1, 3, 20, 28)).candidates if c.path == "channels_last")
    assert "from float64 against eager's 1.0e-03" in candidate.check
    assert on_path.selection((1, 3, 20, 28)).path == ("channels_last" if passes else "eager")


def test_onnxruntime_path_exports_once_and_matches_eager(model, lr):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    on_path = PathModel(model, path="onnxruntime")
    eager = upscale_tensor(model, lr)
    for tile in (None, 12):  # dynamic shapes: one export serves every tile size
        out = upscale_tensor(on_path, lr, tile=tile, tile_overlap=8)
        assert (out - eager).abs().max().item() <= FP32_MAX_ABS_DIFF, tile
    assert on_path.selection((1, 3, 20, 28)).path == "onnxruntime"
    assert list(on_path._built) == ["eager", "onnxruntime"]


def test_onnxruntime_needs_its_packages(model, monkeypatch):
    real = paths_module.importlib.util.find_spec
    monkeypatch.setattr(paths_module.importlib.util, "find_spec",
                        lambda name: None if name == "onnxruntime" else real(name))
    reason = unavailable_reason(PATHS["onnxruntime"], model, CPU, "auto")
    assert reason == "needs the onnxruntime package (pip install 'srlab[deploy]')"


def test_auto_exports_only_where_eager_is_slow(model, lr):
    selection = PathModel(model, precision="fp32").selection((1, 3, 20, 28))
    skipped = next(c.skipped for c in selection.candidates if c.path == "onnxruntime")
    assert skipped.startswith("eager takes ") and "--path onnxruntime forces it" in skipped


def test_compile_needs_a_cpp_compiler(model, monkeypatch):
    monkeypatch.setattr(paths_module.shutil, "which", lambda name: None)
    assert "needs a C++ compiler" in unavailable_reason(PATHS["compile"], model, CPU, "auto")


def test_check_against_eager():
    ref = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    ok, note = check_path(PATHS["channels_last"], ref + 2e-4, ref)
    assert not ok and note.startswith("max |diff| 2.0e-04")
    assert check_path(PATHS["channels_last"], ref + 5e-5, ref)[0]
    assert not check_path(PATHS["bf16"], ref + 0.05, ref)[0]  # 26 dB against eager
    assert not check_path(PATHS["eager"], ref.clone().fill_(float("nan")), ref)[0]


def test_the_choice_is_cached_on_disk(model, lr, tmp_path, monkeypatch):
    cache = PathCache(tmp_path / "home" / "paths.json")
    first = PathModel(model, cache=cache)
    upscale_tensor(first, lr)
    chosen = first.selection((1, 3, 20, 28)).path
    saved = json.loads(cache.file.read_text())
    assert [entry["path"] for entry in saved["entries"].values()] == [chosen]

    def no_measuring(self, names, shape):
        raise AssertionError("measured again")

    monkeypatch.setattr(PathModel, "_measure", no_measuring)
    second = PathModel(model, cache=PathCache(cache.file))
    upscale_tensor(second, lr)
    assert second.selection((1, 3, 20, 28)).cached and second.selection((1, 3, 20, 28)).path == chosen


def test_the_cache_lives_in_srlab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SRLAB_HOME", str(tmp_path / "home"))
    assert PathCache().file == tmp_path / "home" / "inference_paths.json"


@pytest.mark.parametrize("content", ["{not json", '{"format": 99, "entries": {}}', "[1, 2]"])
def test_a_corrupt_cache_is_ignored_with_a_warning_and_rebuilt(model, lr, tmp_path, content):
    file = tmp_path / "paths.json"
    file.write_text(content)
    with pytest.warns(SrlabWarning, match=f"ignoring the inference path cache '{file}'"):
        upscale_tensor(PathModel(model, precision="fp32", cache=PathCache(file)), lr)
    assert len(json.loads(file.read_text())["entries"]) == 1


def test_cli_profile_reports_the_path(tmp_path, capsys):
    out = tmp_path / "profile.json"
    code, stdout, stderr = run_cli(capsys, "profile", "--model", "espcn", "--scale", "2", "--lr_size", "16x16",
                                   "--repeats", "1", "--warmup", "0", "--threads", "1", "--path", "channels_last",
                                   "--json", out)
    assert code == 0, stderr
    data = json.loads(out.read_text())
    assert data["path"] == "channels_last" and data["latency_ms"] > 0
    assert {c["path"] for c in data["path_selection"]["candidates"]} == {"eager", "channels_last"}
    assert "inference path   channels_last" in stdout


def test_cli_upscale_on_a_path_matches_eager(tmp_path, capsys):
    from srlab.data.io import read_image

    src = write_folder(tmp_path / "in", {"cat": ("chelsea", (30, 22))})
    outs = {}
    for path in ("eager", "channels_last"):
        code, _, stderr = run_cli(capsys, "upscale", src / "cat.png", "-o", tmp_path / path, "--scale", "2",
                                  "--device", "cpu", "--path", path)
        assert code == 0, stderr
        outs[path] = read_image(tmp_path / path / "cat_x2.png").rgb
    assert (outs["eager"] - outs["channels_last"]).abs().max().item() <= 1 / 255 + 1e-6


@pytest.mark.parametrize(("requested", "cpus", "busy", "ceiling", "passive", "expected"), [
    (None, 2, 1.0, 2, True, 2),  # sleeping idle threads: 2 beside a busy process never collapsed (measured)
    (None, 2, 1.0, 2, False, 1),  # spinning threads beside a busy process: one, never two on one core
    (None, 2, 0.3, 2, False, 2),  # idle machine: both cores either way
    (None, 8, 20.0, 8, False, 1),  # overloaded and spinning: still one
    (None, 16, 5.6, 16, False, 10),
    (None, 2, 0.0, 1, True, 1),  # never above torch's setting (OMP_NUM_THREADS, set_num_threads)
    (None, 2, 0.0, 64, True, 2),  # nor above the usable CPUs (affinity)
    (2, 2, 1.0, 1, False, 2),  # asked for: granted
    (8, 2, 0.0, 2, True, 2),  # but never more threads than usable CPUs
])
def test_thread_policy(requested, cpus, busy, ceiling, passive, expected):
    assert choose_threads(requested, cpus=cpus, busy=busy, ceiling=ceiling, passive=passive) == expected


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_srlab_sets_a_passive_openmp_wait_policy(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = "import srlab, os, sys; print(os.environ['OMP_WAIT_POLICY'], srlab.machine.OPENMP_PASSIVE, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == [expected, str(expected == "PASSIVE"), "True"]


def test_torch_loaded_before_srlab_counts_as_spinning_threads():
    code = "import torch, srlab; print(srlab.machine.OPENMP_PASSIVE)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False"]


def test_a_cached_choice_that_fails_now_runs_eager_with_a_warning(model, lr, tmp_path, monkeypatch):
    cache = PathCache(tmp_path / "paths.json")
    upscale_tensor(PathModel(model, path="auto", precision="fp32", cache=cache), lr)
    saved = json.loads(cache.file.read_text())
    for entry in saved["entries"].values():
        entry["path"] = "channels_last"
    cache.file.write_text(json.dumps(saved))

    def broken(path, net):
        def run(x):
            raise RuntimeError("kernel went away")
        return run

    monkeypatch.setattr(paths_module, "build_path", broken)
    with pytest.warns(SrlabWarning, match=r"the channels_last path failed \(RuntimeError: kernel went away\)"):
        out = upscale_tensor(PathModel(model, precision="fp32", cache=cache), lr)
    assert torch.equal(out, upscale_tensor(model, lr))


def test_bf16_is_judged_by_the_drop_measured_on_set5_set14(monkeypatch):
    monkeypatch.setattr(paths_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setitem(paths_module.BF16_MEASURED_DROP, "imdn", (0.0361, 0.0158))
    assert unavailable_reason(PATHS["bf16"], create_model("imdn", scale=4), CPU, "auto") == (
        "bf16 lost 0.0361 / 0.0158 dB on Set5 / Set14 x4 (limit 0.02)")
    assert unavailable_reason(PATHS["bf16"], create_model("rlfn", scale=4), CPU, "auto") is None
    # SPAN is within the budget with its attention and output convolution in float32 (float32_modules)
    assert max(paths_module.BF16_MEASURED_DROP["span_ch28"]) <= paths_module.REDUCED_MAX_DROP_DB
    assert unavailable_reason(PATHS["bf16"], create_model("span", scale=4), CPU, "auto") is None


def test_a_choice_measured_on_a_busy_machine_is_measured_again_when_it_is_quiet(model, lr, tmp_path, monkeypatch):
    cache = PathCache(tmp_path / "paths.json")
    monkeypatch.setattr(path_cache_module, "machine_load", lambda: 1.5)
    upscale_tensor(PathModel(model, precision="fp32", cache=cache), lr)
    assert [e["load"] for e in json.loads(cache.file.read_text())["entries"].values()] == [1.5]
    measured = []
    original = PathModel._measure
    monkeypatch.setattr(PathModel, "_measure", lambda self, names, shape: measured.append(shape) or original(self, names, shape))
    upscale_tensor(PathModel(model, precision="fp32", cache=PathCache(cache.file)), lr)  # still busy: cached
    assert measured == []
    monkeypatch.setattr(path_cache_module, "machine_load", lambda: 0.2)
    upscale_tensor(PathModel(model, precision="fp32", cache=PathCache(cache.file)), lr)  # quiet: measured again
    assert len(measured) == 1
    assert [e["load"] for e in json.loads(cache.file.read_text())["entries"].values()] == [0.2]
    upscale_tensor(PathModel(model, precision="fp32", cache=PathCache(cache.file)), lr)  # a quiet choice stays
    assert len(measured) == 1
