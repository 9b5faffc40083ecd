"""``srlab plot RUN_DIR``: training curves from train.log as SVG and PNG; bad logs are one-line errors."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from srlab.report.training_curves import read_train_log
from srlab.train.config import TrainConfig
from srlab.train.trainer import train

SVG = "{http://www.w3.org/2000/svg}"

# What the trainer writes, with a run resumed from its checkpoint at iteration 20 after it had logged
# iteration 30 (its lines from 30 on are replaced), a GAN term, and a line of an older srlab (no it/s).
LOG = """\
2026-12-05 10:00:00 model rdsr_s x2 params 3349 train 4 images (hr_only) val 2 images iters/epoch 10 device cpu
2026-12-05 10:00:00 loss 1*l1 + 0.005*gan base lr 0.0005
2026-12-05 10:00:05 epoch 1 iter 10 lr 4.900e-04 val_psnr_y 28.1000 val_ssim_y 0.8100 best_psnr_y 28.1000 (epoch 1) time 5.0s loss_l1 0.05 loss_gan 0.7 loss_discriminator 1.3
2026-12-05 10:00:10 epoch 2 iter 20 lr 4.000e-04 val_psnr_y 28.3000 val_ssim_y 0.8200 best_psnr_y 28.3000 (epoch 2) time 10.0s loss_l1 0.04 loss_gan 0.69 loss_discriminator 1.2 it/s 2.5 data_wait 1.5%
2026-12-05 10:00:15 epoch 3 iter 30 lr 3.000e-04 val_psnr_y 99.0000 val_ssim_y 0.9900 best_psnr_y 99.0000 (epoch 3) time 15.0s loss_l1 0.03 it/s 2.5 data_wait 1.5%
2026-12-05 11:00:00 resumed: rewrote last.safetensors from state.pt (a kill had cut its last checkpoint short)
2026-12-05 11:00:05 epoch 3 iter 30 lr 3.000e-04 val_psnr_y 28.4000 val_ssim_y 0.8300 best_psnr_y 28.4000 (epoch 3) time 5.0s loss_l1 0.035 loss_gan 0.68 loss_discriminator 1.1 it/s 2.4 data_wait 2.0%
2026-12-05 11:00:10 stage 2/2 (finetune): epochs 4-4 loss 1*l1 base lr 0.0001
2026-12-05 11:00:15 epoch 4 iter 40 lr 1.000e-04 val_psnr_y 28.5000 val_ssim_y 0.8350 best_psnr_y 28.5000 (epoch 4) time 10.0s stage 2 (finetune) loss_l1 0.03 it/s 2.6 data_wait 1.0%
"""


def _run_dir(tmp_path, text=LOG):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text(text)
    return run


def _series(svg_path) -> dict[str, int]:
    """{series name: number of points of its line}."""
    root = ET.parse(svg_path).getroot()
    return {
        g.get("data-series"): len(g.find(f"{SVG}polyline").get("points").split())
        for g in root.iter(f"{SVG}g") if g.get("class") == "series"
    }


def test_reads_validation_lines_and_a_resume_replaces_the_lines_after_its_checkpoint(tmp_path):
    records = read_train_log(_run_dir(tmp_path) / "train.log")
    assert [r.iteration for r in records] == [10, 20, 30, 40]
    assert [r.psnr_y for r in records] == [28.1, 28.3, 28.4, 28.5]  # the resumed 30 replaces the 99 dB line
    assert records[2].losses == {"l1": 0.035, "gan": 0.68, "discriminator": 1.1}
    assert (records[0].iters_per_s, records[0].data_wait) == (None, None)  # older srlab: not logged
    assert (records[3].iters_per_s, records[3].data_wait) == (2.6, pytest.approx(0.01))
    assert records[3].lr == 1e-4 and records[3].ssim_y == 0.835 and records[3].epoch == 4


def test_plot_writes_svg_and_png_of_each_curve(tmp_path, capsys):
    run = _run_dir(tmp_path)
    code, out, err = run_cli(capsys, "plot", run)
    assert code == 0, err
    stems = ["losses", "lr", "val_psnr_y", "val_ssim_y"]
    expected = [run / "plots" / f"{stem}.{ext}" for stem in stems for ext in ("svg", "png")]
    assert out.split() == [str(p) for p in expected]
    assert _series(run / "plots" / "losses.svg") == {"loss_l1": 4, "loss_gan": 3, "loss_discriminator": 3}
    assert _series(run / "plots" / "val_psnr_y.svg") == {"val_psnr_y": 4}
    root = ET.parse(run / "plots" / "lr.svg").getroot()
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert "0.0003" in ticks  # the learning rate's ticks keep their digits
    with Image.open(run / "plots" / "val_psnr_y.png") as png:
        assert png.format == "PNG" and png.size == (1280, 840)
        # Drawn, not blank: the line's blue is in the picture.
        pixels = np.asarray(png.convert("RGB")).reshape(-1, 3).astype(int)
    assert (np.abs(pixels - [0x1F, 0x77, 0xB4]).max(axis=1) < 40).sum() > 500


def test_out_folder_and_svg_only(tmp_path, capsys):
    run = _run_dir(tmp_path)
    code, out, err = run_cli(capsys, "plot", run, "--out", tmp_path / "figures", "--no_png")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "losses.svg", "lr.svg", "val_psnr_y.svg", "val_ssim_y.svg",
    ]
    assert not (run / "plots").exists()


def test_a_line_cut_short_at_the_end_is_skipped(tmp_path, capsys):
    run = _run_dir(tmp_path, LOG + "2026-12-05 11:00:20 epoch 5 iter 50 lr 0.5e-04 val_psnr_y 28.")
    assert [r.iteration for r in read_train_log(run / "train.log")] == [10, 20, 30, 40]
    assert run_cli(capsys, "plot", run, "--no_png")[0] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"no training log '.*train.log': give the run directory of an `srlab train` run"),
        (b"\x80\x81\xfe\xff" * 40, r"training log '.*train.log' is not text"),
        (LOG.splitlines()[0].encode() + b"\n", r"training log '.*train.log' has no validation line yet"),
        (LOG.replace("val_ssim_y 0.8200", "val_ssim_y ?").encode(), r"training log '.*train.log' line 4 is garbled"),
    ],
    ids=["missing", "binary", "no-validation", "garbled"],
)
def test_bad_log_is_one_line_error_naming_the_file(tmp_path, capsys, content, message):
    import re

    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "train.log").write_bytes(content)
    code, out, err = run_cli(capsys, "plot", run)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("srlab: error: ") and re.search(message, err), err
    assert not (run / "plots").exists()


def test_plots_a_real_run(tiny_photos, tmp_path, capsys):
    config = TrainConfig(scale=2, epochs=3, out=str(tmp_path / "run"), seed=0)
    config.model.name, config.model.args = "rdsr_s", {"channels": 8, "num_blocks": 1}
    config.data.train_dir, config.data.val_dir = str(tiny_photos["train"]), str(tiny_photos["val"])
    config.data.patch_size, config.data.batch_size, config.data.repeat = 24, 4, 3
    train(config, progress=False)
    records = read_train_log(tmp_path / "run" / "train.log")
    assert [r.iteration for r in records] == [3, 6, 9]
    assert all(r.iters_per_s > 0 and 0 <= r.data_wait < 1 and "l1" in r.losses for r in records)
    code, _, err = run_cli(capsys, "plot", tmp_path / "run", "--no_png")
    assert code == 0, err
    assert _series(tmp_path / "run" / "plots" / "losses.svg") == {"loss_l1": 3}


def test_run_dir_is_required(capsys):
    code, out, err = run_cli(capsys, "plot")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "the following arguments are required: RUN_DIR" in err
