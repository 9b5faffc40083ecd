"""model.freeze: the named parameters keep their weights, are not optimised, are saved, and resume exactly."""

import pytest
import torch
from safetensors.torch import load_file, save_file

import srlab
from conftest import tiny_train_config
from srlab.errors import SrlabError
from srlab.train.config import TrainConfig, apply_overrides
from srlab.train.trainer import train

FROZEN = ["head.", "blocks."]


def _init_file(tmp_path):
    """Weights to warm-start from, so the frozen tensors' expected values are known."""
    torch.manual_seed(5)
    model = srlab.create_model("rdsr_s", scale=2, args={"channels": 8, "num_blocks": 1})
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "init.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def _frozen_config(tiny_photos, out, init, **overrides):
    config = tiny_train_config(tiny_photos, out, init_from=str(init), **overrides)
    config.model.freeze = list(FROZEN)
    config.schedule.kind = "step"  # independent of the run's length, so two parts can equal one run
    return config


def test_frozen_parameters_keep_their_weights_and_the_others_learn(tiny_photos, tmp_path):
    init, start = _init_file(tmp_path)
    train(_frozen_config(tiny_photos, tmp_path / "run", init, ema_decay=0.5), progress=False)
    assert "frozen " in (tmp_path / "run" / "train.log").read_text()
    last = load_file(str(tmp_path / "run" / "last.safetensors"))
    assert set(last) == set(start)  # every parameter is saved, frozen or not
    frozen = [k for k in start if k.startswith(tuple(FROZEN))]
    # (Some of ESA's convolutions get no gradient from this model's 12x12 LR patches, frozen or not.)
    trained = [k for k in start if k.startswith(("fuse.", "tail."))]
    assert frozen and all(torch.equal(last[k], start[k]) for k in frozen)
    unchanged = [k for k in trained if torch.equal(last[k], start[k])]
    assert trained and not unchanged, unchanged
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    model = srlab.create_model("rdsr_s", scale=2, args={"channels": 8, "num_blocks": 1})
    trainable = [n for n, _ in model.named_parameters() if not n.startswith(tuple(FROZEN))]
    assert len(state["optimizer"]["param_groups"][0]["params"]) == len(trainable)


def test_a_prefix_that_matches_nothing_is_an_error(tiny_photos, tmp_path):
    config = tiny_train_config(tiny_photos, tmp_path / "run")
    config.model.freeze = ["body."]
    with pytest.raises(SrlabError, match=r"model.freeze: 'body.' starts no parameter name.*head\., .*tail\."):
        train(config, progress=False)
    with pytest.raises(SrlabError, match="'model.freeze' must be a list of non-empty strings"):
        apply_overrides(TrainConfig(), {"model": {"freeze": "head."}})


def test_freezing_every_parameter_is_an_error(tiny_photos, tmp_path):
    config = tiny_train_config(tiny_photos, tmp_path / "run")
    config.model.freeze = ["head.", "blocks.", "fuse.", "esa.", "tail."]
    with pytest.raises(SrlabError, match="freezes every parameter"):
        train(config, progress=False)


def test_resume_with_frozen_parameters_equals_one_run(tiny_photos, tmp_path):
    init, start = _init_file(tmp_path)
    train(_frozen_config(tiny_photos, tmp_path / "one", init, epochs=2), progress=False)
    split = _frozen_config(tiny_photos, tmp_path / "split", init, epochs=1)
    train(split, progress=False)
    split.epochs = 2
    assert train(split, resume=True, progress=False).iterations == 6
    a = load_file(str(tmp_path / "one" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(b[k], start[k]) for k in b if k.startswith(tuple(FROZEN)))
    split.model.freeze = ["head."]
    split.epochs = 3
    with pytest.raises(SrlabError, match="cannot resume .* with model.freeze"):
        train(split, resume=True, progress=False)
