"""``srlab upscale``: the exit-code contract, --stream, and warnings for multi-frame files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import photo, run_cli


BICUBIC = ["--model", "bicubic", "--scale", "2", "--device", "cpu"]


@pytest.fixture()
def batch(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo("chelsea", (30, 20))).save(folder / "a.png")
    Image.fromarray(photo("astronaut", (24, 18))).convert("L").save(folder / "b.png")
    return folder


def test_all_good_exits_0_and_stream_gives_the_same_pixels(batch, tmp_path, capsys):
    code, out, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "whole", *BICUBIC, "--stream", "never")
    assert (code, err) == (0, "")
    code, out, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "strips", *BICUBIC, "--stream", "always")
    assert (code, err) == (0, "")
    assert out.count(", streamed, ") == 2
    for name in ("a_x2.png", "b_x2.png"):
        whole, strips = Image.open(tmp_path / "whole" / name), Image.open(tmp_path / "strips" / name)
        assert whole.mode == strips.mode
        np.testing.assert_array_equal(np.asarray(strips), np.asarray(whole))


def test_a_bad_file_is_reported_the_rest_processed_exit_1(batch, tmp_path, capsys):
    (batch / "c.png").write_bytes(b"not a png")
    for stream in ("never", "always"):
        out_dir = tmp_path / stream
        code, out, err = run_cli(capsys, "upscale", batch, "-o", out_dir, *BICUBIC, "--stream", stream)
        assert code == 1
        assert "srlab: error: cannot read image" in err and "c.png" in err
        assert "srlab: 1 of 3 images failed" in err and "Traceback" not in err
        assert sorted(p.name for p in out_dir.iterdir()) == ["a_x2.png", "b_x2.png"]


def test_bad_stream_value_is_a_usage_error_before_any_work(batch, tmp_path, capsys):
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", *BICUBIC, "--stream", "sometimes")
    assert code == 2 and "--stream" in err and "invalid choice: 'sometimes'" in err
    assert not (tmp_path / "o").exists()


def test_animation_is_upscaled_from_its_first_frame_with_a_warning(tmp_path, capsys):
    frames = [Image.fromarray(photo(name, (16, 12))) for name in ("chelsea", "astronaut")]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:], duration=100)
    code, _, err = run_cli(capsys, "upscale", tmp_path / "anim.png", "-o", tmp_path / "o", *BICUBIC)
    assert code == 0
    assert f"srlab: warning: '{tmp_path / 'anim.png'}' has 2 frames (an animation or multi-page file): " \
           "only the first frame is used" in err
    assert Image.open(tmp_path / "o" / "anim_x2.png").size == (32, 24)


def test_png_compression_changes_the_file_not_the_pixels(batch, tmp_path, capsys):
    sizes = {}
    for level in ("0", "9"):
        code, _, err = run_cli(capsys, "upscale", batch / "a.png", "-o", tmp_path / level, *BICUBIC,
                               "--png_compression", level)
        assert (code, err) == (0, "")
        sizes[level] = (tmp_path / level / "a_x2.png").stat().st_size
    assert sizes["0"] > 1.5 * sizes["9"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "0" / "a_x2.png")),
                                  np.asarray(Image.open(tmp_path / "9" / "a_x2.png")))
    code, _, err = run_cli(capsys, "upscale", batch, "-o", tmp_path / "o", *BICUBIC, "--png_compression", "10")
    assert code == 2 and "--png_compression" in err
