import pytest
import torch

import srlab
from srlab.errors import SrlabError
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
    with pytest.raises(SrlabError, match="does not record its model"):
        srlab.create_model(checkpoint=tmp_path / "s.pth")
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
