"""Reading images by strips of rows, for images too large to hold in memory.

:class:`StripReader` gives the samples of rows ``[top, bottom)`` of an image, top to bottom, holding
only the rows asked for. It decodes with libvips through ``pyvips`` (the ``pyvips-binary`` wheel
bundles libvips, so nothing needs installing besides pip packages). libvips was chosen because it
decodes PNG, JPEG, TIFF and WebP *sequentially* (PNG and JPEG row by row, TIFF strip by strip), so a
32768 x 32768 PNG is read in a few MiB; Pillow decodes an image whole, and tifffile reads TIFF only.
On every kind of file both read, libvips gives exactly the samples :func:`srlab.data.io.read_image`
gives (8/16-bit, grey, alpha, palettes, tRNS colour keys, EXIF orientation; tests/data/test_stream.py
checks them). Kinds where they would differ are refused with a one-line error naming the fix:
CMYK/Lab/float images (read_image converts CMYK with Pillow's formula, libvips with a colour profile)
and 16-bit colour outside PNG (read_image reads those at 8 bits). BMP is not read by libvips.

Writing is :class:`srlab.data.io.PngWriter`, which encodes a PNG row by row.

:func:`check_fits_in_memory` is the guard for tools that must hold a whole image (``srlab eval``):
it refuses, with a clear message, an image whose estimated footprint exceeds the memory available.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from srlab.data.io import (
    MAX_IMAGE_PIXELS,
    LoadedImage,
    image_from_samples,
    read_header,
    too_large_error,
    warn_if_multiframe,
)
from srlab.errors import SrlabError

__all__ = [
    "EVAL_BYTES_PER_PIXEL",
    "StripReader",
    "available_memory",
    "check_fits_in_memory",
    "pyvips_available",
    "streaming_refusal",
]

try:
    import pyvips
except (ImportError, OSError):  # OSError: the Python package is there but libvips is not
    pyvips = None


def pyvips_available() -> bool:
    return pyvips is not None


# libvips interpretation -> (sample format, band counts that read_image gives the same way, grey?)
_SAME_AS_READ_IMAGE = {
    "srgb": ("uchar", (3, 4), False),
    "b-w": ("uchar", (1, 2), True),
    "rgb16": ("ushort", (3, 4), False),
    "grey16": ("ushort", (1, 2), True),
}


class StripReader:
    """Rows of an image file, read top to bottom with bounded memory.

    ``width``, ``height`` (after EXIF orientation), ``channels`` (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA),
    ``bit_depth`` and ``grayscale`` describe it as :func:`srlab.data.io.read_image` would.
    ``rows(top, bottom)`` may overlap the previous call's rows but must not start above them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        header = read_header(self.path)
        if header.width * header.height > MAX_IMAGE_PIXELS:
            raise too_large_error(self.path, f"{header.width}x{header.height}")
        warn_if_multiframe(self.path, header.frames)
        image = _open_vips(self.path)
        self.width, self.height, self.channels = image.width, image.height, image.bands
        self.grayscale = _SAME_AS_READ_IMAGE[image.interpretation][2]
        self.bit_depth = 16 if image.format == "ushort" else 8
        self._dtype = np.uint16 if self.bit_depth == 16 else np.uint8
        self._region = pyvips.Region.new(image)
        self._buffer = np.empty((0, self.width, self.channels), self._dtype)
        self._buffer_top = 0  # image row of self._buffer[0]

    def rows(self, top: int, bottom: int) -> LoadedImage:
        """Rows ``[top, bottom)`` as a LoadedImage (``(3, bottom - top, width)`` rgb, alpha if any)."""
        if not 0 <= top < bottom <= self.height or top < self._buffer_top:
            raise ValueError(f"rows {top}:{bottom} of {self.height}, read after row {self._buffer_top}")
        buffered_bottom = self._buffer_top + len(self._buffer)
        if top >= buffered_bottom:  # nothing to keep: skipping rows forwards is still sequential
            self._buffer = self._fetch(top, bottom)
        else:
            kept = self._buffer[top - self._buffer_top:]
            if bottom > buffered_bottom:
                kept = np.concatenate([kept, self._fetch(buffered_bottom, bottom)])
            self._buffer = kept
        self._buffer_top = top
        samples = self._buffer[: bottom - top]
        return image_from_samples(samples, 65535 if self.bit_depth == 16 else 255, self.grayscale, self.path)

    def _fetch(self, top: int, bottom: int) -> np.ndarray:
        try:
            data = self._region.fetch(0, top, self.width, bottom - top)
        except pyvips.Error as e:
            raise _stream_error(self.path, e) from None
        return np.frombuffer(data, self._dtype).reshape(bottom - top, self.width, self.channels)


def streaming_refusal(path: str | os.PathLike[str]) -> str | None:
    """Why the image at ``path`` cannot be streamed (a one-line message), or None if it can be."""
    try:
        _open_vips(Path(path))
    except SrlabError as e:
        return str(e)
    return None


def _open_vips(path: Path):
    """The file as a sequential libvips image, upright; SrlabError if it cannot be streamed."""
    if pyvips is None:
        raise SrlabError(f"cannot stream '{path}': the pyvips package is missing (pip install pyvips pyvips-binary)")
    # The loader libvips would pick (pyvips has no wrapper for this libvips call); NULL: none.
    if pyvips.vips_lib.vips_foreign_find_load(os.fsencode(path)) == pyvips.ffi.NULL:
        raise SrlabError(f"cannot stream '{path}': libvips does not read this format; convert it to PNG")
    try:
        # fail_on="error": a truncated or corrupt file fails (when its rows are read) rather than
        # being filled in silently, as read_image refuses it too.
        image = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="error")
        orientation = image.get("orientation") if image.get_typeof("orientation") else 1
        if orientation not in (0, 1):
            # Rotating needs random access: libvips then decodes to a temporary file on disk
            # (above 100 MB), so memory stays bounded, at the cost of disk space.
            image = pyvips.Image.new_from_file(str(path), access="random", fail_on="error").autorot()
    except pyvips.Error as e:
        raise _stream_error(path, e) from None
    kind = _SAME_AS_READ_IMAGE.get(image.interpretation)
    png = image.get("vips-loader").startswith("png") if image.get_typeof("vips-loader") else False
    if kind is None or image.format != kind[0] or image.bands not in kind[1] or (
        image.format == "ushort" and not kind[2] and not png
    ):
        raise SrlabError(
            f"cannot stream '{path}': its pixel format ({image.interpretation}, {image.bands} bands, "
            f"{image.format}) is not streamed; convert it to an 8- or 16-bit RGB or grey PNG"
        )
    return image


def _stream_error(path: Path, error: Exception) -> SrlabError:
    detail = " ".join(str(error).split())
    return SrlabError(f"cannot read image '{path}': file is truncated or corrupt ({detail}); re-export it as PNG")


# --------------------------------------------------------------------------------------- memory

# Peak memory of ``srlab eval`` per HR pixel: measured 207 bytes (bicubic x4, PSNR and SSIM, peak RSS
# of 1024^2 vs 2048^2 HR images in fresh processes), rounded up for other models' outputs.
EVAL_BYTES_PER_PIXEL = 256


def available_memory() -> int:
    """Bytes of memory this process can still use: Linux's MemAvailable, else the free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits_in_memory(
    path: str | os.PathLike[str], *, bytes_per_pixel: int, task: str, available: int | None = None
) -> None:
    """Raise SrlabError if holding the image at ``path`` for ``task`` needs more than the available memory.

    ``bytes_per_pixel`` is the task's footprint per pixel of this image (for ``srlab eval``,
    ``EVAL_BYTES_PER_PIXEL``). Only the header is read, so the check costs nothing.
    """
    header = read_header(path)
    pixels = header.width * header.height
    needed = pixels * bytes_per_pixel
    available = available_memory() if available is None else available
    if needed > available:
        raise SrlabError(
            f"'{path}' is {header.width}x{header.height}: to {task} it needs about {needed / 2**30:.1f} GiB of "
            f"memory and {available / 2**30:.1f} GiB is available; crop it into smaller images "
            f"(or free memory)"
        )
