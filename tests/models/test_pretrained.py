"""The weights bundled with srlab: present, loadable offline, and better than bicubic on real photos."""

import pytest
import torch

import srlab
from conftest import photo
from srlab.cli.main import main
from srlab.data.datasets import modcrop
from srlab.data.resize import bicubic_downscale, bicubic_upscale
from srlab.inference import upscale_tensor
from srlab.metrics import PAPER_PROTOCOL
from srlab.models.create import DEFAULT_MODEL, bundled_weights, list_bundled


def test_default_model_is_bundled_for_x2_x3_x4():
    assert {(DEFAULT_MODEL, s) for s in (2, 3, 4)} <= set(list_bundled())
    total = sum(bundled_weights(DEFAULT_MODEL, s).stat().st_size for s in (2, 3, 4))
    assert total < 4 * 2**20  # a few MB at most


# Photos that are not in the training data (Debian wallpapers); the margin is over MATLAB bicubic.
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_bundled_weights_beat_bicubic(scale, name):
    model = srlab.create_model(DEFAULT_MODEL, scale=scale, pretrained=True)
    assert not model.training
    hr = modcrop(torch.from_numpy(photo(name).copy()).permute(2, 0, 1).float() / 255, scale)
    lr = bicubic_downscale(hr, scale, quantize=True)
    ours = PAPER_PROTOCOL.score(upscale_tensor(model, lr), hr, scale)
    baseline = PAPER_PROTOCOL.score(bicubic_upscale(lr, scale, quantize=True), hr, scale)
    assert ours["psnr_y"] > baseline["psnr_y"] + 1.0  # measured (etds_l): +1.96 (coffee x4) to +4.31 dB
    assert ours["ssim_y"] > baseline["ssim_y"]


def test_pretrained_without_bundle_is_a_clear_error():
    with pytest.raises(srlab.SrlabError, match="bundles no weights for 'rdsr' x2 .*--checkpoint"):
        srlab.create_model("rdsr", scale=2, pretrained=True)


def test_upscale_needs_only_the_scale(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(photo("chelsea", (120, 80))).save(tmp_path / "photo.png")
    assert main(["upscale", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--scale", "4"]) == 0
    assert Image.open(tmp_path / "out" / "photo_x4.png").size == (480, 320)
    assert main(["eval", "--data", str(tmp_path), "--scale", "2", "--quiet"]) == 0
    assert DEFAULT_MODEL in capsys.readouterr().out
