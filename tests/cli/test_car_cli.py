"""``srlab car``: score the round trip of a CAR run of `srlab train` (and of its bicubic baseline),
downscale with it."""

import pytest

from conftest import CONFIGS, run_cli
from srlab.cli.main import main
from srlab.data.io import read_rgb

TINY = ["--epochs", "1", "--batch_size", "2", "--patch_size", "32", "--set", "model.args={channels: 8, num_blocks: 1}",
        "--set", "data.repeat=1", "--set", "car.resampler_channels=16", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def runs(tiny_photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for step in ("car", "supervised"):
        argv = ["train", "--config", str(CONFIGS / "car_x4.yaml"), "--train_dir", str(tiny_photos["train"]),
                "--val_dir", str(tiny_photos["val"]), "--out", str(root / step), "--set", f"step={step}", *TINY]
        assert main(argv) == 0
    return root


def test_eval_scores_the_car_round_trip_and_the_bicubic_baseline(capsys, runs, tiny_photos):
    code, out, err = run_cli(capsys, "car", "eval", runs / "car", tiny_photos["val"])
    assert code == 0, err
    assert "car x4 round trip, mean PSNR-Y" in out and "(2 images)" in out
    code, out, err = run_cli(capsys, "car", "eval", runs / "supervised", tiny_photos["val"], "--weights", "last")
    assert code == 0, err
    assert "bicubic x4 round trip, mean PSNR-Y" in out


def test_downscale_writes_the_8_bit_car_images_and_reports_a_bad_file(capsys, runs, tiny_photos, tmp_path):
    (tmp_path / "in").mkdir()
    first = sorted(tiny_photos["val"].iterdir())[0]
    (tmp_path / "in" / first.name).write_bytes(first.read_bytes())
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "car", "downscale", runs / "car", tmp_path / "in", tmp_path / "out")
    assert code == 1 and "wrote 1 images" in out and len(err.strip().splitlines()) == 1 and "broken" in err
    written = sorted((tmp_path / "out").iterdir())
    h, w = read_rgb(first).shape[-2:]
    assert len(written) == 1 and read_rgb(written[0]).shape[-2:] == (h // 8 * 8 // 4, w // 8 * 8 // 4)


def test_downscale_refuses_the_bicubic_baseline(capsys, runs, tiny_photos, tmp_path):
    code, _, err = run_cli(capsys, "car", "downscale", runs / "supervised", tiny_photos["val"], tmp_path / "out")
    assert code == 2 and "was trained on bicubic LR images (step supervised): downscale with a run of step car" in err


def test_a_folder_that_is_no_run_is_one_line(capsys, tmp_path, tiny_photos):
    code, _, err = run_cli(capsys, "car", "eval", tmp_path, tiny_photos["val"])
    assert code == 2 and err.startswith("srlab: error: ") and "has no best.safetensors" in err
    assert len(err.strip().splitlines()) == 1


def test_the_run_upscales_with_srlab_upscale(capsys, runs, tiny_photos, tmp_path):
    code, _, err = run_cli(capsys, "upscale", "--checkpoint", runs / "car" / "best.safetensors",
                           tiny_photos["val"], "--out", tmp_path / "sr")
    assert code == 0, err
    assert len(list((tmp_path / "sr").iterdir())) == 2
