"""Every file srlab reads back may be corrupt, truncated, hand-edited or hostile; and one exit-code contract.

Each bad checkpoint (srlab's safetensors with edited metadata, an official ``.pth``), ``--model_arg`` value
and metric weight file gives one line ``srlab: error: ...`` naming the file or flag, exit status 2 and no
traceback, through every command that reads it (``srlab.cli.main.main``, in-process). The contract
(README "Exit codes"): 0 done, 1 some inputs of a batch failed (the others written), 2 refused.
"""

from __future__ import annotations

import argparse

import pytest
import torch
from safetensors.torch import save_file

from conftest import run_cli
from srlab.models import build_model
from srlab.models.weights import save_weights

TINY_ARGS = {"channels": 8, "num_blocks": 1}
PROFILE_FAST = ["--device", "cpu", "--threads", "1", "--repeats", "1", "--warmup", "0", "--lr_size", "16x16"]


def assert_refused(capsys, argv, *mentions) -> str:
    """Exit status 2, one ``srlab: error:`` line naming ``mentions``, no traceback, nothing on stdout."""
    code, out, err = run_cli(capsys, *argv)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("srlab: error:"), err
    assert code == 2, (code, err)
    for mention in mentions:
        assert str(mention) in lines[0], (mention, lines[0])
    assert out == "", out
    return lines[0]


def _tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("rdsr_s", scale=2, args=TINY_ARGS).state_dict()


def _edited(tmp_path, **fields: str):
    meta = {"srlab.format": "1", "srlab.model": "rdsr_s", "srlab.scale": "2",
            "srlab.model_args": '{"channels": 8, "num_blocks": 1}', "srlab.form": "train"}
    meta.update({k.replace("_", ".", 1): v for k, v in fields.items()})
    path = tmp_path / "edited.safetensors"
    save_file(_tiny_state(), path, metadata=meta)
    return path


def _truncated(tmp_path):
    whole = tmp_path / "whole.safetensors"
    save_weights(whole, build_model("rdsr_s", scale=2, args=TINY_ARGS))
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(whole.read_bytes()[:-100])
    return path


def _pickled_namespace(tmp_path):
    path = tmp_path / "hostile.pth"
    torch.save({"params": _tiny_state(), "opts": argparse.Namespace(lr=1)}, path)
    return path


def _self_nesting(tmp_path):
    nested: dict = {}
    nested["model"] = nested
    path = tmp_path / "nested.pth"
    torch.save(nested, path)
    return path


BAD_CHECKPOINTS = {
    "scale_two": (lambda p: _edited(p, srlab_scale="two"), "srlab.scale='two'"),
    "args_not_an_object": (lambda p: _edited(p, srlab_model_args="[8, 1]"), "srlab.model_args='[8, 1]'"),
    "args_not_json": (lambda p: _edited(p, srlab_model_args="{channels: 8"), "not a JSON object"),
    "unknown_form": (lambda p: _edited(p, srlab_form="fused"), "srlab.form='fused'"),
    "unknown_model": (lambda p: _edited(p, srlab_model="rdsr_xxl"), "'rdsr_xxl', which this srlab does not have"),
    "args_of_wrong_type": (lambda p: _edited(p, srlab_model_args='{"channels": "wide"}'), "must be int"),
    "truncated": (_truncated, "not a valid safetensors file"),
    "pickled_object": (_pickled_namespace, "does not execute"),
    "self_nesting_pth": (_self_nesting, "not a state dict"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
@pytest.mark.parametrize("command", ["eval", "upscale", "profile", "benchmark"])
def test_bad_checkpoints_are_refused_by_every_command(tiny_photos, tmp_path, capsys, case, command):
    make, message = BAD_CHECKPOINTS[case]
    ckpt = make(tmp_path)
    model = ["--model", "rdsr_s", "--scale", "2"] if ckpt.suffix == ".pth" else []
    argv = {
        "eval": ["eval", "--checkpoint", ckpt, *model, "--data", tiny_photos["val"], "--quiet"],
        "upscale": ["upscale", tiny_photos["val"], "-o", tmp_path / "out", "--checkpoint", ckpt, *model],
        "profile": ["profile", "--checkpoint", ckpt, *model, *PROFILE_FAST],
        "benchmark": ["benchmark", "--models", "rdsr_s", "--scales", "2", "--data", tiny_photos["val"],
                      "--checkpoint", f"rdsr_s={ckpt}", "--out", tmp_path / "report", "--quiet"],
    }[command]
    assert_refused(capsys, argv, ckpt, message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "report").exists()


@pytest.mark.parametrize(("value", "mentions"), [
    ('!!python/object/apply:os.system ["echo hostile"]', ["--model_arg", "not a valid value"]),
    ("channels=[8", ["--model_arg", "not a valid value"]),
    ("channels=wide", ["'channels'", "must be int"]),
    ("init=[1]", ["'init'", "must be str"]),
    ("width=8", ["no hyper-parameter 'width'"]),
    ("=8", ["--model_arg expects KEY=VALUE"]),
])
def test_bad_model_args(tiny_photos, capsys, value, mentions):
    if value.startswith("!!"):
        value = f"channels={value}"
    argv = ["eval", "--model", "rdsr_s", "--scale", "2", "--data", tiny_photos["val"], "--model_arg", value]
    assert_refused(capsys, argv, *mentions)
    assert_refused(capsys, ["profile", "--model", "rdsr_s", "--scale", "2", "--model_arg", value, *PROFILE_FAST],
                   *mentions)


def test_corrupt_metric_weights(tiny_photos, tmp_path, capsys):
    garbage = tmp_path / "modelparameters.mat"
    garbage.write_bytes(b"\x00garbage" * 20)
    argv = ["eval", "--model", "bicubic", "--scale", "2", "--data", tiny_photos["val"], "--metrics", "niqe",
            "--metric_weights", f"niqe={garbage}"]
    assert_refused(capsys, argv, garbage)


# ------------------------------------------------------------------------------------ the exit-code contract


def test_eval_checks_every_scale_before_any_work(tiny_photos, tmp_path, capsys):
    """--scales 2 3 with x2 weights: refused before x2 is evaluated (no table), not after."""
    ckpt = tmp_path / "x2.safetensors"
    save_weights(ckpt, build_model("rdsr_s", scale=2, args=TINY_ARGS))
    argv = ["eval", "--checkpoint", ckpt, "--scales", "2", "3", "--data", tiny_photos["val"], "--quiet"]
    assert_refused(capsys, argv, ckpt, "x2, not x3")


def test_exit_status_0_1_2(tiny_photos, tmp_path, capsys):
    eval_bicubic = ["eval", "--model", "bicubic", "--scale", "2", "--quiet"]
    code, out, err = run_cli(capsys, *eval_bicubic, "--data", tiny_photos["val"])
    assert (code, err) == (0, "") and tiny_photos["val"].name in out
    # 1: one input of the batch failed, the others were processed and written
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes((tiny_photos["val"] / "chelsea.png").read_bytes()[:200])
    code, out, err = run_cli(capsys, *eval_bicubic, "--data", broken, "--data", tiny_photos["val"],
                             "--json", tmp_path / "r.json")
    assert code == 1 and "Traceback" not in err and str(broken / "a.png") in err
    assert '"dataset": "val"' in (tmp_path / "r.json").read_text()
    code, out, err = run_cli(capsys, "upscale", broken / "a.png", tiny_photos["val"] / "chelsea.png",
                             "-o", tmp_path / "up", "--model", "bicubic", "--scale", "2")
    assert code == 1 and [p.name for p in (tmp_path / "up").iterdir()] == ["chelsea_x2.png"]
    # 2: refused before any work
    assert_refused(capsys, [*eval_bicubic, "--data", tmp_path / "missing"], tmp_path / "missing")
    assert_refused(capsys, ["eval", "--data", tiny_photos["val"], "--scale", "two"], "--scale")


def test_data_verify_with_a_corrupt_manifest_is_a_failed_input(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "Set5/HR").mkdir(parents=True)
    manifest = root / ".srlab/manifests/Set5.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"files": {"../../etc/hostname": "00"}}')
    code, out, err = run_cli(capsys, "data", "verify", "Set5", "--root", root)
    assert code == 1 and "Traceback" not in err
    assert f"Set5: {manifest}: unreadable manifest (delete it, or download Set5 again)" in out


@pytest.mark.parametrize(("raised", "code", "line"), [
    (KeyboardInterrupt(), 130, "srlab: interrupted"),
    (PermissionError(13, "Permission denied", "/data/out"),
     2, "srlab: error: [Errno 13] Permission denied: '/data/out' (check the path and its permissions)"),
])
def test_interrupts_and_refusals_of_the_file_system(monkeypatch, capsys, raised, code, line):
    import srlab.cli.models as models_cmd

    def fail(args):
        raise raised

    monkeypatch.setattr(models_cmd, "run", fail)
    got, out, err = run_cli(capsys, "models")
    assert (got, err.strip()) == (code, line)
