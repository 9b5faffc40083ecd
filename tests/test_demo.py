import pytest
from PIL import Image

from srlab.demo import TEST_PHOTO, run_demo


def test_demo_writes_images_and_scores(tmp_path):
    result = run_demo(tmp_path, epochs=1, repeat=8, progress=False)
    for name in ("hr", "lr", "bicubic", "srlab"):
        assert (tmp_path / f"{TEST_PHOTO}_{name}.png").is_file()
    hr = Image.open(tmp_path / f"{TEST_PHOTO}_hr.png")
    assert Image.open(tmp_path / f"{TEST_PHOTO}_srlab.png").size == hr.size
    assert Image.open(tmp_path / "comparison.png").size[0] > 3 * hr.size[0]
    assert 30 < result.bicubic["psnr_y"] < 40 and 0 < result.model["psnr_y"] < 60
    run_demo(tmp_path, epochs=1, repeat=8, progress=False)  # a second demo in the same folder trains afresh


@pytest.mark.slow
def test_full_demo_beats_bicubic(tmp_path):
    result = run_demo(tmp_path, progress=False)
    assert result.model["psnr_y"] > result.bicubic["psnr_y"]
