import pytest
from PIL import Image

from srlab.cli.main import main
from srlab.data.io import SAMPLE_PHOTO, sample_photo
from srlab.demo import run_demo
from srlab.models.create import DEFAULT_MODEL, list_bundled

pytestmark = pytest.mark.skipif(not list_bundled(), reason="no bundled weights in this checkout")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_demo_beats_bicubic_and_writes_the_comparison(tmp_path, scale):
    result = run_demo(tmp_path, scale=scale)
    assert result.sr["psnr_y"] > result.bicubic["psnr_y"] + 0.3
    assert result.sr["ssim_y"] > result.bicubic["ssim_y"]
    hr = sample_photo()
    width = hr.shape[-1] - hr.shape[-1] % scale
    for path in result.files[:-1]:
        assert path.is_file()
    assert Image.open(tmp_path / f"{SAMPLE_PHOTO}_x{scale}_hr.png").size[0] == width
    assert Image.open(result.files[-1]).size[0] > 3 * width


def test_demo_command_defaults_to_x4(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "chelsea x4" in out and "bicubic" in out and f"srlab {DEFAULT_MODEL}" in out
    assert (tmp_path / "chelsea_x4_comparison.png").is_file()
