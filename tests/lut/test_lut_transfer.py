"""SR-Net -> look-up table: the table reproduces the network at its samples; `srlab lut export`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from conftest import OFFICIAL_WEIGHTS, needs_shared, photo, run_cli
from srlab.models.mulut_net import to_mulut
from srlab.models.sr_net import sampled_inputs, to_lut
from srlab.models.weights import save_weights


def test_samples_run_first_tap_slowest_and_end_at_255():
    grid = sampled_inputs(2, 17) * 255
    assert grid.shape == (289, 2)
    assert grid[:3].tolist() == [[0, 0], [0, 16], [0, 32]] and grid[16].tolist() == [0, 255]
    assert grid[17].tolist() == [16, 0] and grid[-1].tolist() == [255, 255]


@pytest.mark.parametrize(("field", "scale"), [("S", 4), ("Y", 2), ("F", 3), ("V", 2)])
def test_the_table_computes_the_network_at_sampled_inputs(field, scale):
    torch.manual_seed(0)
    net = srlab.create_model("sr_net", scale=scale, args={"field": field, "channels": 16}).eval()
    with torch.no_grad():
        for conv in (net.conv1, net.conv6):
            conv.weight.mul_(0.1)  # outputs mostly inside the clamp, where rounding is what differs
    lut = to_lut(net)
    assert (lut.field.name, lut.scale, lut.srlut_order) == (field, scale, False)
    x = torch.randint(0, 16, (1, 3, 9, 10)).float() * 16 / 255  # every pixel a sample (0, 16, ..., 240)
    with torch.no_grad():
        expected, got = net(x), lut(x)
    # four rotations each rounded to an integer of 1/255 (<= 2/255), then the output to 8 bits
    assert (got - expected).abs().max() <= 2.5 / 255 + 1e-6
    assert (got - expected).abs().max() > 0


def test_lut_export_writes_tables_that_upscale_reads(tmp_path, capsys):
    torch.manual_seed(0)
    net = srlab.create_model("sr_net", scale=4, args={"channels": 8}).eval()
    save_weights(tmp_path / "best.safetensors", net)
    code, out, _ = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "best.safetensors",
                           "-o", tmp_path / "model.lut")
    assert code == 0 and "S table x4: 83521 entries x 16" in out
    code, _, _ = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "best.safetensors",
                         "-o", tmp_path / "Model_S_x4_4bit_int8.npy")
    assert code == 0
    expected = to_lut(net)
    from_lut = srlab.create_model(checkpoint=tmp_path / "model.lut")
    assert torch.equal(from_lut.lut, expected.lut) and not from_lut.srlut_order
    npy = np.load(tmp_path / "Model_S_x4_4bit_int8.npy", allow_pickle=False)
    assert npy.dtype == np.int8 and npy.shape == (83521, 1, 4, 4)
    assert np.array_equal(npy.reshape(83521, 16), expected.lut.detach().numpy().astype(np.int8))

    lr = tmp_path / "LR"
    lr.mkdir()
    Image.fromarray(photo("astronaut", (20, 16))).save(lr / "astro.png")
    code, _, _ = run_cli(capsys, "upscale", "--checkpoint", tmp_path / "model.lut", lr, "-o", tmp_path / "OUT")
    assert code == 0
    x = torch.from_numpy(np.array(Image.open(lr / "astro.png"))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = (expected(x)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.array(Image.open(tmp_path / "OUT" / "astro_x4.png")), want)


def test_lut_export_refuses_other_models_and_suffixes(tmp_path, capsys):
    save_weights(tmp_path / "espcn.safetensors", srlab.create_model("espcn", scale=4))
    code, _, err = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "espcn.safetensors", "-o", tmp_path / "m.lut")
    assert code == 2 and "holds a ESPCN, not an sr_net, mulut_net, sr_lut or mulut" in err
    code, _, err = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "espcn.safetensors", "-o", tmp_path / "m.pt")
    assert code == 2 and "must end in .lut" in err


def _tiny_training(tiny_photos) -> list:
    """``srlab train`` flags for one tiny, seeded epoch at x2 on the test photos."""
    return ["--train_dir", tiny_photos["train"], "--val_dir", tiny_photos["val"], "--scale", "2", "--epochs", "1",
            "--batch_size", "2", "--patch_size", "24", "--device", "cpu", "--seed", "3", "--quiet"]


def test_train_export_fine_tune_export(tiny_photos, tmp_path, capsys):
    # SR-LUT end to end on the CLI: train an SR-Net, sample it into a table, fine-tune the table
    # (LUT-aware, from --init_from the exported file), write the fine-tuned table in SR-LUT's layout.
    common = _tiny_training(tiny_photos)
    code, _, err = run_cli(capsys, "train", "--model", "sr_net", "--set", "model.args.channels=16", *common,
                           "--out", tmp_path / "net")
    assert code == 0, err
    assert run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "net" / "best.safetensors",
                   "-o", tmp_path / "net.lut")[0] == 0
    code, _, err = run_cli(capsys, "train", "--model", "sr_lut", "--init_from", tmp_path / "net.lut",
                           "--set", "model.args.srlut_order=false", "--lr", "0.5", *common, "--out", tmp_path / "ft")
    assert code == 0, err
    start = srlab.create_model(checkpoint=tmp_path / "net.lut").lut.detach()
    tuned = srlab.create_model(checkpoint=tmp_path / "ft" / "last.safetensors").lut.detach()
    assert 0 < (tuned - start).abs().max() < 5  # moved from the exported table, not from zeros
    assert run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "ft" / "last.safetensors",
                   "-o", tmp_path / "Model_S_x2_4bit_int8.npy")[0] == 0
    table = np.load(tmp_path / "Model_S_x2_4bit_int8.npy", allow_pickle=False)
    assert np.array_equal(table.reshape(-1, 4), tuned.round().clamp(-128, 127).numpy().astype(np.int8))


@needs_shared(OFFICIAL_WEIGHTS / "mulut")
def test_a_mulut_checkpoint_exports_as_a_folder_of_released_tables(tmp_path, capsys):
    released = OFFICIAL_WEIGHTS / "mulut"
    save_weights(tmp_path / "mulut.safetensors", srlab.create_model(checkpoint=released))
    code, out, err = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "mulut.safetensors",
                             "-o", tmp_path / "tables")
    assert code == 0, err
    for original in sorted(released.glob("LUT_ft_*.npy")):
        written = np.load(tmp_path / "tables" / original.name, allow_pickle=False)
        assert written.dtype == np.int8 and np.array_equal(written, np.load(original, allow_pickle=False))
    code, _, err = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "mulut.safetensors",
                           "-o", tmp_path / "tables.lut")
    assert code == 2 and "give a folder name" in err


def test_mulut_net_train_export_fine_tune_export(tiny_photos, tmp_path, capsys):
    # MuLUT end to end on the CLI: train the network, sample it into tables (named as MuLUT's transfer names
    # them), fine-tune the tables (--init_from the folder), write the fine-tuned tables.
    common = _tiny_training(tiny_photos)
    code, _, err = run_cli(capsys, "train", "--model", "mulut_net", "--set", "model.args.channels=4", *common,
                           "--out", tmp_path / "net")
    assert code == 0, err
    code, _, err = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "net" / "best.safetensors",
                           "-o", tmp_path / "net.lut")
    assert code == 2 and "give a folder name" in err
    code, out, err = run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "net" / "best.safetensors",
                             "-o", tmp_path / "tables")
    assert code == 0 and "mulut x2: 6 tables" in out, err
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        f"LUT_x2_4bit_int8_s{s}_{m}.npy" for s in (1, 2) for m in "dsy"
    ]
    net = srlab.create_model(checkpoint=tmp_path / "net" / "best.safetensors")
    start = srlab.create_model(checkpoint=tmp_path / "tables")
    for name, table in to_mulut(net).luts.items():
        assert torch.equal(start.luts[name], table), name
    code, _, err = run_cli(capsys, "train", "--model", "mulut", "--init_from", tmp_path / "tables", "--lr", "0.5",
                           *common, "--out", tmp_path / "ft")
    assert code == 0, err
    tuned = srlab.create_model(checkpoint=tmp_path / "ft" / "last.safetensors")
    moved = max((tuned.luts[k] - start.luts[k]).abs().max().item() for k in start.luts)
    assert 0 < moved < 5  # moved from the transferred tables, not from zeros
    assert run_cli(capsys, "lut", "export", "--checkpoint", tmp_path / "ft" / "last.safetensors",
                   "-o", tmp_path / "tuned")[0] == 0
    table = np.load(tmp_path / "tuned" / "LUT_ft_x2_4bit_int8_s2_y.npy", allow_pickle=False)
    assert np.array_equal(table, tuned.luts["s2_y"].detach().round().clamp(-128, 127).numpy().astype(np.int8))
