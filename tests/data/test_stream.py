"""srlab.data.stream: strips read with libvips equal read_image's; the memory check; PngWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import srlab.data.stream as stream
from srlab.data.io import MultiFrameWarning, PngWriter, read_image, write_image
from srlab.data.stream import StripReader, check_fits_in_memory
from srlab.errors import SrlabError

RNG = np.random.default_rng(0)


def random_u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def save_kind(folder: Path, kind: str) -> Path:
    """A 23 x 17 image of ``kind`` (the file name says what it is)."""
    rgb = random_u8(17, 23, 3)
    path = folder / kind
    if kind == "rgb.png":
        Image.fromarray(rgb).save(path)
    elif kind == "rgba.png":
        Image.fromarray(np.dstack([rgb, random_u8(17, 23)]), "RGBA").save(path)
    elif kind == "grey.png":
        Image.fromarray(rgb[..., 0]).save(path)
    elif kind == "greyalpha.png":
        Image.fromarray(rgb[..., :2], "LA").save(path)
    elif kind == "bilevel.png":
        Image.fromarray(rgb[..., 0] > 127).save(path)
    elif kind == "palette.png":
        Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(path)
    elif kind == "palette-transparent.png":
        Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(path, transparency=3)
    elif kind == "colour-key.png":
        Image.fromarray(rgb).save(path, transparency=tuple(int(v) for v in rgb[0, 0]))
    elif kind == "grey16.png":
        Image.fromarray(RNG.integers(0, 65536, (17, 23), dtype=np.uint16)).save(path)
    elif kind == "grey16.tif":
        Image.fromarray(RNG.integers(0, 65536, (17, 23), dtype=np.uint16)).save(path)
    elif kind in ("rgb16.png", "rgba16.png", "greyalpha16.png"):
        alpha = torch.rand(1, 17, 23) if "a16" in kind else None
        write_image(path, torch.rand(3, 17, 23), alpha=alpha, bit_depth=16, grayscale=kind.startswith("grey"))
    elif kind in ("rgb.jpg", "rgb.tif", "rgb.webp"):
        Image.fromarray(rgb).save(path, **({"lossless": True} if kind.endswith("webp") else {}))
    elif kind == "rgba.tif":
        Image.fromarray(np.dstack([rgb, random_u8(17, 23)]), "RGBA").save(path)
    elif kind == "grey.jpg":
        Image.fromarray(rgb[..., 0]).save(path, quality=90)
    return path


KINDS = ["rgb.png", "rgba.png", "grey.png", "greyalpha.png", "bilevel.png", "palette.png", "palette-transparent.png",
         "colour-key.png", "grey16.png", "grey16.tif", "rgb16.png", "rgba16.png", "greyalpha16.png", "rgb.jpg",
         "grey.jpg", "rgb.tif", "rgba.tif", "rgb.webp"]


def read_by_strips(path: Path, rows: int, context: int) -> tuple[StripReader, torch.Tensor, torch.Tensor | None]:
    """Read the image by overlapping strips, keeping each strip's core, as the streamed upscale does."""
    reader = StripReader(path)
    rgb, alpha = [], []
    for top in range(0, reader.height, rows):
        first, bottom = max(0, top - context), min(reader.height, top + rows)
        strip = reader.rows(first, min(reader.height, bottom + context))
        rgb.append(strip.rgb[:, top - first : bottom - first])
        if strip.alpha is not None:
            alpha.append(strip.alpha[:, top - first : bottom - first])
    return reader, torch.cat(rgb, 1), torch.cat(alpha, 1) if alpha else None


@pytest.mark.parametrize("kind", KINDS)
def test_strips_equal_read_image(tmp_path, kind):
    path = save_kind(tmp_path, kind)
    whole = read_image(path)
    reader, rgb, alpha = read_by_strips(path, rows=4, context=3)
    assert (reader.bit_depth, reader.grayscale) == (whole.bit_depth, whole.grayscale)
    assert torch.equal(rgb, whole.rgb)
    assert (alpha is None) == (whole.alpha is None)
    if alpha is not None:
        assert torch.equal(alpha, whole.alpha)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp"])
def test_exif_orientation_is_applied_as_read_image_does(tmp_path, orientation, ext):
    path = tmp_path / f"o.{ext}"
    Image.fromarray(random_u8(13, 21, 3)).save(path, exif=exif_with_orientation(orientation))
    reader, rgb, _ = read_by_strips(path, rows=5, context=2)
    assert torch.equal(rgb, read_image(path).rgb)
    assert (reader.width, reader.height) == ((13, 21) if orientation >= 5 else (21, 13))


def test_rows_are_read_top_to_bottom(tmp_path):
    reader = StripReader(save_kind(tmp_path, "rgb.png"))
    whole = read_image(tmp_path / "rgb.png").rgb
    assert torch.equal(reader.rows(0, 5).rgb, whole[:, 0:5])
    assert torch.equal(reader.rows(3, 9).rgb, whole[:, 3:9])  # overlapping the previous strip
    assert torch.equal(reader.rows(12, 17).rgb, whole[:, 12:17])  # skipping rows
    with pytest.raises(ValueError, match=r"rows 4:8 of 17, read after row 12"):
        reader.rows(4, 8)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("cmyk.jpg", r"its pixel format \(cmyk, 4 bands, uchar\) is not streamed; convert it to an 8- or 16-bit"),
        ("rgb.bmp", "libvips does not read this format; convert it to PNG"),
    ],
)
def test_kinds_that_would_read_differently_are_refused(tmp_path, kind, message):
    path = tmp_path / kind
    Image.fromarray(random_u8(8, 8, 3)).convert("CMYK" if kind.startswith("cmyk") else "RGB").save(path)
    with pytest.raises(SrlabError, match=rf"cannot stream '.*{kind}': {message}"):
        StripReader(path)


def test_missing_pyvips_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "pyvips", None)
    with pytest.raises(SrlabError, match=r"the pyvips package is missing \(pip install pyvips pyvips-binary\)"):
        StripReader(save_kind(tmp_path, "rgb.png"))


def test_truncated_file_fails_when_its_rows_are_read(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(random_u8(400, 300, 3)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    reader = StripReader(path)
    with pytest.raises(SrlabError, match="cannot read image '.*big.png': file is truncated or corrupt"):
        reader.rows(0, 400)


def test_multiframe_file_warns_when_streamed(tmp_path):
    path = tmp_path / "pages.tif"
    frames = [Image.fromarray(random_u8(8, 8, 3)) for _ in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(MultiFrameWarning, match=r"'.*pages.tif' has 3 frames .*only the first frame is used"):
        reader = StripReader(path)
    with pytest.warns(MultiFrameWarning):
        first = read_image(path)
    assert torch.equal(reader.rows(0, 8).rgb, first.rgb)


# --------------------------------------------------------------------------------------- memory


def test_check_fits_in_memory(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(random_u8(1000, 2000, 3)).save(path)  # 2 Mpx
    check_fits_in_memory(path, bytes_per_pixel=64, task="evaluate it", available=2 * 10**6 * 64)
    with pytest.raises(SrlabError, match=r"'.*x.png' is 2000x1000: to evaluate it it needs about 0.1 GiB of "
                                         r"memory and 0.1 GiB is available; crop it into smaller images"):
        check_fits_in_memory(path, bytes_per_pixel=64, task="evaluate it", available=2 * 10**6 * 64 - 1)


def test_available_memory_is_plausible():
    assert 2**24 < stream.available_memory() < 2**50


# --------------------------------------------------------------------------------------- PngWriter


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_writer_in_pieces_round_trips(tmp_path, channels, bit_depth):
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    samples = RNG.integers(0, 2**bit_depth, (19, 11, channels), dtype=dtype)
    with PngWriter(tmp_path / "x.png", width=11, height=19, channels=channels, bit_depth=bit_depth) as png:
        for top in (0, 1, 7, 18):
            png.write_rows(samples[top : {0: 1, 1: 7, 7: 18, 18: 19}[top]])
    loaded = read_image(tmp_path / "x.png")
    colour = loaded.rgb[:1] if loaded.grayscale else loaded.rgb
    stored = colour if loaded.alpha is None else torch.cat([colour, loaded.alpha])
    back = np.round(stored.permute(1, 2, 0).numpy() * (2**bit_depth - 1)).astype(np.int64)
    np.testing.assert_array_equal(back, samples)


def test_png_writer_refuses_wrong_rows(tmp_path):
    with PngWriter(tmp_path / "x.png", width=4, height=2, channels=3, bit_depth=8) as png:
        with pytest.raises(ValueError, match=r"rows must be \(rows, 4, 3\), got \(1, 5, 3\)"):
            png.write_rows(np.zeros((1, 5, 3), np.uint8))
        with pytest.raises(ValueError, match="more than the 2 rows declared"):
            png.write_rows(np.zeros((3, 4, 3), np.uint8))
        png.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="1 rows written, 2 declared"):
        with PngWriter(tmp_path / "y.png", width=4, height=2, channels=3, bit_depth=8) as png:
            png.write_rows(np.zeros((1, 4, 3), np.uint8))
