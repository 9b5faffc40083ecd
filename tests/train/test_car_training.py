"""CAR's joint training as `srlab train`'s step car: the regularisers, the resampler trained beside the
model, exact resume, validation on the resampler's LR images, the exported pair, bad settings."""

import math
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import CONFIGS
from srlab.cli.main import main
from srlab.data.io import list_images, read_rgb
from srlab.errors import SrlabError
from srlab.inference.evaluate import evaluate_images
from srlab.models.car import car_downscale
from srlab.models.weights import weights_bytes
from srlab.train.car import load_car_run
from srlab.train.car_step import offset_loss, tv_loss
from srlab.train.checkpoint import content_digest
from srlab.train.config import TrainConfig, apply_overrides, validate


def _args(tiny_photos, out, *extra, epochs=2):
    return [
        "train", "--config", str(CONFIGS / "car_x4.yaml"), "--train_dir", str(tiny_photos["train"]),
        "--val_dir", str(tiny_photos["val"]), "--out", str(out), "--epochs", str(epochs), "--batch_size", "2",
        "--patch_size", "32", "--set", "model.args={channels: 8, num_blocks: 1}", "--set", "data.repeat=1",
        "--set", "car.resampler_channels=16", "--set", "val_every=1", "--set", "schedule.total_epochs=2",
        "--device", "cpu", "--deterministic", "--quiet", *extra,
    ]


@pytest.fixture(scope="module")
def car_run(tiny_photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("car") / "run"
    assert main(_args(tiny_photos, out)) == 0
    return out


def test_offset_loss_weighs_each_tap_by_its_distance_from_k_over_2():
    """k = 13: a single offset (dx, dy) = (0.6, 0.8) at tap (ky, kx) = (0, 3), one pixel of a batch of 2."""
    offsets_h, offsets_v = torch.zeros(2, 169, 1, 1), torch.zeros(2, 169, 1, 1)
    offsets_h[1, 3], offsets_v[1, 3] = 0.6, 0.8
    distance = math.hypot(0 - 6.5, 3 - 6.5) / 13
    torch.testing.assert_close(offset_loss(offsets_h, offsets_v), torch.tensor(1.0 * distance / 2))


def test_offset_loss_has_a_finite_gradient_where_an_offset_is_zero():
    """sqrt's gradient at 0 is NaN; an offset of exactly (0, 0) must not turn the resampler's weights to NaN."""
    offsets_h, offsets_v = torch.zeros(1, 169, 1, 1), torch.zeros(1, 169, 1, 1, requires_grad=True)
    offsets_h[0, 1] = 0.3
    offsets_h.requires_grad_(True)
    offset_loss(offsets_h, offsets_v).backward()
    assert torch.isfinite(offsets_h.grad).all() and torch.isfinite(offsets_v.grad).all()
    assert offsets_h.grad[0, 0].item() == 0 and offsets_h.grad[0, 1].item() > 0  # at rest 0; moved: its distance


def test_tv_loss_takes_horizontal_steps_of_dy_and_vertical_steps_of_dx():
    kernels = torch.full((1, 1, 2, 2), 0.5)
    offsets_h = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])  # dx changes from row to row only
    offsets_v = torch.tensor([[[[0.0, 0.4], [0.0, 0.4]]]])  # dy changes from column to column only
    torch.testing.assert_close(tv_loss(offsets_h, offsets_v, kernels), torch.tensor(2 * 0.5 * 1.0 + 2 * 0.5 * 0.4))
    torch.testing.assert_close(tv_loss(offsets_v, offsets_h, kernels), torch.tensor(0.0))


def test_the_run_trains_the_resampler_with_the_model_and_exports_both(car_run):
    state = torch.load(car_run / "state.pt", weights_only=True)
    assert {k.split(".")[1] for k in state["step_modules"]} == {"resampler"}
    assert "generators.resampler.ds_1.1.weight" in state["step_modules"]
    log = (car_run / "train.log").read_text()
    assert "model car_edsr x4" in log and all(f"loss_{t}" in log for t in ("l1", "tv", "offsets"))
    for which in ("best", "last"):
        assert (car_run / f"{which}.safetensors").is_file() and (car_run / f"{which}.resampler.safetensors").is_file()
    # last.resampler.safetensors holds the resampler that state.pt holds (the run's last step was a validation)
    exported = load_file(car_run / "last.resampler.safetensors")
    assert all(torch.equal(exported[k], state["step_modules"][f"generators.resampler.{k}"]) for k in exported)
    assert set(state["exports"]) == {"last.safetensors", "best.safetensors", "last.resampler.safetensors",
                                     "best.resampler.safetensors"}


def test_validation_scores_the_model_on_the_resamplers_lr_images(car_run, tiny_photos):
    last = [line for line in (car_run / "train.log").read_text().splitlines() if "val_psnr_y" in line][-1]
    logged = float(last.split("val_psnr_y ")[1].split()[0])
    car = load_car_run(car_run, "last")
    images = []
    for path in list_images(tiny_photos["val"]):
        hr = read_rgb(path)
        lr = car_downscale(car.resampler, hr)
        images.append((path.name, lr, hr[:, : lr.shape[1] * 4, : lr.shape[2] * 4]))
    means, _ = evaluate_images(car.upscaler, images)
    assert f"{means['psnr_y']:.4f}" == f"{logged:.4f}"


def test_a_run_resumed_in_two_parts_equals_one_run(car_run, tiny_photos, tmp_path):
    parts = tmp_path / "parts"
    assert main(_args(tiny_photos, parts, epochs=1)) == 0
    mid = torch.load(parts / "state.pt", weights_only=True)["step_modules"]
    assert main(["train", "--out", str(parts), "--resume", "--epochs", "2", "--quiet"]) == 0
    a = torch.load(car_run / "state.pt", weights_only=True)
    b = torch.load(parts / "state.pt", weights_only=True)
    for part in ("model", "step_modules"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    key = "generators.resampler.ds_1.1.weight"
    assert not torch.equal(mid[key], b["step_modules"][key])  # the second part moved the resampler


def test_a_pair_cut_by_a_kill_is_refused_until_the_run_is_resumed(car_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for path in car_run.iterdir():
        (run / path.name).write_bytes(path.read_bytes())
    car = load_car_run(run, "last")
    # A kill after last.safetensors and before last.resampler.safetensors: the resampler of an older validation.
    (run / "last.resampler.safetensors").write_bytes(weights_bytes(car.resampler, metadata={"srlab.iteration": "1"}))
    with pytest.raises(SrlabError, match=r"last.resampler.safetensors' holds iteration 1 but .* resume the run once"):
        load_car_run(run, "last")
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    assert load_car_run(run, "last").resampler is not None


class SimulatedKill(BaseException):
    """Raised in place of a write: nothing after it runs, as after SIGKILL."""


@pytest.fixture(scope="module")
def epoch1(tiny_photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("car_epoch1") / "run"
    assert main(_args(tiny_photos, out, epochs=1)) == 0
    return out


# Resuming epoch 1 to 2 writes config.yaml, then state.pt, then the model's and the resampler's weight files.
@pytest.mark.parametrize("kill_at", range(1, 7))
def test_a_kill_at_any_write_leaves_a_run_that_resumes_to_the_same_pair(car_run, epoch1, tmp_path, monkeypatch,
                                                                        kill_at):
    run = tmp_path / "run"
    shutil.copytree(epoch1, run)
    targets, real_replace = [], os.replace

    def replace(src, dst, *args, **kwargs):
        targets.append(os.path.basename(dst))
        if len(targets) == kill_at:
            raise SimulatedKill
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    resume = ["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]
    with pytest.raises(SimulatedKill):
        main(resume)
    monkeypatch.undo()
    assert targets == ["config.yaml", "state.pt", "last.safetensors", "best.safetensors",
                       "last.resampler.safetensors", "best.resampler.safetensors"][:kill_at]
    assert main(resume) == 0
    state = torch.load(run / "state.pt", weights_only=True)
    for name, record in state["exports"].items():
        assert content_digest((run / name).read_bytes()) == record["digest"], name
    for which in ("best", "last"):
        for name in (f"{which}.safetensors", f"{which}.resampler.safetensors"):
            a, b = load_file(run / name), load_file(car_run / name)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
        assert load_car_run(run, which).resampler is not None


@pytest.mark.parametrize("overrides, message", [
    ({"scale": 3}, "step car downscales by 2 or 4"),
    ({"car": {"resampler_channels": 18}}, "car.resampler_channels must be a positive multiple of 4"),
    ({"car": {"tv_weight": -1.0}}, "car.tv_weight must be >= 0"),
    ({"data": {"patch_size": 36}}, "set --patch_size to a multiple of 8, got 36"),
    ({"amp": "bf16"}, "step car trains in float32: set amp off"),
    ({"degradation": {"preset": "bicubic"}}, "step car makes its LR images with the resampler: remove degradation"),
    ({"car": {"channels": 8}}, "car.channels"),
])
def test_bad_settings_are_one_error(overrides, message):
    config = TrainConfig()
    apply_overrides(config, {"step": "car", "scale": 4,
                             "data": {"patch_size": 48, "train_dir": "hr", "val_dir": "val"}})
    with pytest.raises(SrlabError, match=message):
        apply_overrides(config, overrides)
        validate(config)


def test_the_resampler_file_is_refused_as_a_model_in_one_line(car_run, capsys):
    assert main(["eval", "--checkpoint", str(car_run / "best.resampler.safetensors"), "--data", str(car_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds the resampler that a `srlab train` run trains beside its model" in err
    assert "srlab car eval RUN_DIR" in err
