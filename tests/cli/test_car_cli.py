"""``srlab car``: train a tiny pair, score its round trip, downscale a folder with it."""

from conftest import run_cli

from srlab.data.io import read_rgb

TINY = ["--iterations", "2", "--patch_size", "32", "--batch_size", "2", "--resampler_channels", "16",
        "--upscaler_channels", "8", "--upscaler_blocks", "1", "--log_every", "1"]


def test_train_eval_and_downscale(capsys, tmp_path, tiny_photos):
    ckpt = tmp_path / "car.pt"
    code, out, err = run_cli(capsys, "car", "train", "--train_dir", tiny_photos["train"], "--out", ckpt, *TINY)
    assert code == 0, err
    assert out.splitlines()[1].startswith("iter 2 ") and f"wrote {ckpt}" in out
    code, out, err = run_cli(capsys, "car", "eval", ckpt, tiny_photos["val"])
    assert code == 0, err
    assert "car x4 round trip, mean PSNR-Y" in out
    (tmp_path / "in").mkdir()
    for path in sorted(tiny_photos["val"].iterdir())[:1]:
        (tmp_path / "in" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "car", "downscale", ckpt, tmp_path / "in", tmp_path / "out")
    assert code == 1 and "wrote 1 images" in out and len(err.strip().splitlines()) == 1 and "broken" in err
    written = sorted((tmp_path / "out").iterdir())
    h, w = read_rgb(sorted(tiny_photos["val"].iterdir())[0]).shape[-2:]
    assert len(written) == 1 and read_rgb(written[0]).shape[-2:] == (h // 8 * 8 // 4, w // 8 * 8 // 4)


def test_downscale_refuses_a_bicubic_baseline(capsys, tmp_path, tiny_photos):
    ckpt = tmp_path / "bicubic.pt"
    code, _, err = run_cli(capsys, "car", "train", "--train_dir", tiny_photos["train"], "--out", ckpt,
                           "--downscaler", "bicubic", *TINY)
    assert code == 0, err
    code, _, err = run_cli(capsys, "car", "downscale", ckpt, tiny_photos["val"], tmp_path / "out")
    assert code == 2 and "was trained on bicubic LR images: downscale with a --downscaler car checkpoint" in err


def test_a_bad_checkpoint_is_one_line(capsys, tmp_path, tiny_photos):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    code, _, err = run_cli(capsys, "car", "eval", bad, tiny_photos["val"])
    assert code == 2 and err.startswith("srlab: error: ") and "is not a CAR checkpoint" in err
    assert len(err.strip().splitlines()) == 1
