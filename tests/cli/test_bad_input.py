"""User mistakes: each gives ONE line on stderr starting ``srlab: error:`` that names the file or flag,
a non-zero exit status (2), and no traceback.

All commands run in-process through ``srlab.cli.main.main`` and fail before any long work starts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from conftest import run_cli, write_folder
from srlab.cli.main import main
from srlab.models import build_model
from srlab.models.weights import save_weights

TINY_ARGS = {"channels": 8, "num_blocks": 1}
TINY = ["--model", "rdsr_s", "--set", "model.args.channels=8", "--set", "model.args.num_blocks=1"]


def assert_user_error(capsys, argv, *mentions: str | Path, code: int = 2) -> str:
    """Run argv and check the one-line error contract; returns the error line."""
    got, _, err = run_cli(capsys, *argv)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("srlab: error:"), line
    assert got == code, (got, line)
    for mention in mentions:
        assert str(mention) in line, (mention, line)
    return line


def train_argv(train_dir, val_dir, out, *extra):
    return [
        "train", "--train_dir", train_dir, "--val_dir", val_dir, "--scale", "2", "--epochs", "1",
        "--batch_size", "4", "--patch_size", "24", *TINY, "--out", out, "--device", "cpu", "--quiet", *extra,
    ]


def corrupt_copy(source: Path, destination: Path) -> Path:
    destination.write_bytes(source.read_bytes()[:300])  # a truncated PNG
    return destination


@pytest.fixture(scope="module")
def ckpt_x2(tmp_path_factory) -> Path:
    """rdsr_s x2 weights as `srlab train` writes them (no training needed to test loading)."""
    path = tmp_path_factory.mktemp("ckpt") / "rdsr_s_x2.safetensors"
    torch.manual_seed(0)
    save_weights(path, build_model("rdsr_s", scale=2, args=TINY_ARGS))
    return path


@pytest.fixture(scope="module")
def finished_run(tiny_photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad_input_run") / "run"
    assert main([str(a) for a in train_argv(tiny_photos["train"], tiny_photos["val"], out)]) == 0
    return out


# --------------------------------------------------------------------------------------- train data


def test_missing_train_dir(tiny_photos, tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert_user_error(capsys, train_argv(missing, tiny_photos["val"], tmp_path / "run"), missing)
    assert not (tmp_path / "run").exists()


def test_missing_val_dir(tiny_photos, tmp_path, capsys):
    missing = tmp_path / "no_val"
    assert_user_error(capsys, train_argv(tiny_photos["train"], missing, tmp_path / "run"), missing)


def test_empty_train_dir(tiny_photos, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = assert_user_error(capsys, train_argv(empty, tiny_photos["val"], tmp_path / "run"), empty)
    assert "no images" in line


def test_folder_without_images(tiny_photos, tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "data.csv").write_text("1,2,3")
    line = assert_user_error(capsys, train_argv(folder, tiny_photos["val"], tmp_path / "run"), folder)
    assert "no images" in line and ".png" in line  # says which extensions count


def test_image_smaller_than_the_patch(tiny_photos, tmp_path, capsys):
    folder = write_folder(tmp_path / "small", {"ok": ("astronaut", (96, 72)), "tiny": ("coffee", (20, 16))})
    assert_user_error(
        capsys, train_argv(folder, tiny_photos["val"], tmp_path / "run"), folder / "tiny.png", "--patch_size"
    )


def test_patch_size_not_divisible_by_the_scale(tiny_photos, tmp_path, capsys):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--patch_size", "25")
    line = assert_user_error(capsys, argv, "--patch_size", "25")
    assert "multiple of 2" in line


@pytest.mark.parametrize("value", ["0", "-4", "x"])
def test_patch_size_not_positive(tiny_photos, tmp_path, capsys, value):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--patch_size", value)
    assert_user_error(capsys, argv, "--patch_size")


@pytest.mark.parametrize(("flag", "value"), [("--lr", "-1"), ("--epochs", "0"), ("--batch_size", "0"),
                                             ("--epochs", "two")])
def test_bad_numbers(tiny_photos, tmp_path, capsys, flag, value):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", flag, value)
    assert_user_error(capsys, argv, flag)


def test_corrupt_image_in_the_train_folder(tiny_photos, tmp_path, capsys):
    folder = tmp_path / "train"
    folder.mkdir()
    for p in tiny_photos["train"].iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    bad = corrupt_copy(tiny_photos["train"] / "rocket.png", folder / "zz_broken.png")
    line = assert_user_error(capsys, train_argv(folder, tiny_photos["val"], tmp_path / "run"), bad)
    assert "corrupt" in line


def test_not_an_image_with_an_image_extension(tiny_photos, tmp_path, capsys):
    folder = write_folder(tmp_path / "train", {"a": ("astronaut", (96, 72))})
    (folder / "b.png").write_text("this is text, not a PNG")
    assert_user_error(capsys, train_argv(folder, tiny_photos["val"], tmp_path / "run"), folder / "b.png")


# --------------------------------------------------------------------------------------- config


def test_unknown_set_key(tiny_photos, tmp_path, capsys):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--set", "optim.lrr=1e-3")
    assert_user_error(capsys, argv, "optim.lrr", "--set")


def test_set_without_value(tiny_photos, tmp_path, capsys):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--set", "optim.lr")
    assert_user_error(capsys, argv, "--set", "optim.lr")


def test_set_value_of_the_wrong_type(tiny_photos, tmp_path, capsys):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--set", "data.repeat=many")
    assert_user_error(capsys, argv, "data.repeat", "--set")


def test_unknown_model_hyper_parameter(tiny_photos, tmp_path, capsys):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--set", "model.args.width=8")
    assert_user_error(capsys, argv, "width", "rdsr_s")


def test_unknown_key_in_config_yaml(tiny_photos, tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("epochs: 1\noptim:\n  learning_rate: 0.001\n")
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--config", cfg)
    assert_user_error(capsys, argv, "optim.learning_rate", cfg)


def test_config_yaml_missing_or_invalid(tiny_photos, tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--config", missing)
    assert_user_error(capsys, argv, missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1, 2\n")
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--config", broken)
    assert_user_error(capsys, argv, broken)


# --------------------------------------------------------------------------------------- runs


def test_resume_with_nothing_to_resume(tiny_photos, tmp_path, capsys):
    out = tmp_path / "never_trained"
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], out, "--resume")
    assert_user_error(capsys, argv, out, "--resume")


def test_resume_without_out(capsys):
    assert_user_error(capsys, ["train", "--resume", "--epochs", "2"], "--resume", "--out")


def test_train_into_an_existing_run_without_resume(finished_run, tiny_photos, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in finished_run.iterdir()}
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], finished_run)
    assert_user_error(capsys, argv, finished_run, "--resume")
    assert {p.name: p.stat().st_mtime_ns for p in finished_run.iterdir()} == before  # nothing touched


@pytest.mark.parametrize(("flag", "value", "key"), [
    ("--model", "rdsr", "model.name"), ("--scale", "3", "scale"), ("--set", "model.args.channels=16", "model.args"),
])
def test_resume_with_another_architecture_or_scale(finished_run, tiny_photos, capsys, flag, value, key):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], finished_run, "--resume", "--epochs", "2", flag, value)
    if flag == "--scale":
        argv[argv.index("--scale") + 1] = value  # the first --scale, for a clean argv
    assert_user_error(capsys, argv, finished_run, key)


def test_out_is_a_file(tiny_photos, tmp_path, capsys):
    out = tmp_path / "run.txt"
    out.write_text("x")
    assert_user_error(capsys, train_argv(tiny_photos["train"], tiny_photos["val"], out), out, "--out")


def test_unknown_model_name(tiny_photos, tmp_path, capsys):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--model", "edsr_xl")
    assert_user_error(capsys, argv, "edsr_xl", "srlab models")
    assert_user_error(
        capsys, ["eval", "--model", "edsr_xl", "--scale", "2", "--data", tiny_photos["val"]], "edsr_xl", "rdsr_s"
    )


def test_unsupported_scale(tiny_photos, capsys):
    assert_user_error(capsys, ["eval", "--model", "bicubic", "--scale", "5", "--data", tiny_photos["val"]], "5")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_device_cuda_without_cuda(tiny_photos, tmp_path, capsys, ckpt_x2):
    argv = train_argv(tiny_photos["train"], tiny_photos["val"], tmp_path / "run", "--device", "cuda")
    assert_user_error(capsys, argv, "--device", "cuda")
    assert_user_error(capsys, ["eval", "--checkpoint", ckpt_x2, "--data", tiny_photos["val"], "--device", "cuda"],
                      "--device")
    assert_user_error(capsys, ["upscale", tiny_photos["val"], "-o", tmp_path / "o", "--checkpoint", ckpt_x2,
                               "--device", "cuda"], "--device")


# --------------------------------------------------------------------------------------- flags


@pytest.mark.parametrize("argv", [
    ["train", "--epohcs", "3"],
    ["eval", "--model", "bicubic", "--scale", "2"],  # --data missing
    ["upscale", "x.png", "--model", "bicubic"],  # -o missing
    ["frobnicate"],
    [],
])
def test_flag_mistakes_are_one_line(capsys, argv):
    assert_user_error(capsys, argv, "--help")


# --------------------------------------------------------------------------------------- eval


def test_corrupt_image_in_eval_data(tiny_photos, tmp_path, capsys):
    folder = tmp_path / "broken_set"
    folder.mkdir()
    for p in tiny_photos["val"].iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    bad = corrupt_copy(tiny_photos["val"] / "retina.png", folder / "broken.png")
    code, out, err = run_cli(capsys, "eval", "--model", "bicubic", "--scale", "2", "--data", folder,
                             "--data", tiny_photos["val"], "--quiet")
    assert code == 1 and "Traceback" not in err  # the data set fails, the other is still scored
    errors = err.strip().splitlines()
    assert len(errors) == 2 and errors[0].startswith("srlab: error:") and str(bad) in errors[0]
    assert errors[1] == "srlab: 1 of 2 data sets failed and have no score: broken_set x2"
    assert out.splitlines()[1].startswith(tiny_photos["val"].name)


def test_eval_refuses_an_image_larger_than_memory(tiny_photos, capsys, monkeypatch):
    # The check reads the header only: with "1 KiB available" every photo is too large to evaluate.
    monkeypatch.setattr("srlab.data.stream.available_memory", lambda: 1024)
    code, _, err = run_cli(capsys, "eval", "--model", "bicubic", "--scale", "2", "--data", tiny_photos["val"], "--quiet")
    assert code == 1 and "Traceback" not in err
    first = err.strip().splitlines()[0]
    assert first.startswith(f"srlab: error: '{tiny_photos['val']}") and "to evaluate it it needs about" in first
    assert first.endswith("crop it into smaller images (or free memory)")


def test_missing_eval_data(tiny_photos, tmp_path, capsys):
    missing = tmp_path / "Set99"
    argv = ["eval", "--model", "bicubic", "--scale", "2", "--data", tiny_photos["val"], "--data", missing]
    assert_user_error(capsys, argv, missing)


def test_checkpoint_of_another_architecture(ckpt_x2, tiny_photos, capsys):
    argv = ["eval", "--checkpoint", ckpt_x2, "--model", "rdsr", "--data", tiny_photos["val"]]
    assert_user_error(capsys, argv, ckpt_x2, "rdsr_s", "--model")


def test_checkpoint_of_another_scale(ckpt_x2, tiny_photos, capsys):
    argv = ["eval", "--checkpoint", ckpt_x2, "--scale", "3", "--data", tiny_photos["val"]]
    assert_user_error(capsys, argv, ckpt_x2, "x2", "--scale 2")


def test_foreign_pth_with_mismatching_keys(tiny_photos, tmp_path, capsys):
    pth = tmp_path / "other_net.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(64, 3, 3, 3), "conv_first.bias": torch.zeros(64)}}, pth)
    argv = ["eval", "--checkpoint", pth, "--model", "rdsr_s", "--scale", "2", "--data", tiny_photos["val"]]
    line = assert_user_error(capsys, argv, pth, "rdsr_s")
    assert "missing" in line and "unexpected" in line


def test_foreign_pth_of_another_scale(tiny_photos, tmp_path, capsys):
    pth = tmp_path / "rdsr_s_x2.pth"
    torch.save(build_model("rdsr_s", scale=2).state_dict(), pth)
    argv = ["eval", "--checkpoint", pth, "--model", "rdsr_s", "--scale", "3", "--data", tiny_photos["val"]]
    line = assert_user_error(capsys, argv, pth, "x3")
    assert "shape" in line


def test_foreign_pth_without_model(tiny_photos, tmp_path, capsys):
    # Weights of a registered model are detected (tests/models/test_detect.py); these fit none.
    pth = tmp_path / "weights.pth"
    torch.save({"encoder.weight": torch.zeros(8, 3, 3, 3)}, pth)
    assert_user_error(capsys, ["eval", "--checkpoint", pth, "--data", tiny_photos["val"]], pth, "--model")


def test_missing_or_garbage_checkpoint(tiny_photos, tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert_user_error(capsys, ["eval", "--checkpoint", missing, "--data", tiny_photos["val"]], missing, "--checkpoint")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not a safetensors file")
    assert_user_error(capsys, ["eval", "--checkpoint", garbage, "--data", tiny_photos["val"]], garbage)


def test_json_destination_is_a_folder(tiny_photos, tmp_path, capsys):
    argv = ["eval", "--model", "bicubic", "--scale", "2", "--data", tiny_photos["val"], "--json", tmp_path]
    assert_user_error(capsys, argv, "--json", tmp_path)


def test_rdsr_without_weights(tiny_photos, capsys):
    argv = ["eval", "--model", "rdsr", "--scale", "2", "--data", tiny_photos["val"]]
    assert_user_error(capsys, argv, "rdsr", "--checkpoint")


# --------------------------------------------------------------------------------------- upscale


def test_upscale_batch_with_one_corrupt_file(ckpt_x2, tiny_photos, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in tiny_photos["val"].iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    bad = corrupt_copy(tiny_photos["val"] / "retina.png", folder / "middle.png")
    code, out, err = run_cli(capsys, "upscale", folder, "-o", tmp_path / "out", "--checkpoint", ckpt_x2)
    assert code == 1
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["chelsea_x2.png", "retina_x2.png"]
    errors = [line for line in err.splitlines() if line.startswith("srlab: error:")]
    assert len(errors) == 1 and str(bad) in errors[0]
    assert "1 of 3" in err
    assert "chelsea_x2.png" in out and "retina_x2.png" in out


def test_upscale_without_scale_or_checkpoint(tiny_photos, tmp_path, capsys):
    argv = ["upscale", tiny_photos["val"], "-o", tmp_path / "out"]
    assert_user_error(capsys, argv, "--scale", "--checkpoint")
    assert not (tmp_path / "out").exists()


def test_upscale_missing_input(tmp_path, capsys):
    missing = tmp_path / "photo.png"
    assert_user_error(capsys, ["upscale", missing, "-o", tmp_path / "o", "--model", "bicubic", "--scale", "2"],
                      missing)


def test_upscale_output_is_a_file(tiny_photos, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"x")
    assert_user_error(capsys, ["upscale", tiny_photos["val"], "-o", out, "--model", "bicubic", "--scale", "2"],
                      out, "-o")


@pytest.mark.parametrize(("flag", "value"), [("--tile", "0"), ("--tile", "-8"), ("--tile_overlap", "-1")])
def test_upscale_bad_tile(tiny_photos, tmp_path, capsys, flag, value):
    argv = ["upscale", tiny_photos["val"], "-o", tmp_path / "o", "--model", "bicubic", "--scale", "2", flag, value]
    assert_user_error(capsys, argv, flag)
    assert not (tmp_path / "o").exists()


def test_upscale_refuses_to_overwrite_an_input(tmp_path, capsys):
    """Re-running into the input folder: earlier outputs are inputs now and are never overwritten."""
    folder = write_folder(tmp_path / "in", {"cat": ("chelsea", (30, 20))})
    argv = ["upscale", folder, "-o", folder, "--model", "bicubic", "--scale", "2"]
    assert run_cli(capsys, *argv)[0] == 0
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    code, _, err = run_cli(capsys, *argv)
    assert "Traceback" not in err
    for name, digest in digests.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    if code != 0:  # today: cat.png -> cat_x2.png is refused (cat_x2.png is an input now), exit status 1
        assert code == 1 and "refusing to overwrite" in err and "cat_x2.png" in err


def test_upscale_out_of_memory_suggests_tiling(ckpt_x2, tiny_photos, tmp_path, capsys, monkeypatch):
    import srlab.inference.files as upscale_cmd

    real = upscale_cmd.upscale_tensor

    def fail_on_retina(model, lr, *, tile, tile_overlap):
        if lr.shape[-1] == 60 and not hasattr(fail_on_retina, "done"):
            fail_on_retina.done = True  # the first image only
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(model, lr, tile=tile, tile_overlap=tile_overlap)

    monkeypatch.setattr(upscale_cmd, "upscale_tensor", fail_on_retina)
    code, _, err = run_cli(capsys, "upscale", tiny_photos["val"], "-o", tmp_path / "out", "--checkpoint", ckpt_x2)
    assert code == 1 and "Traceback" not in err
    assert "does not fit in memory: pass --tile" in err
    assert len(list((tmp_path / "out").iterdir())) == 1  # the other image is still written
