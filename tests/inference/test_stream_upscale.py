"""upscale_file: the streamed path (strips) writes what the whole-image path writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from conftest import photo
from srlab.data.io import read_image, write_image
from srlab.errors import SrlabError
from srlab.inference import UpscaledFile, upscale_file

RNG = np.random.default_rng(0)


def pixels(path: Path) -> np.ndarray:
    """The samples exactly as stored (16-bit kept), as (H, W, C) int64."""
    loaded = read_image(path)
    channels = [loaded.rgb[:1] if loaded.grayscale else loaded.rgb]
    if loaded.alpha is not None:
        channels.append(loaded.alpha)
    top = 65535 if loaded.bit_depth == 16 else 255
    return np.round(torch.cat(channels).permute(1, 2, 0).numpy() * top).astype(np.int64)


def both_ways(model, source: Path, tmp_path: Path, **options) -> tuple[np.ndarray, np.ndarray]:
    whole = upscale_file(model, source, tmp_path / "whole.png", stream="never")
    streamed = upscale_file(model, source, tmp_path / "streamed.png", stream="always", **options)
    assert not whole.streamed and streamed.streamed
    assert whole.out_size == streamed.out_size
    a, b = pixels(tmp_path / "whole.png"), pixels(tmp_path / "streamed.png")
    assert read_image(tmp_path / "whole.png").bit_depth == read_image(tmp_path / "streamed.png").bit_depth
    return a, b


def write_kind(path: Path, kind: str, size: tuple[int, int] = (45, 37)) -> Path:
    """A photo of (width, height) ``size`` saved as RGB, RGBA, grey, grey+alpha (8 or 16 bits), palette."""
    rgb = photo("astronaut", size)
    ramp = np.tile(np.linspace(0, 1, size[0], dtype=np.float32), (size[1], 1))[None]
    as_float = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255
    if kind == "rgb":
        Image.fromarray(rgb).save(path)
    elif kind == "rgba":
        Image.fromarray(np.dstack([rgb, (ramp[0] * 255).astype(np.uint8)]), "RGBA").save(path)
    elif kind == "grey":
        Image.fromarray(rgb).convert("L").save(path)
    elif kind == "palette":
        Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(path, transparency=5)
    elif kind == "rgb16":
        write_image(path, (as_float + torch.rand_like(as_float) / 255).clamp(0, 1), bit_depth=16)
    elif kind == "rgba16":
        write_image(path, as_float, alpha=torch.from_numpy(ramp), bit_depth=16)
    elif kind == "grey16":
        write_image(path, as_float, bit_depth=16, grayscale=True)
    elif kind == "greyalpha16":
        write_image(path, as_float, alpha=torch.from_numpy(ramp), bit_depth=16, grayscale=True)
    return path


KINDS = ["rgb", "rgba", "grey", "palette", "rgb16", "rgba16", "grey16", "greyalpha16"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strip_rows", [1, 5])
def test_streamed_equals_whole_bit_exactly(tmp_path, kind, strip_rows):
    """MATLAB bicubic (a deterministic model): every sample of every kind is identical."""
    model = srlab.create_model("bicubic", scale=3)
    source = write_kind(tmp_path / f"{kind}.png", kind)
    whole, streamed = both_ways(model, source, tmp_path, strip_rows=strip_rows)
    np.testing.assert_array_equal(streamed, whole)


def test_streamed_jpeg_with_exif_orientation(tmp_path):
    source = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(photo("chelsea", (40, 26))).save(source, exif=exif, quality=90)
    model = srlab.create_model("bicubic", scale=2)
    whole, streamed = both_ways(model, source, tmp_path, strip_rows=3)
    assert whole.shape == (80, 52, 3)
    np.testing.assert_array_equal(streamed, whole)


@pytest.fixture(scope="module")
def network():
    """A network whose size multiple (6) and receptive radius (78) are both > 1."""
    torch.manual_seed(0)
    return srlab.create_model("rdsr_s", scale=2).eval()


@pytest.mark.parametrize("self_ensemble", [False, True])
def test_streamed_network_equals_whole(tmp_path, network, self_ensemble):
    """A network: equal up to float rounding (convolutions on other shapes sum in another order).

    16-bit samples, so that differences far below an 8-bit level still show. The declared radius
    (78) would make every strip nearly the whole image; 12 rows of context (more than this
    randomly initialised network's effective reach) really cut it, on its padding grid.
    """
    source = write_kind(tmp_path / "rgb16.png", "rgb16", (14, 71))  # 71 rows: not a multiple of 6
    whole = upscale_file(network, source, tmp_path / "whole.png", stream="never", self_ensemble=self_ensemble)
    streamed = upscale_file(network, source, tmp_path / "streamed.png", stream="always", strip_rows=12,
                            tile_overlap=12, self_ensemble=self_ensemble)
    assert whole.out_size == streamed.out_size == (28, 142)
    difference = np.abs(pixels(tmp_path / "whole.png") - pixels(tmp_path / "streamed.png"))
    assert difference.max() <= 1


def test_too_little_context_changes_the_result(tmp_path, network):
    """The test above is meaningful: strips without enough context do differ from the whole image."""
    source = write_kind(tmp_path / "rgb16.png", "rgb16", (14, 71))
    upscale_file(network, source, tmp_path / "whole.png", stream="never")
    upscale_file(network, source, tmp_path / "cut.png", stream="always", strip_rows=12, tile_overlap=0)
    assert np.abs(pixels(tmp_path / "whole.png") - pixels(tmp_path / "cut.png")).max() > 10


def test_strips_bound_what_the_model_sees(tmp_path):
    seen: list[tuple[int, int]] = []
    model = srlab.create_model("bicubic", scale=2)
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    source = write_kind(tmp_path / "rgb.png", "rgb", (60, 90))
    upscale_file(model, source, tmp_path / "out.png", stream="always", strip_rows=10, tile=16)
    radius = 4  # bicubic's: the context of strips (rows) and of tiles (columns)
    assert max(h for h, _ in seen) <= 10 + 2 * radius
    assert max(w for _, w in seen) <= 16 + 2 * radius


def test_auto_streams_only_large_outputs(tmp_path, monkeypatch):
    import srlab.inference.files as files

    model = srlab.create_model("bicubic", scale=2)
    source = write_kind(tmp_path / "rgb.png", "rgb", (20, 10))
    assert not upscale_file(model, source, tmp_path / "a.png").streamed
    monkeypatch.setattr(files, "STREAM_ABOVE_PIXELS", 20 * 10 * 4 - 1)
    done = upscale_file(model, source, tmp_path / "b.png")
    assert done == UpscaledFile(source, tmp_path / "b.png", (20, 10), (40, 20), streamed=True)


def test_streaming_refusals(tmp_path):
    model = srlab.create_model("bicubic", scale=2)
    source = write_kind(tmp_path / "rgb.png", "rgb", (20, 10))
    with pytest.raises(SrlabError, match=r"streamed output is PNG only \(name it \.png\)"):
        upscale_file(model, source, tmp_path / "out.jpg", stream="always")
    with pytest.raises(SrlabError, match="--stream must be auto, always or never, not 'yes'"):
        upscale_file(model, source, tmp_path / "out.png", stream="yes")
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(photo("chelsea", (20, 10))).convert("CMYK").save(cmyk)
    with pytest.raises(SrlabError, match=r"cannot stream '.*cmyk.jpg': its pixel format \(cmyk.*convert it to"):
        upscale_file(model, cmyk, tmp_path / "out.png", stream="always")
    assert not (tmp_path / "out.png").exists()


def test_a_truncated_file_fails_cleanly_and_writes_nothing(tmp_path):
    source = write_kind(tmp_path / "rgb.png", "rgb", (200, 300))
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    model = srlab.create_model("bicubic", scale=2)
    with pytest.raises(SrlabError, match="cannot read image '.*rgb.png': file is truncated or corrupt"):
        upscale_file(model, source, tmp_path / "out.png", stream="always", strip_rows=8)
    assert list(tmp_path.iterdir()) == [source]


def test_whole_image_that_does_not_fit_is_refused_before_reading(tmp_path, monkeypatch):
    import srlab.data.stream as stream

    monkeypatch.setattr(stream, "available_memory", lambda: 2**20)
    source = write_kind(tmp_path / "rgb.png", "rgb", (64, 64))
    model = srlab.create_model("bicubic", scale=4)  # 64 x 64 x 16 x 64 bytes: 4 MiB > 1 MiB
    with pytest.raises(SrlabError, match=r"'.*rgb.png' is 64x64: to upscale it x4 in one piece "
                                         r"it needs about 0.0 GiB of memory and 0.0 GiB is available"):
        upscale_file(model, source, tmp_path / "out.png", stream="never")
    assert upscale_file(model, source, tmp_path / "out.png", stream="always").streamed


def test_auto_falls_back_to_the_whole_image_when_streaming_cannot_read_the_file(tmp_path, monkeypatch):
    import srlab.data.stream as stream
    import srlab.inference.files as files

    monkeypatch.setattr(files, "STREAM_ABOVE_PIXELS", 10)
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(photo("chelsea", (20, 10))).convert("CMYK").save(cmyk)
    model = srlab.create_model("bicubic", scale=2)
    assert not upscale_file(model, cmyk, tmp_path / "out.png").streamed  # fits: read whole
    monkeypatch.setattr(stream, "available_memory", lambda: 1000)
    with pytest.raises(SrlabError, match=r"is 20x10: to upscale it x2 in one piece it needs .* available; crop it "
                                         r".*; and cannot stream '.*cmyk.jpg': its pixel format \(cmyk"):
        upscale_file(model, cmyk, tmp_path / "out2.png")
