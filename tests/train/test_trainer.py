import math

import pytest
import torch
from safetensors.torch import load_file

import srlab
import srlab.train.step as step
from conftest import tiny_train_config
from srlab.errors import SrlabError
from srlab.train.config import TrainConfig
from srlab.train.schedule import learning_rate
from srlab.train.trainer import train


def _config(tiny_photos, out, **overrides) -> TrainConfig:
    return tiny_train_config(tiny_photos, out, **overrides)


def _weights(path):
    return load_file(str(path))


def test_training_writes_run_directory_and_learns(tiny_photos, tmp_path):
    result = train(_config(tiny_photos, tmp_path / "run", epochs=3), progress=False)
    run = tmp_path / "run"
    for name in ("last.safetensors", "best.safetensors", "state.pt", "config.yaml", "train.log"):
        assert (run / name).is_file(), name
    assert result.iterations == 3 * 3  # 12 patches / batch 4 per epoch
    log = (run / "train.log").read_text().splitlines()
    assert sum("val_psnr_y" in line for line in log) == 3
    psnrs = [float(line.split("val_psnr_y ")[1].split()[0]) for line in log if "val_psnr_y" in line]
    assert psnrs[-1] > psnrs[0]  # it learns
    model = srlab.create_model(checkpoint=run / "last.safetensors")
    assert model.srlab_spec.args["channels"] == 8
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["epoch"] == 3 and math.isclose(state["last_psnr"], result.last_psnr)


def test_refuses_to_overwrite_a_run_and_resume_needs_one(tiny_photos, tmp_path):
    train(_config(tiny_photos, tmp_path / "run", epochs=1), progress=False)
    with pytest.raises(SrlabError, match="already holds a run: pass --resume"):
        train(_config(tiny_photos, tmp_path / "run", epochs=1), progress=False)


def test_resume_to_more_epochs_equals_one_run(tiny_photos, tmp_path):
    schedule = {"kind": "step"}
    one = _config(tiny_photos, tmp_path / "one", epochs=2)
    one.schedule.kind = schedule["kind"]
    train(one, progress=False)
    split = _config(tiny_photos, tmp_path / "split", epochs=1)
    split.schedule.kind = schedule["kind"]
    train(split, progress=False)
    split.epochs = 2
    result = train(split, resume=True, progress=False)
    assert result.epochs == 2 and result.iterations == 6
    a, b = _weights(tmp_path / "one" / "last.safetensors"), _weights(tmp_path / "split" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_mid_epoch_resumes_exactly(tiny_photos, tmp_path, monkeypatch):
    reference = _config(tiny_photos, tmp_path / "ref", epochs=2, val_every_iters=2, ema_decay=0.9)
    train(reference, progress=False)

    interrupted = _config(tiny_photos, tmp_path / "int", epochs=2, val_every_iters=2, ema_decay=0.9)
    calls = {"n": 0}
    real_update = step.update_ema

    def crash_at_iteration_5(ema, model, decay):
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint at iteration 4, in the middle of epoch 2
            raise KeyboardInterrupt
        real_update(ema, model, decay)

    monkeypatch.setattr(step, "update_ema", crash_at_iteration_5)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, progress=False)
    assert torch.load(tmp_path / "int" / "state.pt", weights_only=True)["batches_in_epoch"] == 1
    monkeypatch.setattr(step, "update_ema", real_update)
    train(interrupted, resume=True, progress=False)
    a, b = _weights(tmp_path / "ref" / "last.safetensors"), _weights(tmp_path / "int" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    state_a = torch.load(tmp_path / "ref" / "state.pt", weights_only=True)
    state_b = torch.load(tmp_path / "int" / "state.pt", weights_only=True)
    assert all(torch.equal(state_a["model"][k], state_b["model"][k]) for k in state_a["model"])


def test_learning_rate_schedules():
    config = TrainConfig(epochs=10)
    config.optim.lr = 1.0
    assert learning_rate(config, 0, 10) == 1.0
    assert math.isclose(learning_rate(config, 100, 10), config.schedule.min_lr_ratio)
    config.schedule.kind, config.schedule.step_epochs, config.schedule.gamma = "step", 2, 0.5
    assert [learning_rate(config, i * 10, 10) for i in (0, 1, 2, 4)] == [1.0, 1.0, 0.5, 0.25]
    config.schedule.warmup_iters = 4
    assert learning_rate(config, 1, 10) == 0.5


def test_resume_checks_the_model_and_works_from_another_directory(tiny_photos, tmp_path, monkeypatch):
    config = _config(tiny_photos, tmp_path / "run", epochs=1)
    train(config, progress=False)
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert str(tmp_path / "run") in saved and str(tiny_photos["train"]) in saved  # absolute paths
    other = _config(tiny_photos, tmp_path / "run", epochs=2)
    other.model.args = {"channels": 16, "num_blocks": 1}
    with pytest.raises(SrlabError, match="cannot resume .* model.args"):
        train(other, resume=True, progress=False)
    monkeypatch.chdir(tmp_path)
    relative = _config(tiny_photos, "run", epochs=2)
    assert train(relative, resume=True, progress=False).epochs == 2


def test_warm_start_from_x2_weights(tiny_photos, tmp_path):
    train(_config(tiny_photos, tmp_path / "x2", epochs=1), progress=False)
    config = _config(tiny_photos, tmp_path / "x3", epochs=1)
    config.scale, config.data.patch_size = 3, 36
    config.init_from = str(tmp_path / "x2" / "last.safetensors")
    config.val_every = 5  # validate only at the end, so that the log shows the state right after loading
    train(config, progress=False)
    log = (tmp_path / "x3" / "train.log").read_text()
    assert "warm start from" in log and "kept the fresh init of 2: tail.bias, tail.weight" in log
    x2 = _weights(tmp_path / "x2" / "last.safetensors")
    x3_fresh = srlab.create_model("rdsr_s", scale=3, args={"channels": 8, "num_blocks": 1})
    from srlab.models.weights import load_matching, read_checkpoint

    loaded, skipped = load_matching(x3_fresh, read_checkpoint(tmp_path / "x2" / "last.safetensors"))
    assert skipped == ["tail.bias", "tail.weight"]
    assert all(torch.equal(x3_fresh.state_dict()[k], x2[k]) for k in loaded)


def test_warm_start_from_another_architecture_is_an_error(tiny_photos, tmp_path):
    from safetensors.torch import save_file

    save_file({"foo.weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    config = _config(tiny_photos, tmp_path / "run", epochs=1)
    config.init_from = str(tmp_path / "other.safetensors")
    with pytest.raises(SrlabError, match="warm start: no tensor"):
        train(config, progress=False)
