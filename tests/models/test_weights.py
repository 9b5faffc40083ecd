import re

import pytest
import torch

import srlab
from srlab.errors import SrlabError
from srlab.models.registry import spec_of
from srlab.models.weights import fits, load_state_dict_strict, read_checkpoint, save_weights


def _model(name="rdsr_s", scale=2, **args):
    torch.manual_seed(1)
    return srlab.create_model(name, scale=scale, args=args or None)


def test_safetensors_round_trip_records_the_model(tmp_path):
    model = _model(channels=16)
    save_weights(tmp_path / "w.safetensors", model, metadata={"srlab.epoch": "3"})
    loaded = srlab.create_model(checkpoint=tmp_path / "w.safetensors")
    assert not loaded.training
    assert loaded.srlab_spec.args["channels"] == 16 and loaded.srlab_spec.scale == 2
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary file


@pytest.mark.parametrize("wrapper", ["plain", "params", "params_ema", "state_dict", "module"])
def test_foreign_pth_wrappers(tmp_path, wrapper):
    model = _model()
    state = model.state_dict()
    wrapped = {
        "plain": state, "params": {"params": state}, "params_ema": {"params": {}, "params_ema": state},
        "state_dict": {"state_dict": state, "epoch": 3}, "module": {f"module.{k}": v for k, v in state.items()},
    }[wrapper]
    torch.save(wrapped, tmp_path / "w.pth")
    loaded = srlab.create_model("rdsr_s", scale=2, checkpoint=tmp_path / "w.pth")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"model": _model()}, tmp_path / "evil.pth")  # a whole pickled module, not a state dict
    with pytest.raises(SrlabError, match="weights_only"):
        read_checkpoint(tmp_path / "evil.pth")


def test_mismatches_are_one_line_errors(tmp_path):
    save_weights(tmp_path / "s.safetensors", _model())
    with pytest.raises(SrlabError, match="holds model 'rdsr_s' x2, not 'rdsr'"):
        srlab.create_model("rdsr", checkpoint=tmp_path / "s.safetensors")
    with pytest.raises(SrlabError, match="trained for scale x2, not x3"):
        srlab.create_model(scale=3, checkpoint=tmp_path / "s.safetensors")
    torch.save(_model().state_dict(), tmp_path / "s.pth")
    with pytest.raises(SrlabError, match="does not fit model 'rdsr' x2") as e:
        srlab.create_model("rdsr", scale=2, checkpoint=tmp_path / "s.pth")
    assert "\n" not in str(e.value)
    # A foreign checkpoint without --model/--scale: detected from its tensors (tests/models/test_detect.py).
    assert spec_of(srlab.create_model(checkpoint=tmp_path / "s.pth")).name == "rdsr_s"
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(SrlabError, match="not a valid safetensors"):
        read_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(SrlabError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pth")


def test_garbage_pth_is_named_corrupt(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02garbage")
    with pytest.raises(SrlabError, match="not a PyTorch or safetensors checkpoint, or it is corrupt") as e:
        read_checkpoint(tmp_path / "junk.pth")
    assert "weights_only=False" not in str(e.value)


def test_weights_files_get_ordinary_permissions(tmp_path):
    import os

    save_weights(tmp_path / "w.safetensors", _model())
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask


def test_tensors_a_model_derives_itself_are_dropped_from_official_checkpoints(tmp_path):
    class Windowed(torch.nn.Module):
        derived_checkpoint_keys = ("*.attn_mask", "*.relative_position_index")

        def __init__(self) -> None:
            super().__init__()
            self.scale = 2
            self.block = torch.nn.Conv2d(3, 3, 1)

    model = Windowed()
    official = {**model.state_dict(), "block.attn_mask": torch.zeros(4, 64, 64),
                "block.relative_position_index": torch.zeros(64, 64, dtype=torch.long)}
    path = tmp_path / "official.pth"
    torch.save({"params": official}, path)
    ckpt = read_checkpoint(path)
    assert fits(model, ckpt)
    load_state_dict_strict(model, ckpt)  # no error: the derived tensors are not weights
    del official["block.bias"]
    torch.save(official, path)
    with pytest.raises(SrlabError, match="1 missing"):
        load_state_dict_strict(model, read_checkpoint(path))


# ----------------------------------------------------------------------------- corrupt and hostile files


def _srlab_metadata(**changes: str | None) -> dict[str, str]:
    """The metadata save_weights writes for a default rdsr_s x2, with fields changed or (None) removed."""
    meta = {
        "srlab.format": "1", "srlab.model": "rdsr_s", "srlab.scale": "2",
        "srlab.model_args": '{"channels": 32}', "srlab.form": "train",
    }
    meta.update({k.replace("_", ".", 1): v for k, v in changes.items()})
    return {k: v for k, v in meta.items() if v is not None}


@pytest.mark.parametrize(("changes", "message"), [
    ({"srlab_scale": "two"}, "records srlab.scale='two', not a positive integer"),
    ({"srlab_scale": "2.0"}, "records srlab.scale='2.0', not a positive integer"),
    ({"srlab_scale": "0"}, "records srlab.scale='0', not a positive integer"),
    ({"srlab_scale": "-2"}, "records srlab.scale='-2', not a positive integer"),
    ({"srlab_scale": "²"}, "not a positive integer"),  # a digit to str.isdigit, not to int()
    ({"srlab_scale": None}, "records srlab.scale='', not a positive integer"),
    ({"srlab_model_args": "{channels: 32"}, "srlab.model_args='{channels: 32', not a JSON object"),
    ({"srlab_model_args": "[32, 4]"}, "srlab.model_args='[32, 4]', not a JSON object"),
    ({"srlab_model_args": '"channels"'}, "not a JSON object"),
    ({"srlab_form": "fused"}, "records srlab.form='fused', not one of train, deploy"),
    ({"srlab_format": "2"}, "srlab format '2', this srlab reads format '1'"),
])
def test_hostile_safetensors_metadata_is_named(tmp_path, changes, message):
    from safetensors.torch import save_file

    path = tmp_path / "edited.safetensors"
    save_file(_model().state_dict(), path, metadata=_srlab_metadata(**changes))
    with pytest.raises(SrlabError, match=re.escape(message)) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(("changes", "message"), [
    ({"srlab_model": "no_such_net"}, "records model 'no_such_net', which this srlab does not have"),
    ({"srlab_model_args": '{"channels": "wide"}'}, "'channels' of model 'rdsr_s' must be int, got 'wide'"),
    ({"srlab_model_args": '{"width": 8}'}, "no hyper-parameter 'width'"),
    ({"srlab_scale": "7"}, "does not support scale 7"),
])
def test_checkpoints_recording_a_model_srlab_cannot_build(tmp_path, changes, message):
    from safetensors.torch import save_file

    path = tmp_path / "edited.safetensors"
    save_file(_model().state_dict(), path, metadata=_srlab_metadata(**changes))
    with pytest.raises(SrlabError, match=message) as e:
        srlab.create_model(checkpoint=path)
    assert str(path) in str(e.value)


def test_truncated_safetensors(tmp_path):
    whole = tmp_path / "whole.safetensors"
    save_weights(whole, _model())
    data = whole.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut_{cut}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(SrlabError, match="not a valid safetensors file") as e:
            read_checkpoint(path)
        assert str(path) in str(e.value)


def test_truncated_pth(tmp_path):
    whole = tmp_path / "whole.pth"
    torch.save(_model().state_dict(), whole)
    path = tmp_path / "cut.pth"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(SrlabError, match="not a PyTorch or safetensors checkpoint, or it is corrupt") as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)


def test_pth_with_a_disallowed_class_is_not_executed(tmp_path):
    import argparse

    path = tmp_path / "namespace.pth"
    torch.save({"params": _model().state_dict(), "opts": argparse.Namespace(lr=1)}, path)
    with pytest.raises(SrlabError, match="holds pickled Python objects, which srlab does not execute") as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)


def _self_nesting() -> dict:
    nested: dict = {}
    nested["params"] = nested
    return nested


@pytest.mark.parametrize(("content", "message"), [
    ({"epoch": 3, "lr": 0.1}, r"holds no state dict \(keys: epoch, lr\)"),
    ({}, r"holds no state dict \(it is empty\)"),
    ([torch.zeros(2)], "holds a list, not a state dict"),
    (torch.zeros(3), "holds a Tensor, not a state dict"),
    ({1: torch.zeros(2), 2: torch.zeros(2)}, "holds no state dict"),
    (_self_nesting(), "holds a dict, not a state dict"),  # would unwrap forever
])
def test_pth_without_a_state_dict(tmp_path, content, message):
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(SrlabError, match=message) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64, torch.bool])
def test_weights_of_another_dtype_kind_are_refused(tmp_path, dtype):
    """Loading would convert them silently (complex numbers lose their imaginary part)."""
    state = _model().state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].to(dtype)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(SrlabError, match=rf"1 of another dtype \(e.g. {key}: {dtype} vs torch.float32\)"):
        srlab.create_model("rdsr_s", scale=2, checkpoint=tmp_path / "odd.pth")


@pytest.mark.parametrize(("convert", "kind"), [
    (lambda t: torch.empty(t.shape, device="meta"), "a meta tensor"), (lambda t: t.to_sparse(), "a torch.sparse_coo"),
])
def test_tensors_without_dense_values_are_refused(tmp_path, convert, kind):
    state = _model().state_dict()
    state["head.weight"] = convert(state["head.weight"])
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(SrlabError, match=f"holds 'head.weight' as {kind}"):
        srlab.create_model("rdsr_s", scale=2, checkpoint=tmp_path / "odd.pth")


def test_a_folder_given_as_checkpoint(tmp_path):
    with pytest.raises(SrlabError, match=f"checkpoint '{tmp_path}' is a folder: give the weights file in it"):
        read_checkpoint(tmp_path)
