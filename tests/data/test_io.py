"""Tests for srlab.data.io and the atomic writing helpers of srlab.fileio."""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from skimage import data as skdata

from srlab.data.io import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    LoadedImage,
    MultiFrameWarning,
    check_not_overwriting,
    list_images,
    read_image,
    read_rgb,
    write_image,
)
from srlab.errors import SrlabError
from srlab.fileio import atomic_path, atomic_write_bytes

RNG = np.random.default_rng(0)


def random_u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def random_u16(*shape: int) -> np.ndarray:
    a = RNG.integers(0, 65536, shape, dtype=np.uint16)
    a.flat[:2] = (0, 65535)  # make sure the extremes are covered
    return a


def as_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def reference_png16(samples: np.ndarray, *, interlaced: bool = False, exif: bytes | None = None) -> bytes:
    """A 16-bit PNG written independently of srlab's encoder: filter 0, optional Adam7 interlacing."""
    height, width, channels = samples.shape
    big_endian = samples.astype(">u2")
    if interlaced:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        subimages = [big_endian[y0::dy, x0::dx] for x0, y0, dx, dy in passes]
    else:
        subimages = [big_endian]
    raw = b"".join(b"\x00" + row.tobytes() for sub in subimages if sub.size for row in sub)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlaced))
    extra = chunk(b"eXIf", exif) if exif is not None else b""
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


# ------------------------------------------------------------------------------------ 8-bit reads


def test_rgb_png_round_trip_is_exact(tmp_path: Path) -> None:
    pixels = random_u8(7, 9, 3)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    img = read_image(tmp_path / "in.png")
    assert isinstance(img, LoadedImage)
    assert img.rgb.dtype == torch.float32 and img.rgb.shape == (3, 7, 9)
    assert (img.bit_depth, img.grayscale, img.alpha) == (8, False, None)
    assert img.path == tmp_path / "in.png"
    np.testing.assert_array_equal(as_hwc(img.rgb), pixels / np.float32(255))

    write_image(tmp_path / "out.png", img.rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), pixels)


def test_photo_round_trip_is_exact(tmp_path: Path) -> None:
    photo = skdata.astronaut()[::4, ::4]  # 128x128, enough for a real photo's statistics
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    rgb = read_rgb(tmp_path / "astronaut.png")
    write_image(tmp_path / "copy.png", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "copy.png")), photo)


def test_greyscale_is_replicated_and_flagged(tmp_path: Path) -> None:
    camera = skdata.camera()[::8, ::8]
    Image.fromarray(camera).save(tmp_path / "camera.png")
    img = read_image(tmp_path / "camera.png")
    assert img.grayscale and img.bit_depth == 8 and img.rgb.shape == (3, *camera.shape)
    for c in range(3):
        np.testing.assert_array_equal(img.rgb[c].numpy(), camera / np.float32(255))


def test_one_bit_image_reads_as_black_and_white(tmp_path: Path) -> None:
    Image.fromarray(random_u8(5, 6) > 127).convert("1").save(tmp_path / "bw.png")
    img = read_image(tmp_path / "bw.png")
    assert img.grayscale
    assert set(img.rgb.unique().tolist()) <= {0.0, 1.0}


def test_palette_png(tmp_path: Path) -> None:
    src = Image.fromarray(skdata.astronaut()[::8, ::8]).quantize(16)
    src.save(tmp_path / "pal.png")
    img = read_image(tmp_path / "pal.png")
    assert img.alpha is None and not img.grayscale
    np.testing.assert_array_equal(as_hwc(img.rgb), np.asarray(src.convert("RGB")) / np.float32(255))


def test_palette_with_transparency_gives_alpha(tmp_path: Path) -> None:
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    src = Image.fromarray(indices, "P")
    src.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    src.save(tmp_path / "pal.png", transparency=1)
    img = read_image(tmp_path / "pal.png")
    assert img.alpha is not None
    np.testing.assert_array_equal(img.alpha[0].numpy(), (indices != 1).astype(np.float32))
    np.testing.assert_array_equal(img.rgb[:, 0, 0].numpy(), [1, 0, 0])


def test_greyscale_with_transparent_grey_level_gives_alpha(tmp_path: Path) -> None:
    grey = np.array([[0, 5], [5, 9]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "key.png", transparency=5)
    img = read_image(tmp_path / "key.png")
    assert img.grayscale and img.alpha is not None
    np.testing.assert_array_equal(img.alpha[0].numpy(), (grey != 5).astype(np.float32))


def test_la_png(tmp_path: Path) -> None:
    pixels = random_u8(4, 5, 2)
    Image.fromarray(pixels, "LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert img.grayscale and img.alpha is not None and img.alpha.shape == (1, 4, 5)
    np.testing.assert_array_equal(img.rgb[1].numpy(), pixels[..., 0] / np.float32(255))
    np.testing.assert_array_equal(img.alpha[0].numpy(), pixels[..., 1] / np.float32(255))


def test_rgba_round_trip_keeps_alpha(tmp_path: Path) -> None:
    pixels = random_u8(6, 4, 4)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "in.png")
    img = read_image(tmp_path / "in.png")
    assert img.alpha is not None
    np.testing.assert_array_equal(img.alpha[0].numpy(), pixels[..., 3] / np.float32(255))
    np.testing.assert_array_equal(as_hwc(img.rgb), pixels[..., :3] / np.float32(255))

    write_image(tmp_path / "out.png", img.rgb, alpha=img.alpha)
    back = Image.open(tmp_path / "out.png")
    assert back.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(back), pixels)


def test_cmyk_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    Image.fromarray(skdata.astronaut()[::8, ::8]).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    expected = np.asarray(Image.open(tmp_path / "cmyk.jpg").convert("RGB")) / np.float32(255)
    img = read_image(tmp_path / "cmyk.jpg")
    assert img.rgb.shape == (3, 64, 64) and not img.grayscale
    np.testing.assert_allclose(as_hwc(img.rgb), expected, atol=1e-6)


def test_ycbcr_tiff_reads_as_rgb(tmp_path: Path) -> None:
    rgb = Image.fromarray(skdata.astronaut()[::8, ::8])
    rgb.convert("YCbCr").save(tmp_path / "ycc.tif")
    assert Image.open(tmp_path / "ycc.tif").mode == "YCbCr"
    img = read_image(tmp_path / "ycc.tif")
    # YCbCr -> RGB conversion is lossy by a few levels.
    np.testing.assert_allclose(as_hwc(img.rgb), np.asarray(rgb) / 255, atol=4 / 255)


# ------------------------------------------------------------------------------- EXIF orientation


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 40 wide x 20 high, left half red, right half blue. Orientation 6 means "rotate 90°
    # clockwise to display", so the displayed image is 20 wide x 40 high with red on top.
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20, 0] = 255
    stored[:, 20:, 2] = 255
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif_with_orientation(6), quality=95)
    rgb = read_rgb(tmp_path / "photo.jpg")
    assert rgb.shape == (3, 40, 20)
    assert rgb[0, :15].mean() > 0.9 and rgb[2, :15].mean() < 0.1  # top: red
    assert rgb[2, 25:].mean() > 0.9 and rgb[0, 25:].mean() < 0.1  # bottom: blue


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_exif_orientations_match_numpy(tmp_path: Path, orientation: int) -> None:
    pixels = random_u8(3, 5, 3)
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif_with_orientation(orientation))
    upright = {
        1: pixels,
        2: pixels[:, ::-1],
        3: pixels[::-1, ::-1],
        4: pixels[::-1],
        5: pixels.transpose(1, 0, 2),
        6: np.rot90(pixels, -1),
        7: np.rot90(pixels, 2).transpose(1, 0, 2),
        8: np.rot90(pixels, 1),
    }[orientation]
    np.testing.assert_array_equal(as_hwc(read_rgb(tmp_path / "o.png")), upright / np.float32(255))


# ----------------------------------------------------------------------------------------- 16 bit


def test_16bit_greyscale_png_keeps_16bit_precision(tmp_path: Path) -> None:
    grey = random_u16(6, 7)
    Image.fromarray(grey).save(tmp_path / "g16.png")  # Pillow writes mode I;16
    img = read_image(tmp_path / "g16.png")
    assert img.bit_depth == 16 and img.grayscale
    np.testing.assert_array_equal(img.rgb[0].numpy(), grey / np.float32(65535))
    # Values that are not multiples of 257 prove the precision is above 8 bits.
    assert np.any(grey % 257)

    write_image(tmp_path / "out.png", img.rgb, bit_depth=16, grayscale=True)
    back = Image.open(tmp_path / "out.png")
    assert back.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(back), grey)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlaced", [False, True])
def test_16bit_png_is_read_exactly(tmp_path: Path, channels: int, interlaced: bool) -> None:
    samples = random_u16(11, 13, channels)  # odd sizes exercise the partial Adam7 passes
    (tmp_path / "x.png").write_bytes(reference_png16(samples, interlaced=interlaced))
    img = read_image(tmp_path / "x.png")
    assert img.bit_depth == 16
    assert img.grayscale == (channels <= 2)
    expected = samples / np.float32(65535)
    colour = expected[..., :1] if channels <= 2 else expected[..., :3]
    np.testing.assert_array_equal(as_hwc(img.rgb), np.broadcast_to(colour, (11, 13, 3)))
    if channels in (2, 4):
        assert img.alpha is not None
        np.testing.assert_array_equal(img.alpha[0].numpy(), expected[..., -1])
    else:
        assert img.alpha is None


def test_16bit_rgb_png_orientation_is_applied(tmp_path: Path) -> None:
    samples = random_u16(4, 6, 3)
    exif = exif_with_orientation(6).tobytes()
    (tmp_path / "x.png").write_bytes(reference_png16(samples, exif=exif))
    img = read_image(tmp_path / "x.png")
    np.testing.assert_array_equal(as_hwc(img.rgb), np.rot90(samples, -1) / np.float32(65535))


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("grayscale", [False, True])
def test_16bit_png_write_round_trip(tmp_path: Path, alpha: bool, grayscale: bool) -> None:
    samples = random_u16(9, 10, 4)
    values = torch.from_numpy(samples / np.float32(65535)).permute(2, 0, 1)
    rgb = values[:1].repeat(3, 1, 1) if grayscale else values[:3]
    write_image(tmp_path / "x.png", rgb, alpha=values[3:] if alpha else None, bit_depth=16, grayscale=grayscale)
    img = read_image(tmp_path / "x.png")
    assert (img.bit_depth, img.grayscale) == (16, grayscale)
    torch.testing.assert_close(img.rgb, rgb, rtol=0, atol=0)
    if alpha:
        torch.testing.assert_close(img.alpha, values[3:], rtol=0, atol=0)
    else:
        assert img.alpha is None
    # Independent check of the encoder: Pillow's own (8-bit) decode must see the high bytes.
    pil_mode_expected = {(False, False): "RGB", (False, True): "RGBA", (True, False): "I;16", (True, True): "RGBA"}
    pil = Image.open(tmp_path / "x.png")
    assert pil.mode == pil_mode_expected[(grayscale, alpha)]
    if pil.mode == "RGB":
        np.testing.assert_array_equal(np.asarray(pil), samples[..., :3] >> 8)


def test_16bit_write_is_png_only(tmp_path: Path) -> None:
    with pytest.raises(SrlabError, match="16-bit"):
        write_image(tmp_path / "x.tif", torch.zeros(3, 2, 2), bit_depth=16)


# ---------------------------------------------------------------------------------------- writing


def test_rounding_is_half_up_with_clamping(tmp_path: Path) -> None:
    # Find float32 inputs whose x * 255 is exactly k + 0.5 in float32, the case where rounding
    # half up (k + 1) and half to even (k or k + 1) differ.
    candidates = torch.tensor([(k + 0.5) / 255 for k in range(255)], dtype=torch.float32)
    halves = candidates[(candidates * 255) == torch.arange(255) + 0.5]
    assert len(halves) > 10
    values = torch.cat([halves, torch.tensor([-0.3, 1.7, float("nan"), float("inf")])])
    write_image(tmp_path / "r.png", values.view(1, 1, -1).repeat(3, 1, 1))
    got = np.asarray(Image.open(tmp_path / "r.png"))[0, :, 0].astype(int)
    expected = np.floor(halves.numpy() * 255 + 0.5).astype(int)
    np.testing.assert_array_equal(got[: len(halves)], expected)
    assert np.any(expected != np.round(halves.numpy() * 255))  # torch.round (half to even) would fail
    np.testing.assert_array_equal(got[len(halves) :], [0, 255, 0, 255])


def test_writing_leaves_the_callers_tensors_as_they_were(tmp_path: Path) -> None:
    """The samples are rounded in place (for memory), on a copy of their own: never the caller's output."""
    rgb = torch.tensor([-0.3, 0.25, 1.7, float("nan")]).view(1, 1, 4).repeat(3, 1, 1)
    alpha = torch.tensor([[0.5, 2.0, -1.0, 0.1]])
    kept_rgb, kept_alpha = rgb.clone(), alpha.clone()
    write_image(tmp_path / "a.png", rgb, alpha=alpha)
    write_image(tmp_path / "g.png", rgb, grayscale=True, bit_depth=16)
    torch.testing.assert_close(rgb, kept_rgb, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(alpha, kept_alpha, rtol=0, atol=0)


def test_grayscale_write_has_one_channel(tmp_path: Path) -> None:
    grey = torch.from_numpy(random_u8(5, 5) / np.float32(255))
    write_image(tmp_path / "g.png", grey.expand(3, 5, 5), grayscale=True)
    assert Image.open(tmp_path / "g.png").mode == "L"
    img = read_image(tmp_path / "g.png")
    assert img.grayscale
    torch.testing.assert_close(img.rgb[0], grey, rtol=0, atol=0)


@pytest.mark.parametrize("ext", ["bmp", "tif", "tiff", "webp", "PNG"])
def test_lossless_formats_round_trip(tmp_path: Path, ext: str) -> None:
    pixels = random_u8(8, 6, 3)
    rgb = torch.from_numpy(pixels / np.float32(255)).permute(2, 0, 1)
    write_image(tmp_path / f"x.{ext}", rgb)
    np.testing.assert_array_equal(as_hwc(read_rgb(tmp_path / f"x.{ext}")), pixels / np.float32(255))


def test_jpeg_write_is_close(tmp_path: Path) -> None:
    rgb = torch.from_numpy(skdata.astronaut()[::4, ::4] / np.float32(255)).permute(2, 0, 1)
    write_image(tmp_path / "x.jpg", rgb)
    assert (read_rgb(tmp_path / "x.jpg") - rgb).abs().mean() < 0.01


@pytest.mark.parametrize("ext", ["jpg", "jpeg", "bmp"])
def test_alpha_is_never_dropped_silently(tmp_path: Path, ext: str) -> None:
    with pytest.raises(SrlabError, match="alpha"):
        write_image(tmp_path / f"x.{ext}", torch.zeros(3, 2, 2), alpha=torch.ones(1, 2, 2))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("ext", ["webp", "tif"])
def test_alpha_in_other_formats(tmp_path: Path, ext: str) -> None:
    pixels = random_u8(5, 4, 4)
    values = torch.from_numpy(pixels / np.float32(255)).permute(2, 0, 1)
    write_image(tmp_path / f"x.{ext}", values[:3], alpha=values[3:])
    img = read_image(tmp_path / f"x.{ext}")
    assert img.alpha is not None
    np.testing.assert_array_equal(img.alpha[0].numpy(), pixels[..., 3] / np.float32(255))


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(SrlabError, match=r"\.gif.*\.png"):
        write_image(tmp_path / "x.gif", torch.zeros(3, 2, 2))
    with pytest.raises(SrlabError, match="exists"):
        write_image(tmp_path / "missing" / "x.png", torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        write_image(tmp_path / "x.png", torch.zeros(2, 2))
    with pytest.raises(ValueError, match="float"):
        write_image(tmp_path / "x.png", torch.zeros(3, 2, 2, dtype=torch.uint8))


# ------------------------------------------------------------------------------- unreadable files


def assert_read_error(path: Path, *fragments: str) -> None:
    with pytest.raises(SrlabError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def valid_png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(random_u8(64, 64, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_truncated_png(tmp_path: Path) -> None:
    data = valid_png_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    assert_read_error(tmp_path / "cut.png", "truncated or corrupt", "re-export")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_jpeg(tmp_path: Path) -> None:
    Image.fromarray(skdata.astronaut()[::4, ::4]).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert_read_error(tmp_path / "cut.jpg", "truncated or corrupt")


def test_corrupt_png_data(tmp_path: Path) -> None:
    data = bytearray(valid_png_bytes())
    data[100:400] = RNG.integers(0, 256, 300, dtype=np.uint8).tobytes()  # inside the compressed data
    (tmp_path / "bad.png").write_bytes(bytes(data))
    assert_read_error(tmp_path / "bad.png", "truncated or corrupt")


def test_random_bytes_text_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "noise.png").write_bytes(RNG.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (tmp_path / "notes.png").write_text("this is\nnot an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    assert_read_error(tmp_path / "noise.png", "not a recognised image format")
    assert_read_error(tmp_path / "notes.png", "not a recognised image format")
    assert_read_error(tmp_path / "empty.png", "empty")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert_read_error(tmp_path / "nope.png", "does not exist")
    assert_read_error(tmp_path, "folder")


def test_unsupported_mode(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((3, 3), dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(SrlabError) as info:
        read_image(tmp_path / "float.tif")
    assert "float.tif" in str(info.value) and "'F'" in str(info.value)


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS >= MAX_IMAGE_PIXELS >= 2**30
    Image.fromarray(random_u8(10, 10, 3)).save(tmp_path / "x.png")
    monkeypatch.setattr("srlab.data.io.MAX_IMAGE_PIXELS", 99)
    assert_read_error(tmp_path / "x.png", "10x10", "limit")


# ---------------------------------------------------------------------------------------- listing


def touch_images(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_list_images_natural_sort_and_filtering(tmp_path: Path) -> None:
    touch_images(tmp_path, "img10.png", "img2.png", "IMG3.JPG", "img1.webp", "notes.txt", ".hidden.png", "._img0.png")
    (tmp_path / "sub").mkdir()
    touch_images(tmp_path / "sub", "inner.png")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["img1.webp", "img2.png", "IMG3.JPG", "img10.png"]


def test_list_images_recursive(tmp_path: Path) -> None:
    touch_images(tmp_path, "b.png")
    touch_images(tmp_path / "set10", "x.png")
    touch_images(tmp_path / "set2", "y2.png", "y1.png")
    touch_images(tmp_path / ".cache", "z.png")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert found == ["b.png", "set2/y1.png", "set2/y2.png", "set10/x.png"]


def test_list_images_file_missing_and_empty(tmp_path: Path) -> None:
    touch_images(tmp_path, "only.png")
    assert list_images(tmp_path / "only.png") == [tmp_path / "only.png"]
    with pytest.raises(SrlabError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(SrlabError) as info:
        list_images(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)
    assert all(f".{ext}" in str(info.value) for ext in IMAGE_EXTENSIONS)


# --------------------------------------------------------------------------------- atomic writing


def test_atomic_write_bytes_leaves_no_temp_files(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"first")
    atomic_write_bytes(tmp_path / "a.bin", b"second")
    assert (tmp_path / "a.bin").read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_atomic_write_respects_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644


def test_atomic_path_failure_keeps_original(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"original")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".safetensors" and tmp.exists()
            tmp.write_bytes(b"half-writ")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_write_image_failure_keeps_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    write_image(target, torch.zeros(3, 4, 4))
    before = target.read_bytes()

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG partial")  # type: ignore[arg-type]
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(SrlabError, match="out.png"):
        write_image(target, torch.ones(3, 4, 4))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


# ----------------------------------------------------------------------------------- overwriting


def test_check_not_overwriting(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / "a.png"
    source.write_bytes(b"x")
    check_not_overwriting(tmp_path / "out.png", [source])  # different file: fine
    check_not_overwriting(tmp_path / "out.png", [])
    for same in (source, tmp_path / "in" / ".." / "in" / "a.png"):
        with pytest.raises(SrlabError, match="a.png"):
            check_not_overwriting(same, [tmp_path / "b.png", source])
    (tmp_path / "link.png").symlink_to(source)
    os.link(source, tmp_path / "hard.png")
    for alias in ("link.png", "hard.png"):
        with pytest.raises(SrlabError, match="overwrite"):
            check_not_overwriting(tmp_path / alias, [source])


def test_16bit_colour_falls_back_to_8bit_if_pillow_internals_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = random_u16(3, 4, 3)
    (tmp_path / "x.png").write_bytes(reference_png16(samples))

    def incompatible(*args: object) -> None:
        raise ValueError("unknown raw mode for given image mode")

    monkeypatch.setattr("srlab.data.io._decode_wide_png", incompatible)
    with pytest.warns(UserWarning, match="8-bit"):
        img = read_image(tmp_path / "x.png")
    assert img.bit_depth == 8
    np.testing.assert_array_equal(as_hwc(img.rgb), (samples >> 8) / np.float32(255))


# --------------------------------------------------------------------------------------- frames


def save_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = [random_u8(6, 9, 3) for _ in range(count)]
    images = [Image.fromarray(f) for f in frames]
    options = {".tif": {}, ".webp": {"duration": 100, "lossless": True}}.get(path.suffix, {"duration": 100})
    images[0].save(path, save_all=True, append_images=images[1:], **options)
    return frames


@pytest.mark.parametrize("name", ["anim.png", "anim.gif", "anim.webp", "pages.tif"])
def test_multiframe_files_warn_and_read_the_first_frame(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    frames = save_frames(path, 3)
    with pytest.warns(MultiFrameWarning, match=rf"'{re.escape(str(path))}' has 3 frames \(an animation or "
                                               r"multi-page file\): only the first frame is used"):
        loaded = read_image(path)
    if name != "anim.gif":  # GIF stores a palette: the first frame comes back quantised
        np.testing.assert_array_equal(as_hwc(loaded.rgb), frames[0] / np.float32(255))
    assert loaded.rgb.shape == (3, 6, 9)


def test_single_frame_files_do_not_warn(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    save_frames(tmp_path / "one.png", 1)
    read_image(tmp_path / "one.png")
    assert not [w for w in recwarn if issubclass(w.category, MultiFrameWarning)]


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_compression_level(tmp_path: Path, bit_depth: int) -> None:
    rgb = torch.from_numpy(skdata.astronaut()[:64, :64].copy()).permute(2, 0, 1).float() / 255
    write_image(tmp_path / "fast.png", rgb, bit_depth=bit_depth, png_compression=0)
    write_image(tmp_path / "small.png", rgb, bit_depth=bit_depth, png_compression=9)
    assert (tmp_path / "fast.png").stat().st_size > 1.2 * (tmp_path / "small.png").stat().st_size
    assert torch.equal(read_image(tmp_path / "fast.png").rgb, read_image(tmp_path / "small.png").rgb)
    with pytest.raises(SrlabError, match=r"PNG compression must be 0 \(none\) to 9 \(smallest\), not 10"):
        write_image(tmp_path / "x.png", rgb, png_compression=10)
