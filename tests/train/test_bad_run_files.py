"""Corrupt, truncated, hand-edited or hostile run-directory files and --set values: one line
`srlab: error: ...` naming the file (or flag) and the fix, exit status 2, never a traceback."""

import argparse
import shutil

import pytest
import torch
import yaml

from srlab.cli.main import main


def _args(tiny_photos, out, *extra):
    return [
        "train", "--train_dir", str(tiny_photos["train"]), "--val_dir", str(tiny_photos["val"]), "--scale", "2",
        "--epochs", "1", "--batch_size", "4", "--patch_size", "24", "--model", "rdsr_s",
        "--set", "model.args={channels: 8, num_blocks: 1}", "--set", "data.repeat=2", "--out", str(out), "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(tiny_photos, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(_args(tiny_photos, run)) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("srlab: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _resume(run, *extra):
    return main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet", *extra])


def _edit_state(run, edit):
    state = torch.load(run / "state.pt", weights_only=True)
    state = edit(state)
    torch.save(state, run / "state.pt")


def _set(key, value):
    def edit(state):
        state[key] = value
        return state
    return edit


def _drop(key):
    def edit(state):
        del state[key]
        return state
    return edit


def _shrink_a_tensor(state):
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(1)
    return state


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda state: [1, 2, 3], "holds a list, not a mapping"),
    (_drop("iteration"), "no 'iteration'"),
    (_set("epoch", "3"), "'epoch' is a str"),
    (_set("best_psnr", None), "'best_psnr' is a NoneType"),
    (_set("stage", -1), "'stage' is negative"),
    (_set("model", {"weight": "not a tensor"}), "'model' holds values that are not tensors"),
    (_set("exports", {"best.safetensors": {"digest": 3}}), "a bad record of the weight file 'best.safetensors'"),
    (_shrink_a_tensor, "does not fit this run (RuntimeError"),
    (_set("rng", [{"torch": 1}]), "does not fit this run"),
    (_set("rng", []), "'rng' is empty"),
    (_set("optimizer", {"state": {}, "param_groups": []}), "does not fit this run (ValueError"),
])
def test_a_hand_edited_state_pt(run, capsys, edit, problem):
    _edit_state(run, edit)
    assert _resume(run) == 2
    _one_line_error(capsys, str(run / "state.pt"), problem, "start a new run (another --out) with --init_from its best.safetensors")


def test_a_truncated_state_pt(run, capsys):
    data = (run / "state.pt").read_bytes()
    (run / "state.pt").write_bytes(data[: len(data) // 2])
    assert _resume(run) == 2
    _one_line_error(capsys, str(run / "state.pt"), "not a readable checkpoint (truncated or corrupt)",
                    "restore it from a backup, or start a new run (another --out) with --init_from its best.safetensors")


def test_a_state_pt_holding_pickled_objects_is_not_executed(run, capsys):
    torch.save({"model": argparse.Namespace(x=1)}, run / "state.pt")
    assert _resume(run) == 2
    _one_line_error(capsys, str(run / "state.pt"), "holds pickled Python objects, which srlab does not execute")


@pytest.mark.parametrize(("text", "problem"), [
    ("scale: 2\nepochs: [1,\n", "is not valid YAML"),
    ("- scale\n- 2\n", "does not hold a mapping of config keys"),
    ("scale: 2\nepochs: many\n", "config key 'epochs' must be int, got 'many'"),
    ("scael: 2\n", "unknown config key 'scael'"),
    ("\xff\xfe", "is not valid YAML"),
])
def test_a_corrupt_config_yaml(run, capsys, text, problem):
    (run / "config.yaml").write_bytes(text.encode("latin-1"))
    assert _resume(run) == 2
    _one_line_error(capsys, str(run / "config.yaml"), problem, "start a new run (another --out) with --init_from its best.safetensors")


@pytest.mark.parametrize(("assignments", "problem"), [
    (["model.args=[unclosed"], "--set 'model.args=[unclosed': the value is not valid YAML"),
    (["optim={lr: 1"], "the value is not valid YAML"),
    (["data=1", "data.repeat=2"], "an earlier --set gave 'data' a value, not keys"),
    (["epochs=[1, 2]"], "config key 'epochs' must be int"),
])
def test_a_bad_set_value(tiny_photos, tmp_path, capsys, assignments, problem):
    extra = [arg for item in assignments for arg in ("--set", item)]
    assert main(_args(tiny_photos, tmp_path / "new", *extra)) == 2
    _one_line_error(capsys, problem)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["weights.safetensors", "weights.pth"])
def test_init_from_a_corrupt_file(tiny_photos, tmp_path, capsys, name):
    (tmp_path / name).write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert main(_args(tiny_photos, tmp_path / "new", "--init_from", str(tmp_path / name))) == 2
    _one_line_error(capsys, str(tmp_path / name), "cannot read checkpoint")


def test_a_binary_config_file(tiny_photos, tmp_path, capsys):
    (tmp_path / "c.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    assert main(_args(tiny_photos, tmp_path / "new", "--config", str(tmp_path / "c.yaml"))) == 2
    _one_line_error(capsys, str(tmp_path / "c.yaml"), "is not valid YAML")


def test_the_saved_config_is_plain_yaml_that_resumes(run):
    # The positive case of the readers above: an untouched run directory resumes.
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 1
    assert _resume(run) == 0
