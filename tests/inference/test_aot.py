"""Compiled paths paid once (srlab.inference.aot): a package per input shape kept in $SRLAB_HOME, loaded by
later processes without tracing; anything that cannot be packaged runs on torch.compile instead."""

import os

import pytest
import torch
from PIL import Image

from srlab import create_model
from srlab.cli.main import main
from srlab.errors import SrlabError
from srlab.inference import aot as aot_module
from srlab.inference import path_cache as path_cache_module
from srlab.inference.aot import AotCompiled, package_file
from srlab.inference.path_cache import PathCache
from srlab.inference.paths import FP32_MAX_ABS_DIFF, PATHS, PathModel, build_path, unavailable_reason

CPU = torch.device("cpu")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("espcn", scale=2).eval()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SRLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _aot_of(run) -> AotCompiled:
    return next(c.cell_contents for c in run.__closure__ if isinstance(c.cell_contents, AotCompiled))


def _no_export(*args, **kwargs):
    raise RuntimeError("cannot capture this model")


@pytest.mark.slow
def test_a_package_is_built_once_and_loaded_without_tracing(monkeypatch):
    # ESPCN: its in-graph MATLAB bicubic upscaling of Cb/Cr and YCbCr conversions export too
    model = create_model("espcn", scale=2).eval()
    if reason := unavailable_reason(PATHS["compile"], model, CPU, "fp32"):
        pytest.skip(reason)
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(x)
        first = build_path(PATHS["compile"], model)(x)
        package = package_file(model, "compile", (1, 3, 20, 28))
        assert package.is_file()
        os.utime(package, (1e9, 1e9))
        monkeypatch.setattr(torch.export, "export", _no_export)  # a later process: loads, never exports
        run = build_path(PATHS["compile"], model)
        again = run(x)
    assert _aot_of(run).fallback is None
    assert package.stat().st_mtime > 1e9  # the load marked it used: the last to go when the folder is trimmed
    assert torch.equal(first, again) and (again - eager).abs().max().item() <= FP32_MAX_ABS_DIFF


def test_what_cannot_be_packaged_runs_on_torch_compile(model, home, monkeypatch):
    monkeypatch.setattr(torch.export, "export", _no_export)
    monkeypatch.setattr(torch, "compile", lambda net, **kwargs: net)
    run = build_path(PATHS["compile"], model)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert (run(x) - model(x)).abs().max().item() <= FP32_MAX_ABS_DIFF
    assert _aot_of(run).fallback == "RuntimeError: cannot capture this model"
    assert not list(home.rglob("*.pt2")) and not list(home.rglob("*.tmp*"))  # nothing half-written left


def test_the_package_key_follows_weights_path_shape_and_threads(model):
    shape = (1, 3, 20, 28)
    same = package_file(model, "compile", shape)
    torch.manual_seed(0)
    assert package_file(create_model("espcn", scale=2).eval(), "compile", shape) == same  # the same weights
    assert package_file(model, "bf16_compile", shape) != same
    assert package_file(model, "compile", (1, 3, 20, 30)) != same
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert package_file(model, "compile", shape) != same  # the kernels hold their thread count
    finally:
        torch.set_num_threads(threads)
    other = create_model("espcn", scale=2).eval()
    with torch.no_grad():
        other.load_state_dict(model.state_dict())
        next(other.parameters()).add_(1e-3)
    assert package_file(other, "compile", shape) != same


def test_a_change_to_the_code_keys_new_packages_and_path_choices(model, monkeypatch):
    shape = (1, 3, 20, 28)
    package, choice = package_file(model, "compile", shape), PathCache().key(model, shape, "fp32", CPU)
    monkeypatch.setattr(aot_module, "code_fingerprint", lambda: "edited")
    monkeypatch.setattr(path_cache_module, "code_fingerprint", lambda: "edited")
    assert package_file(model, "compile", shape) != package
    assert PathCache().key(model, shape, "fp32", CPU) != choice


def test_auto_tries_a_compiled_path_whose_package_is_on_disk(model, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda net, **kwargs: net)
    monkeypatch.setattr(aot_module, "_build", _no_export)  # the damaged package below is not rebuilt here
    shape = (1, 3, 20, 28)
    skipped = {c.path: c.skipped for c in PathModel(model, precision="fp32").selection(shape).candidates}
    assert skipped["compile"].startswith("eager takes ")  # a tiny input: not worth a compile
    file = package_file(model, "compile", shape)
    file.parent.mkdir(parents=True)
    file.write_bytes(b"not a package")  # loading it fails: torch.compile runs instead, and is checked
    tried = next(c for c in PathModel(model, precision="fp32").selection(shape).candidates if c.path == "compile")
    assert tried.skipped is None and tried.check.startswith("max |diff|")


def test_the_folder_is_trimmed_to_its_limit_least_recently_used_first(home, monkeypatch):
    folder = home / "compiled"
    folder.mkdir(parents=True)
    packages = {}
    for age, name in enumerate(("newest", "middle", "oldest", "just_built")):
        packages[name] = folder / f"{name}.pt2"
        packages[name].write_bytes(b"x" * 400)
        os.utime(packages[name], (1e9 - 1000 * age, 1e9 - 1000 * age))  # just_built the oldest mtime: kept anyway
    (folder / "notes.txt").write_bytes(b"x" * 4000)  # not a package: never counted or removed
    monkeypatch.setenv("SRLAB_COMPILED_CACHE_GB", str(900 / 1e9))
    removed = aot_module.trim_packages(keep=packages["just_built"], limit=aot_module.cache_limit_bytes())
    assert removed == [packages["oldest"], packages["middle"]]
    assert sorted(p.name for p in folder.iterdir()) == ["just_built.pt2", "newest.pt2", "notes.txt"]


@pytest.mark.parametrize("value", ["-1", "0", "lots"])
def test_a_bad_cache_limit_is_a_one_line_error(value, model, monkeypatch):
    monkeypatch.setenv("SRLAB_COMPILED_CACHE_GB", value)
    monkeypatch.setattr(torch.export, "export", _no_export)
    run = build_path(PATHS["compile"], model)
    with pytest.raises(SrlabError, match=r"SRLAB_COMPILED_CACHE_GB=.* is not a size: give the compiled packages' limit in GB"):
        run(torch.rand(1, 3, 20, 28))


def test_a_bad_cache_limit_stops_upscale_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SRLAB_COMPILED_CACHE_GB", "lots")
    image = tmp_path / "in.png"
    Image.new("RGB", (16, 12)).save(image)
    assert main(["upscale", str(image), "--scale", "2", "--model", "rdsr_s", "-o", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SRLAB_COMPILED_CACHE_GB='lots' is not a size" in err[0]
