"""TensorBoard logging (``logging.tensorboard``): what a run writes, resume without duplicate steps,
rank 0 alone writing under torchrun, and the one-line error without the package."""

import os
import subprocess
import sys

import pytest

import srlab.train.step as step
from conftest import tiny_train_config
from srlab.cli.train import add_arguments, build_config
from srlab.errors import SrlabError
from srlab.train.config import TrainConfig, apply_overrides, validate
from srlab.train.tensorboard import BOARD_DIR
from srlab.train.trainer import train

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _config(tiny_photos, out, **overrides) -> TrainConfig:
    config = tiny_train_config(tiny_photos, out, **overrides)
    config.logging.tensorboard = True
    return config


def _board(run_dir):
    """Every event file of the run as TensorBoard shows it (purged steps dropped)."""
    accumulator = event_accumulator.EventAccumulator(
        str(run_dir / BOARD_DIR), size_guidance={"scalars": 0, "images": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


def _series(board, tag) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in board.Scalars(tag)]


def _log_values(run_dir, key) -> list[float]:
    lines = [line for line in (run_dir / "train.log").read_text().splitlines() if "val_psnr_y" in line]
    return [float(line.split(f" {key} ")[1].split()[0]) for line in lines]


def test_run_logs_losses_lr_validation_images_and_config(tiny_photos, tmp_path):
    config = _config(tiny_photos, tmp_path / "run", epochs=2)
    config.logging.every_iters = 2
    config.logging.val_images = 1
    train(config, progress=False)  # 3 iterations per epoch, validation at 3 and 6
    board = _board(tmp_path / "run")
    tags = board.Tags()
    assert {"train/loss", "train/loss_l1", "train/lr", "val/psnr_y", "val/ssim_y", "val/best_psnr_y",
            "time/iters_per_s", "time/data_wait"} <= set(tags["scalars"])
    # Every logging.every_iters iterations, and at the checkpoints (validations at 3 and 6).
    assert [s for s, _ in _series(board, "train/loss")] == [2, 3, 4, 6]
    lrs = [v for _, v in _series(board, "train/lr")]
    assert lrs[0] > lrs[-1] > 0  # the cosine decays
    psnr = _series(board, "val/psnr_y")
    assert [s for s, _ in psnr] == [3, 6]
    assert [round(v, 4) for _, v in psnr] == pytest.approx(_log_values(tmp_path / "run", "val_psnr_y"), abs=1e-4)
    assert all(0 <= v < 1 for _, v in _series(board, "time/data_wait"))
    # One validation image (the first, chelsea 60x48): its SR at every validation, its HR once.
    assert sorted(tags["images"]) == ["val/chelsea", "val_hr/chelsea"]
    shown = board.Images("val/chelsea")
    assert [image.step for image in shown] == [3, 6] and (shown[0].width, shown[0].height) == (60, 48)
    assert [image.step for image in board.Images("val_hr/chelsea")] == [0]
    config_text = board.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "tensorboard: true" in config_text and "name: rdsr_s" in config_text


def test_off_by_default_writes_no_event_files(tiny_photos, tmp_path):
    config = _config(tiny_photos, tmp_path / "run", epochs=1)
    config.logging.tensorboard = False
    train(config, progress=False)
    assert not (tmp_path / "run" / BOARD_DIR).exists()
    assert " it/s " in (tmp_path / "run" / "train.log").read_text()


def test_interrupted_run_resumed_shows_every_step_once_as_one_run(tiny_photos, tmp_path, monkeypatch):
    """A run killed at iteration 5 (checkpoint at 3) and resumed: the resumed run's new event file
    purges what the killed one wrote after iteration 3, so each step appears once, with the values of
    an uninterrupted run (the means over every 2 iterations restart at the checkpoint: 2, 3, 4, 6)."""
    overrides = {"epochs": 2, "val_every_iters": 3, "ema_decay": 0.9}
    reference = _config(tiny_photos, tmp_path / "ref", **overrides)
    reference.logging.every_iters = 2
    train(reference, progress=False)

    interrupted = _config(tiny_photos, tmp_path / "int", **overrides)
    interrupted.logging.every_iters = 2
    calls = {"n": 0}
    real_update = step.update_ema

    def crash_at_iteration_5(ema, model, decay):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        real_update(ema, model, decay)

    monkeypatch.setattr(step, "update_ema", crash_at_iteration_5)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, progress=False)
    monkeypatch.setattr(step, "update_ema", real_update)
    assert [s for s, _ in _series(_board(tmp_path / "int"), "train/loss")] == [2, 3, 4]  # 4: past the checkpoint
    train(interrupted, resume=True, progress=False)

    assert len(list((tmp_path / "int" / BOARD_DIR).glob("events.out.tfevents.*"))) == 2  # a new file on resume
    resumed, whole = _board(tmp_path / "int"), _board(tmp_path / "ref")
    for tag in ("train/loss", "train/lr", "val/psnr_y", "val/best_psnr_y"):
        assert _series(resumed, tag) == _series(whole, tag), tag
    assert [s for s, _ in _series(resumed, "train/loss")] == [2, 3, 4, 6]


def test_missing_package_is_one_line_error_before_training(tiny_photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(SrlabError, match=r"needs the tensorboard package: pip install tensorboard"):
        train(_config(tiny_photos, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


def test_flag_and_config_keys(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert build_config(parser.parse_args(["--tensorboard", "--out", str(tmp_path)])).logging.tensorboard
    assert not build_config(parser.parse_args(["--out", str(tmp_path)])).logging.tensorboard
    config = TrainConfig()
    apply_overrides(config, {"logging": {"tensorboard": True, "every_iters": 5}})
    assert (config.logging.tensorboard, config.logging.every_iters, config.logging.val_images) == (True, 5, 3)
    with pytest.raises(SrlabError, match="unknown config key 'logging.tensorbord'"):
        apply_overrides(TrainConfig(), {"logging": {"tensorbord": True}})
    config.data.train_dir = config.data.val_dir = "x"
    config.logging.every_iters = 0
    with pytest.raises(SrlabError, match="logging.every_iters must be >= 1, got 0"):
        validate(config)


@pytest.mark.slow  # two torchrun processes: ~16 s on 2 cores
def test_only_rank_0_writes_under_torchrun(tiny_photos, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    args = [
        "train", "--train_dir", str(tiny_photos["train"]), "--val_dir", str(tiny_photos["val"]), "--scale", "2",
        "--epochs", "1", "--batch_size", "4", "--patch_size", "24", "--model", "rdsr_s",
        "--set", "model.args={channels: 8, num_blocks: 1}", "--out", str(tmp_path / "two"), "--quiet",
        "--tensorboard", "--set", "logging.val_images=2",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "srlab", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "two" / BOARD_DIR).glob("events.out.tfevents.*"))) == 1
    # Rank 0 validates the images 0, 2, ... of the list (chelsea); retina is rank 1's and is not shown.
    assert sorted(_board(tmp_path / "two").Tags()["images"]) == ["val/chelsea", "val_hr/chelsea"]
