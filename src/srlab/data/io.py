"""Reading and writing images as float tensors.

Images come in as ``(3, H, W)`` float32 tensors in [0, 1], whatever the file holds: greyscale is
replicated to three channels (and flagged), palettes are expanded, CMYK and YCbCr are converted
to RGB, EXIF orientation is applied, and 16-bit files keep their 16-bit precision.

16-bit PNG support. Pillow has 16-bit *greyscale* modes but no 16-bit colour mode: on its own it
decodes 16-bit RGB / RGBA / grey+alpha PNGs to 8 bits per channel. ``read_image`` recovers the
exact 16-bit samples anyway by asking Pillow's PNG decoder (which un-filters the raw bytes
correctly) to keep the high byte of each sample in one pass and the low byte in a second.
``write_image(..., bit_depth=16)`` writes 16-bit PNGs with a small PNG encoder of its own, since
Pillow cannot write 16-bit colour PNGs. Other formats are read and written at 8 bits (16-bit
greyscale TIFFs are read at 16 bits).

Colour management is not applied: ICC profiles are ignored, and CMYK is converted with Pillow's
plain formula.

Animations (APNG, animated WebP) and multi-page TIFFs: only the first frame is read, and a
:class:`MultiFrameWarning` names the file and its frame count. SR tools compare and write single
images (an output PNG, a pair of HR/SR frames), so the first frame is what every other tool shows;
processing every frame would need an animated output format and a pairing rule for evaluation.

Images too large to hold in memory are read and written by strips with :mod:`srlab.data.stream`;
:class:`PngWriter` is the streaming PNG encoder both modules write 16-bit (and streamed) PNGs with.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from srlab.errors import SrlabError, SrlabWarning
from srlab.fileio import atomic_path, atomic_write_bytes, check_not_overwriting

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageHeader",
    "MAX_IMAGE_PIXELS",
    "PNG_COMPRESSION",
    "LoadedImage",
    "MultiFrameWarning",
    "PngWriter",
    "atomic_path",
    "atomic_write_bytes",
    "check_not_overwriting",
    "image_from_samples",
    "is_image_file",
    "list_images",
    "read_header",
    "too_large_error",
    "read_image",
    "read_rgb",
    "to_samples",
    "warn_if_multiframe",
    "write_image",
]

# File extensions treated as images, lower case and without the dot; matching is case-insensitive.
IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp")

# Pillow refuses images over ~89 Mpx as possible decompression bombs; SR works on 8K photos and
# large satellite tiles, so allow up to 2^30 pixels (a 12 GiB float32 tensor) and refuse above.
MAX_IMAGE_PIXELS = 2**30
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS:  # None: check disabled
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

_EXTENSIONS_TEXT = ", ".join(f".{e}" for e in IMAGE_EXTENSIONS)

# zlib level of written PNGs: Pillow's default. Level 1 is several times faster on large noisy
# outputs (bench/bench_large_image.py) for files about 10% larger.
PNG_COMPRESSION = 6


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == has no single truth value
class LoadedImage:
    """An image as read from disk.

    ``rgb`` is ``(3, H, W)`` float32 in [0, 1]; ``alpha`` is ``(1, H, W)`` float32 in [0, 1] or
    None; ``bit_depth`` is the precision the samples were read with (8 or 16); ``grayscale`` says
    the file had a single colour channel (``rgb`` then holds three equal channels).
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    grayscale: bool
    path: Path


class MultiFrameWarning(SrlabWarning):
    """An animation or multi-page file was read: only its first frame is used."""


# --------------------------------------------------------------------------------------- listing


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has one of the IMAGE_EXTENSIONS (it need not exist)."""
    return Path(path).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def list_images(path: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """The image files in a folder in natural order (img2 before img10), or ``[path]`` for a file.

    Hidden files and folders (names starting with ".") are skipped: they are macOS "._x.png"
    metadata files, editor backups, or half-written files from ``atomic_path``.
    """
    root = Path(path)
    if not root.exists():
        raise SrlabError(f"'{root}' does not exist (check the path)")
    if not root.is_dir():
        return [root]
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        if not recursive:
            subfolders.clear()
        # Pruning in place stops os.walk from descending into .git, .cache and the like.
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        found += [Path(folder, f) for f in files if not f.startswith(".") and is_image_file(f)]
    found = [p for p in found if p.is_file()]  # drops broken symlinks
    if not found:
        where = "folder or its subfolders" if recursive else "folder"
        raise SrlabError(f"no images in {where} '{root}' (accepted extensions: {_EXTENSIONS_TEXT})")
    return sorted(found, key=lambda p: tuple(_natural_key(part) for part in p.relative_to(root).parts))


def _natural_key(name: str) -> tuple[object, ...]:
    # re.split with a capturing group alternates text, number, text, ..., so texts and ints always
    # sit at the same positions and tuples compare cleanly. The raw name breaks ties
    # ("img01" vs "img1") so the order is deterministic.
    parts = re.split(r"(\d+)", name)
    return (*(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name)


# --------------------------------------------------------------------------------------- reading


def read_rgb(path: str | os.PathLike[str]) -> torch.Tensor:
    """The colour of an image as ``(3, H, W)`` float32 in [0, 1]; any alpha channel is ignored."""
    return read_image(path).rgb


def read_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read an image file; raises SrlabError with a one-line message if it cannot be read."""
    path = Path(path)
    with _reading(path):
        samples, max_value, grayscale = _decode(path)
    return image_from_samples(samples, max_value, grayscale, path)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding its pixels."""

    width: int
    height: int
    frames: int
    format: str  # Pillow's name: "PNG", "JPEG", "TIFF", ...
    path: Path


def read_header(path: str | os.PathLike[str]) -> ImageHeader:
    """The size, frame count and format of an image file (cheap: pixels are not decoded).

    The width and height are as stored: an EXIF orientation may swap them on reading.
    """
    path = Path(path)
    with _reading(path), Image.open(path) as im:
        return ImageHeader(width=im.size[0], height=im.size[1], frames=getattr(im, "n_frames", 1),
                           format=im.format or "", path=path)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn whatever reading ``path`` raises for a missing, unreadable or corrupt file into SrlabError."""
    if not path.exists():
        raise _read_error(path, "file does not exist (check the path)")
    if path.is_dir():
        raise _read_error(path, "it is a folder, not an image file (give a file, or use list_images)")
    try:
        if path.stat().st_size == 0:
            raise _read_error(path, "file is empty (0 bytes) (re-export or re-download it)")
        yield
    except SrlabError:
        raise
    except UnidentifiedImageError:
        raise _read_error(path, f"not a recognised image format (save it as {_EXTENSIONS_TEXT})") from None
    except Image.DecompressionBombError:
        raise too_large_error(path) from None
    except OSError as e:
        if e.errno is not None:  # a real I/O failure (permissions, disk), not a decoding problem
            raise _read_error(path, f"{e.strerror} (check the file and its permissions)") from None
        raise _corrupt_error(path, e) from None
    except (SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError) as e:
        # Pillow's plugins signal malformed files with all of these (PNG uses SyntaxError).
        raise _corrupt_error(path, e) from None


def image_from_samples(samples: np.ndarray, max_value: int, grayscale: bool, path: Path) -> LoadedImage:
    """A LoadedImage from ``(H, W, C)`` samples (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) of ``max_value``."""
    # uint16 -> float32 first: numpy then divides in float32, as torch would.
    values = torch.from_numpy(samples.astype(np.float32) / np.float32(max_value)).permute(2, 0, 1)
    colour_channels = 1 if grayscale else 3
    rgb = values[:colour_channels]
    rgb = rgb.repeat(3, 1, 1) if grayscale else rgb.contiguous()
    alpha = values[colour_channels:].contiguous() if values.shape[0] > colour_channels else None
    bit_depth = 16 if max_value == 65535 else 8
    return LoadedImage(rgb=rgb, alpha=alpha, bit_depth=bit_depth, grayscale=grayscale, path=path)


def warn_if_multiframe(path: Path, frames: int) -> None:
    """Say that only the first of ``frames`` frames is used (never drop frames silently)."""
    if frames > 1:
        warnings.warn(
            f"'{path}' has {frames} frames (an animation or multi-page file): only the first frame is used",
            MultiFrameWarning,
            stacklevel=3,
        )


def _decode(path: Path) -> tuple[np.ndarray, int, bool]:
    """Samples as ``(H, W, C)`` uint8/uint16 (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), max value, grey?"""
    with Image.open(path) as im:
        width, height = im.size
        if width * height > MAX_IMAGE_PIXELS:
            raise too_large_error(path, f"{width}x{height}")
        warn_if_multiframe(path, getattr(im, "n_frames", 1))
        wide_rawmode = _wide_png_rawmode(im)
    if wide_rawmode is not None:
        try:
            return _decode_wide_png(path, wide_rawmode)
        except (AttributeError, TypeError, ValueError) as e:
            # A Pillow whose internals differ from what _decode_wide_png expects: fall back to
            # Pillow's own 8-bit decoding rather than failing. A corrupt file fails there too.
            warnings.warn(f"reading 16-bit PNG '{path}' at 8-bit precision only ({e})", SrlabWarning, stacklevel=3)
    im = _load(path)
    return _samples(_normalise_mode(im, path), path)


def _load(path: Path, rawmode: str | None = None) -> Image.Image:
    """Open and fully decode an image, upright; ``rawmode`` overrides Pillow's PNG raw mode."""
    with Image.open(path) as im:
        if rawmode is not None:
            im.tile = [im.tile[0]._replace(args=rawmode)]
        # load() inside the try of read_image: a truncated file must fail here, not later. (Pillow's
        # ImageFile.LOAD_TRUNCATED_IMAGES is left False, so truncation raises.)
        im.load()
        return ImageOps.exif_transpose(im)  # returns a new, loaded image


# Pillow's raw modes for 16-bit colour PNGs. "…;16B" keeps the high (first) byte of each
# big-endian sample, "…;16L" the second one, i.e. the low byte. 16-bit grey+alpha has no "…;16L"
# variant, but its 4 bytes per pixel decode verbatim as 8-bit "RGBA" (hi L, lo L, hi A, lo A).
_WIDE_PNG_RAWMODES = ("RGB;16B", "RGBA;16B", "LA;16B")


def _wide_png_rawmode(im: Image.Image) -> str | None:
    if im.format != "PNG" or len(im.tile) != 1:
        return None
    rawmode = im.tile[0][3]
    return rawmode if rawmode in _WIDE_PNG_RAWMODES else None


def _decode_wide_png(path: Path, rawmode: str) -> tuple[np.ndarray, int, bool]:
    if rawmode == "LA;16B":
        raw = np.asarray(_load(path, rawmode="RGBA")).astype(np.uint16)
        samples = np.stack([raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]], axis=-1)
        return samples, 65535, True
    high = np.asarray(_load(path)).astype(np.uint16)  # Pillow's normal decode keeps the high bytes
    low = np.asarray(_load(path, rawmode=rawmode.replace(";16B", ";16L")))
    return high << 8 | low, 65535, False


def _normalise_mode(im: Image.Image, path: Path) -> Image.Image:
    """Convert to one of L, LA, RGB, RGBA, I;16*, I (keeping transparency as an alpha channel)."""
    mode = im.mode
    has_transparency = im.info.get("transparency") is not None
    if mode in ("P", "PA"):
        return im.convert("RGBA" if mode == "PA" or has_transparency else "RGB")
    if mode in ("1", "L"):
        return im.convert("LA" if has_transparency else "L")
    if mode == "RGB" and has_transparency:  # a tRNS colour key
        return im.convert("RGBA")
    if mode in ("LA", "RGB", "RGBA", "I") or mode.startswith("I;16"):
        return im
    # Float ("F") and other exotic modes are refused: Pillow would convert them to RGB, but
    # their value range is unknown, so the result would be silently wrong.
    target = _CONVERTIBLE_MODES.get(mode)
    try:
        if target is not None:
            return im.convert(target)
    except ValueError:
        pass
    raise _read_error(path, f"unsupported pixel format '{mode}' (convert it to an 8- or 16-bit PNG)")


# Modes read by converting them with Pillow (premultiplied alpha, padding byte, other colour spaces).
_CONVERTIBLE_MODES = {"La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "HSV": "RGB"}


def _samples(im: Image.Image, path: Path) -> tuple[np.ndarray, int, bool]:
    if im.mode in ("L", "LA", "RGB", "RGBA"):
        samples = np.asarray(im)
        if samples.ndim == 2:
            samples = samples[..., None]
        return samples, 255, im.mode in ("L", "LA")
    # 16-bit greyscale ("I;16", "I;16B", ...) or 32-bit integer "I" (how some files and older
    # Pillows present 16-bit grey): read as 16-bit, clipping anything outside the 16-bit range.
    grey = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    channels = [grey]
    key = im.info.get("transparency")
    if isinstance(key, int):  # a tRNS grey level marks transparent pixels
        channels.append(np.where(grey == key, 0, 65535).astype(np.uint16))
    return np.stack(channels, axis=-1), 65535, True


def _read_error(path: Path, problem: str) -> SrlabError:
    return SrlabError(f"cannot read image '{path}': {problem}")


def _corrupt_error(path: Path, cause: BaseException) -> SrlabError:
    detail = " ".join(str(cause).split())  # messages must stay on one line
    detail = f" ({detail})" if detail else ""
    return _read_error(path, f"file is truncated or corrupt{detail}; re-export it as PNG or JPEG")


def too_large_error(path: Path, size: str | None = None) -> SrlabError:
    what = f"image of {size} pixels" if size else "image"
    limit = f"the {MAX_IMAGE_PIXELS}-pixel limit"
    return _read_error(path, f"{what} is over {limit} (split it into tiles or downscale it)")


# --------------------------------------------------------------------------------------- writing

# Extension -> (Pillow format, whether it stores alpha, save options).
_OUTPUT_FORMATS: dict[str, tuple[str, bool, dict[str, object]]] = {
    "png": ("PNG", True, {}),
    # SR outputs are inspected closely: high quality and no chroma subsampling (4:4:4).
    "jpg": ("JPEG", False, {"quality": 95, "subsampling": 0}),
    "jpeg": ("JPEG", False, {"quality": 95, "subsampling": 0}),
    # Lossless, so a written .webp can be scored like a .png.
    "webp": ("WEBP", True, {"lossless": True}),
    "bmp": ("BMP", False, {}),  # Pillow reads 32-bit BMPs back without alpha
    "tif": ("TIFF", True, {}),
    "tiff": ("TIFF", True, {}),
}


def write_image(
    path: str | os.PathLike[str],
    rgb: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    bit_depth: int = 8,
    grayscale: bool = False,
    png_compression: int = PNG_COMPRESSION,
) -> None:
    """Write ``rgb`` ((3, H, W) float in [0, 1]) to ``path``, atomically; the format follows the extension.

    Values are clamped to [0, 1] (NaN becomes 0) and rounded half up to 8 bits, or to 16 bits when
    ``bit_depth=16`` (PNG only). ``alpha`` ((1, H, W) or (H, W)) is written as an alpha channel;
    formats without one (JPEG, BMP) raise SrlabError rather than drop it. ``grayscale=True``
    writes one channel, the mean of the three. ``png_compression`` is zlib's level (0-9) for PNGs.
    """
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in _OUTPUT_FORMATS:
        raise SrlabError(f"cannot write image '{path}': unknown extension (use one of {_EXTENSIONS_TEXT})")
    fmt, stores_alpha, options = _OUTPUT_FORMATS[ext]
    if bit_depth not in (8, 16):
        raise SrlabError(f"cannot write image '{path}': bit depth must be 8 or 16, not {bit_depth}")
    if png_compression not in range(10):
        raise SrlabError(f"PNG compression must be 0 (none) to 9 (smallest), not {png_compression}")
    if fmt == "PNG":
        options = {**options, "compress_level": png_compression}
    if bit_depth == 16 and fmt != "PNG":
        raise SrlabError(f"cannot write image '{path}': 16-bit output needs a .png file (or use bit depth 8)")
    if alpha is not None and not stores_alpha:
        raise SrlabError(
            f"cannot write image '{path}': {fmt} has no alpha channel (write .png, .webp or .tif to keep it)"
        )

    samples = to_samples(rgb, alpha=alpha, bit_depth=bit_depth, grayscale=grayscale)
    try:
        with atomic_path(path) as tmp:
            if bit_depth == 16:
                with PngWriter(tmp, width=samples.shape[1], height=samples.shape[0], channels=samples.shape[2],
                               bit_depth=16, compress_level=png_compression) as png:
                    png.write_rows(samples)
            else:
                mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples.shape[-1]]
                Image.fromarray(samples[..., 0] if mode == "L" else samples, mode).save(tmp, format=fmt, **options)
    except OSError as e:
        reason = e.strerror or " ".join(str(e).split())
        raise SrlabError(
            f"cannot write image '{path}': {reason} (check that the folder exists and is writable)"
        ) from None


def to_samples(rgb: torch.Tensor, *, alpha: torch.Tensor | None = None, bit_depth: int = 8,
               grayscale: bool = False) -> np.ndarray:
    """The ``(H, W, C)`` uint8/uint16 samples ``write_image`` stores for these arguments."""
    return _quantize(_channels_to_write(rgb, alpha, grayscale), 65535 if bit_depth == 16 else 255)


def _channels_to_write(rgb: torch.Tensor, alpha: torch.Tensor | None, grayscale: bool) -> torch.Tensor:
    """``(C, H, W)`` float32 on the CPU: grey or RGB, then alpha if given."""
    if not isinstance(rgb, torch.Tensor) or rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be a (3, H, W) tensor, got {_describe(rgb)}")
    if not rgb.is_floating_point():
        raise ValueError(f"rgb must be a float tensor in [0, 1], got dtype {rgb.dtype}")
    rgb = rgb.detach().to("cpu", torch.float32)
    # The mean (rather than luma weights) because grey outputs of an SR model are three nearly
    # equal channels; for exactly equal ones it gives that channel back.
    parts = [rgb.mean(dim=0, keepdim=True) if grayscale else rgb]
    if alpha is not None:
        if not isinstance(alpha, torch.Tensor) or not alpha.is_floating_point():
            raise ValueError(f"alpha must be a float tensor in [0, 1], got {_describe(alpha)}")
        alpha = alpha.detach().to("cpu", torch.float32)
        if alpha.ndim == 2:
            alpha = alpha[None]
        if alpha.shape != (1, *rgb.shape[1:]):
            raise ValueError(f"alpha must be (1, H, W) matching rgb {tuple(rgb.shape)}, got {tuple(alpha.shape)}")
        parts.append(alpha)
    return torch.cat(parts)


def _describe(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _quantize(channels: torch.Tensor, max_value: int) -> np.ndarray:
    """``(C, H, W)`` floats -> ``(H, W, C)`` uint8 / uint16, clamped and rounded half up.

    ``channels`` is overwritten (``_channels_to_write`` hands over a tensor of its own) and the samples
    are cast straight into their final order: peak RSS of ``srlab upscale --stream always``, bicubic x4 of
    1024x512 (one strip of 8 M output pixels), 836 MiB with a new tensor per step, 489 MiB so."""
    # floor(v + 0.5) is round-half-up; torch.round would round halves to even.
    x = channels.nan_to_num_(nan=0.0).clamp_(0.0, 1.0).mul_(max_value).add_(0.5).floor_()
    samples = np.empty((*x.shape[1:], x.shape[0]), np.uint16 if max_value == 65535 else np.uint8)
    np.copyto(samples, x.permute(1, 2, 0).numpy(), casting="unsafe")  # whole numbers: the cast is exact
    return samples


class PngWriter:
    """A PNG written row by row: memory stays bounded by the rows given at a time, not by the image.

    ``with PngWriter(path, width=..., height=..., channels=..., bit_depth=...) as png:`` then
    ``png.write_rows(samples)`` with ``(rows, width, channels)`` uint8/uint16 arrays, top to bottom,
    ``height`` rows in all. Channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. Pillow cannot write
    16-bit colour PNGs nor encode an image it does not hold whole, hence this small encoder.
    """

    _IDAT_BYTES = 1 << 20  # compressed bytes per IDAT chunk (a chunk must stay under 2^31 bytes)

    def __init__(self, path: str | os.PathLike[str], *, width: int, height: int, channels: int, bit_depth: int,
                 compress_level: int = PNG_COMPRESSION) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._width, self._height, self._channels, self._bit_depth = width, height, channels, bit_depth
        self._rows_written = 0
        self._previous: np.ndarray | None = None  # the last row written, for the "Up" filter
        self._compressor = zlib.compressobj(compress_level)
        self._pending = bytearray()
        colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
        self._file.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header))

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()

    def write_rows(self, samples: np.ndarray) -> None:
        expected = (self._width, self._channels)
        if samples.ndim != 3 or samples.shape[1:] != expected:
            raise ValueError(f"rows must be (rows, {expected[0]}, {expected[1]}), got {samples.shape}")
        if self._rows_written + samples.shape[0] > self._height:
            raise ValueError(f"more than the {self._height} rows declared")
        dtype = ">u2" if self._bit_depth == 16 else np.uint8
        rows = samples.astype(dtype).reshape(samples.shape[0], -1).view(np.uint8)
        # PNG filter 2 ("Up") on every row: each byte minus the byte above (0 above the first row),
        # modulo 256. It is one vectorised subtraction and compresses photos far better than no filter.
        above = np.empty_like(rows)
        above[0] = 0 if self._previous is None else self._previous
        above[1:] = rows[:-1]
        filtered = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
        filtered[:, 0] = 2
        np.subtract(rows, above, out=filtered[:, 1:])  # uint8 arithmetic wraps, which is the modulo 256
        self._previous = rows[-1].copy()
        self._rows_written += rows.shape[0]
        self._pending += self._compressor.compress(filtered.data)
        self._flush_chunks(self._IDAT_BYTES)

    def close(self) -> None:
        if self._rows_written != self._height:
            self._file.close()
            raise ValueError(f"{self._rows_written} rows written, {self._height} declared")
        self._pending += self._compressor.flush()
        self._flush_chunks(1)
        self._file.write(_png_chunk(b"IEND", b""))
        self._file.close()

    def _flush_chunks(self, at_least: int) -> None:
        while len(self._pending) >= at_least and self._pending:
            chunk = bytes(self._pending[: self._IDAT_BYTES])
            del self._pending[: self._IDAT_BYTES]
            self._file.write(_png_chunk(b"IDAT", chunk))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# The photo bundled with srlab (scikit-image's chelsea): the demo's image, and the probe that
# srlab.inference.paths measures a reduced-precision path's drop on.
SAMPLE_PHOTO = "chelsea"


def sample_photo() -> torch.Tensor:
    """The bundled sample photo as (3,H,W) float RGB in [0, 1]."""
    return read_rgb(Path(str(resources.files("srlab") / "assets" / f"{SAMPLE_PHOTO}.png")))
