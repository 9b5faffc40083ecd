"""Weakly supervised training from unpaired LR and HR images (step unpaired, --unpaired_lr_dir)."""

import pytest
import torch
import yaml

from conftest import CONFIGS
from srlab.cli.main import main
from srlab.data.io import list_images, read_rgb, write_image
from srlab.data.resize import imresize
from srlab.data.unpaired import UnpairedPatchDataset
from srlab.errors import SrlabError
from srlab.train.config import TrainConfig, apply_overrides, validate
from srlab.train import unpaired_step
from srlab.unsupervised.cycle import ClassicalDegrader, Degrader, cycle_loss, high_pass


@pytest.fixture(scope="module")
def unpaired_lr(tiny_photos, tmp_path_factory):
    """LR images of a degradation unknown to the model (x2 bicubic plus noise), from photos not in train/."""
    folder = tmp_path_factory.mktemp("unpaired_lr")
    generator = torch.Generator().manual_seed(0)
    for path in list_images(tiny_photos["val"]):
        lr = imresize(read_rgb(path), scale=0.5)
        write_image(folder / path.name, (lr + 0.04 * torch.randn(lr.shape, generator=generator)).clamp(0, 1))
    return folder


def _args(tiny_photos, unpaired_lr, out, *extra, epochs=2):
    return [
        "train", "--train_dir", str(tiny_photos["train"]), "--val_dir", str(tiny_photos["val"]),
        "--unpaired_lr_dir", str(unpaired_lr), "--scale", "2", "--epochs", str(epochs), "--batch_size", "2",
        "--patch_size", "32", "--model", "rdsr_s", "--set", "model.args={channels: 8, num_blocks: 1}",
        "--set", "unpaired={discriminator_channels: 4, degrader_channels: 4, degrader_blocks: 1}",
        "--deterministic", "--out", str(out), "--quiet", *extra,
    ]


def test_unpaired_run_trains_the_model_the_degrader_and_both_discriminators(tiny_photos, unpaired_lr, tmp_path):
    out = tmp_path / "run"
    assert main(_args(tiny_photos, unpaired_lr, out, "--set", "unpaired.degrader=network")) == 0
    state = torch.load(out / "state.pt", weights_only=True)
    modules = state["step_modules"]
    assert {k.split(".")[1] for k in modules if k.startswith("generators.")} == {"degrader"}
    assert {k.split(".")[1] for k in modules if k.startswith("discriminators.")} == {"hr", "lr"}
    # The degrader's last convolution starts at zero (F = bicubic) and has moved.
    assert modules["generators.degrader.tail.weight"].abs().sum() > 0
    log = (out / "train.log").read_text()
    for term in ("cycle", "pseudo_l1", "identity", "adversarial_hr", "adversarial_lr", "discriminator"):
        assert term in log
    assert "2 unpaired LR images" in log


def test_unpaired_run_resumed_equals_one_run(tiny_photos, unpaired_lr, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_args(tiny_photos, unpaired_lr, whole, "--set", "schedule.total_epochs=2", epochs=2)) == 0
    assert main(_args(tiny_photos, unpaired_lr, parts, "--set", "schedule.total_epochs=2", epochs=1)) == 0
    assert main(["train", "--out", str(parts), "--resume", "--epochs", "2", "--quiet"]) == 0
    a = torch.load(whole / "state.pt", weights_only=True)
    b = torch.load(parts / "state.pt", weights_only=True)
    for part in ("model", "step_modules"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])


def test_the_example_config_trains_end_to_end(tiny_photos, unpaired_lr, tmp_path):
    """configs/unpaired_x4.yaml, made tiny (x2, 3k-parameter model): no HR discriminator term there."""
    out = tmp_path / "run"
    argv = _args(tiny_photos, unpaired_lr, out, "--config", str(CONFIGS / "unpaired_x4.yaml"), "--set", "data.repeat=1",
                 "--set", "data.patch_size=32", "--set", "data.val_max_images=1", "--set", "val_every=1", epochs=1)
    assert main(argv) == 0
    log = (out / "train.log").read_text()
    assert "loss_adversarial_lr" in log and "loss_adversarial_hr" not in log


@pytest.mark.parametrize("overrides, message", [
    ({"data": {"unpaired_lr_dir": "lr"}}, "only read by unpaired training, not by step supervised"),
    ({"step": "unpaired"}, "pass --unpaired_lr_dir DIR"),
    ({"step": "unpaired", "data": {"unpaired_lr_dir": "lr", "patch_size": 24}}, "multiple of 16"),
    ({"step": "unpaired", "data": {"unpaired_lr_dir": "lr"}, "losses": [{"name": "gan"}]}, "remove the gan term"),
    ({"step": "unpaired", "data": {"unpaired_lr_dir": "lr"}, "unpaired": {"gan_type": "wgan"}}, "unknown unpaired.gan_type"),
    ({"step": "unpaired", "data": {"unpaired_lr_dir": "lr"}, "unpaired": {"cycle_weight": -1}}, "cycle_weight must be >= 0"),
    ({"step": "unpaired", "data": {"unpaired_lr_dir": "lr"}, "unpaired": {"degrader": "gan"}}, "unknown unpaired.degrader"),
    ({"step": "unpaired", "data": {"unpaired_lr_dir": "lr"}, "unpaired": {"lr_discriminator_input": "fft"}},
     "unknown unpaired.lr_discriminator_input"),
    ({"step": "unpaired", "data": {"unpaired_lr_dir": "lr"}, "degradation": {"preset": "bicubic"}}, "remove degradation"),
])
def test_unpaired_settings_are_checked(overrides, message):
    config = TrainConfig()
    apply_overrides(config, {"scale": 2, "data": {"train_dir": "hr", "val_dir": "val", "patch_size": 32}})
    apply_overrides(config, overrides)
    with pytest.raises(SrlabError, match=message):
        validate(config)


def test_a_missing_unpaired_folder_is_a_one_line_error(tiny_photos, tmp_path, capsys):
    assert main(_args(tiny_photos, tmp_path / "absent", tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("srlab: error: --unpaired_lr_dir") and "is not a folder" in err and "\n" not in err


def test_unpaired_patches_are_independent_and_reproducible(tiny_photos, unpaired_lr):
    hr_paths = list_images(tiny_photos["train"])
    data = UnpairedPatchDataset(hr_paths, unpaired_lr, scale=2, patch_size=32, seed=3)
    lr, hr = data[5]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 32, 32)
    again = UnpairedPatchDataset(hr_paths, unpaired_lr, scale=2, patch_size=32, seed=3)[5]
    assert torch.equal(lr, again[0]) and torch.equal(hr, again[1])
    # The HR patch comes from image index mod N; the LR patch from the other set, drawn apart from it.
    assert not torch.equal(hr, data[6][1])
    with pytest.raises(SrlabError, match=r"--unpaired_lr_dir image .* \(30x24\) is smaller than its 32-pixel patches"):
        UnpairedPatchDataset(hr_paths, unpaired_lr, scale=2, patch_size=64)


def test_the_degrader_starts_as_the_bicubic_degradation_and_learns_a_residual():
    degrader = Degrader(scale=4, channels=8, blocks=1)
    hr = torch.rand(2, 3, 32, 40)
    assert torch.equal(degrader(hr), imresize(hr, scale=0.25))
    degrader(hr).sum().backward()
    assert degrader.tail.weight.grad.abs().sum() > 0  # the residual's path is trainable from zero
    with pytest.raises(ValueError, match="multiples of the scale 4"):
        degrader(torch.rand(1, 3, 30, 32))


def test_the_classical_degrader_is_a_gaussian_kernel_bicubic_and_noise():
    degrader = ClassicalDegrader(scale=2, radius=6)
    with torch.no_grad():
        degrader.log_blur.copy_(torch.log(torch.tensor([1.5, 0.8])) / degrader.RATE)
        degrader.log_noise.copy_(torch.log(torch.tensor([0.02, 0.05, 0.1])) / degrader.RATE)
    t = torch.arange(-6, 7, dtype=torch.float32)
    along, across = torch.exp(-t ** 2 / (2 * 1.5 ** 2)), torch.exp(-t ** 2 / (2 * 0.8 ** 2))
    expected = across[:, None] * along[None, :]  # angle 0: the first deviation runs along the width
    torch.testing.assert_close(degrader.kernel(), expected / expected.sum())
    with torch.no_grad():
        degrader.angle.fill_(torch.pi / 2 / degrader.RATE)  # a quarter turn swaps the axes
    torch.testing.assert_close(degrader.kernel(), (expected / expected.sum()).T, atol=1e-6, rtol=0)
    hr = torch.full((1, 3, 64, 64), 0.5)
    torch.manual_seed(0)
    lr = degrader(hr)
    assert lr.shape == (1, 3, 32, 32)
    torch.testing.assert_close(degrader(hr, noise=False), torch.full_like(lr, 0.5))  # blur and D keep a flat image
    measured = (lr - 0.5).std(dim=(0, 2, 3))
    torch.testing.assert_close(measured, torch.tensor([0.02, 0.05, 0.1]), rtol=0.15, atol=0)


def test_the_classical_degrader_starts_near_bicubic_and_learns_by_the_adversarial_term_only():
    degrader = ClassicalDegrader(scale=4)
    hr = torch.rand(2, 3, 32, 32)
    assert (degrader(hr, noise=False) - imresize(hr, scale=0.25)).abs().max() < 0.03
    sr = torch.rand(1, 3, 32, 32, requires_grad=True)
    cycle_loss(degrader, sr, torch.rand(1, 3, 8, 8)).backward()
    assert sr.grad.abs().sum() > 0 and all(p.grad is None for p in degrader.parameters())  # held in the cycle
    degrader(hr).std().backward()
    assert all(p.grad is not None for p in degrader.parameters())  # the angle's is 0 while the kernel is round
    assert degrader.log_blur.grad.abs().min() > 0 and degrader.log_noise.grad.abs().min() > 0


def test_an_unpaired_run_trains_the_classical_degrader(tiny_photos, unpaired_lr, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(unpaired_step, "high_pass", lambda x: seen.append(x.shape) or high_pass(x))
    out = tmp_path / "run"
    assert main(_args(tiny_photos, unpaired_lr, out)) == 0  # the defaults: classical F, high-pass LR discriminator
    assert seen and all(shape[-2:] == (16, 16) for shape in seen)  # the LR discriminator's inputs, F(y) and x
    modules = torch.load(out / "state.pt", weights_only=True)["step_modules"]
    assert set(k for k in modules if k.startswith("generators.")) == {
        "generators.degrader.log_blur", "generators.degrader.angle", "generators.degrader.log_noise"}
    assert not torch.equal(modules["generators.degrader.log_noise"], ClassicalDegrader(scale=2).log_noise.detach())


def test_the_high_pass_removes_flat_colour_and_keeps_detail():
    flat = torch.full((1, 3, 12, 12), 0.3)
    assert high_pass(flat).abs().max() < 1e-6
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert 0.85 < high_pass(0.3 + noise).std() / noise.std() < 1  # white noise keeps 24/25 of its variance


def test_a_run_saved_before_the_classical_degrader_resumes_with_its_network(tiny_photos, unpaired_lr, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(tiny_photos, unpaired_lr, out, "--set", "unpaired.degrader=network",
                      "--set", "unpaired.lr_discriminator_input=image", epochs=1)) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    del config["unpaired"]["degrader"], config["unpaired"]["lr_discriminator_input"]  # as written before them
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert "generators.degrader.tail.weight" in torch.load(out / "state.pt", weights_only=True)["step_modules"]
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--quiet", "--set", "unpaired.degrader=classical"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot resume" in err and "unpaired.degrader 'classical'" in err and "\n" not in err
