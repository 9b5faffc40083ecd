"""``srlab export-weights``: a .pth state dict for the official code (derived buffers included)."""

from __future__ import annotations

import pytest
import torch

from conftest import run_cli
from srlab.errors import SrlabError
from srlab.models.create import create_model, model_with_weights
from srlab.export.official_state import official_state_dict, save_official_weights
from srlab.models.weights import save_weights


def test_cli_writes_a_pth_that_torch_loads_safely_and_srlab_reads_back(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("swinir_light", scale=2)
    save_weights(tmp_path / "mine.safetensors", model)
    code, out, err = run_cli(capsys, "export-weights", "--checkpoint", tmp_path / "mine.safetensors",
                             "-o", tmp_path / "official.pth")
    assert (code, err) == (0, "")
    assert out == f"wrote {tmp_path / 'official.pth'}: 366 tensors, 12 of them buffers the official code derives\n"
    written = torch.load(tmp_path / "official.pth", weights_only=True)
    expected = official_state_dict(model)
    assert list(written) == list(expected)
    for key in expected:
        torch.testing.assert_close(written[key], expected[key], rtol=0, atol=0)
    back, _ = model_with_weights("swinir_light", scale=2, checkpoint=tmp_path / "official.pth")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, rtol=0, atol=0)


def test_cli_errors_are_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    save_weights(tmp_path / "mine.safetensors", create_model("swinir_light", scale=2))
    checks = [
        (["-o", tmp_path / "w.safetensors"], "official weights are written as a .pth file (name it .pth)"),
        (["-o", tmp_path / "w.pth", "--img_size", "60"], "--img_size must be a multiple of the window size 8"),
        (["-o", tmp_path / "w.pth", "--img_size", "0"], "argument --img_size/--img-size: must be a positive integer, got '0'"),
    ]
    for flags, message in checks:
        code, _, err = run_cli(capsys, "export-weights", "--checkpoint", tmp_path / "mine.safetensors", *flags)
        assert code == 2 and err.count("\n") == 1 and err.startswith("srlab: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.safetensors"]
    with pytest.raises(SrlabError, match="name it .pth"):
        save_official_weights(tmp_path / "w.bin", create_model("swinir_light", scale=2))
