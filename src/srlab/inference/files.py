"""Super-resolving image files: read, upscale (alpha, grey and 16 bits kept), write.

:func:`upscale_file` is what ``srlab upscale`` does for each input. Images whose output is small
enough are read whole (:func:`srlab.data.io.read_image`) and upscaled in one piece. Larger ones are
*streamed*: read by strips of rows (:class:`srlab.data.stream.StripReader`), each strip upscaled
with :func:`srlab.inference.upscale_tensor` and its rows appended to the output PNG
(:class:`srlab.data.io.PngWriter`), so memory is bounded by the strip, not the image.

The streamed result equals the whole-image one. Each strip carries ``context`` extra rows above and
below (the model's receptive radius, as for tiles), which are upscaled and then dropped. Strips start
on multiples of the model's size multiple and end on rows congruent to the image height modulo it,
so every flipped or rotated copy of the self-ensemble sees the same padding grid as the whole image.
Alpha is upscaled with MATLAB bicubic (2 LR pixels of context suffice) as in the whole-image path.

``outscale`` (``srlab upscale -s``, Real-ESRGAN's final resize) resizes the model's output to
``outscale`` times the input size with MATLAB bicubic (:func:`srlab.data.resize.imresize`) when it
differs from the model's scale. It needs the whole output at once, so such images are not streamed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srlab.data.io import (
    PNG_COMPRESSION,
    PngWriter,
    atomic_path,
    read_header,
    read_image,
    to_samples,
    write_image,
)
from srlab.data.resize import bicubic_upscale, imresize
from srlab.data.stream import StripReader, check_fits_in_memory, streaming_refusal
from srlab.errors import SrlabError
from srlab.inference.upscale import upscale_tensor
from srlab.models.registry import spec_of

__all__ = ["STREAM_ABOVE_PIXELS", "UpscaledFile", "output_size", "upscale_file"]

# Outputs above this many pixels are streamed when stream="auto": the whole-image path holds the
# output several times over (float32 result, clamped copy, channels, rounding, int32, uint8), about
# 96 bytes a pixel as measured with bench/bench_large_image.py, so this keeps it near 3 GiB.
STREAM_ABOVE_PIXELS = 2**25
# Whole-image path: bytes of memory per output pixel, for the check before reading.
_BYTES_PER_OUTPUT_PIXEL = 96
# A strip's output is about this many pixels (~800 MB at 96 bytes a pixel) when strip_rows is not given.
_STRIP_OUTPUT_PIXELS = 2**23
# Streamed strips run the model in tiles of this side (LR pixels) when no tile is given: a full-width
# strip of a 16k image would otherwise make feature maps of several GiB.
_STREAM_TILE = 256
# LR rows of context MATLAB bicubic needs (its kernel reaches 2 pixels), for the alpha channel.
_BICUBIC_CONTEXT = 2


@dataclass(frozen=True)
class UpscaledFile:
    """What :func:`upscale_file` did: the sizes are (width, height)."""

    source: Path
    destination: Path
    size: tuple[int, int]
    out_size: tuple[int, int]
    streamed: bool


def upscale_file(
    model: nn.Module,
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    tile: int | None = None,
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    stream: str = "auto",
    strip_rows: int | None = None,
    png_compression: int = PNG_COMPRESSION,
    outscale: float | None = None,
) -> UpscaledFile:
    """Super-resolve the image file ``source`` into ``destination`` (written atomically).

    Grey images stay grey, 16-bit PNGs stay 16-bit, and alpha is upscaled with bicubic
    interpolation and kept. ``tile``/``tile_overlap``/``self_ensemble`` are as for
    :func:`upscale_tensor`. ``stream``: "auto" streams outputs over ``STREAM_ABOVE_PIXELS`` pixels,
    "always" and "never" force the choice; streaming writes PNG only. ``strip_rows`` sets the LR rows
    a streamed strip keeps (default: about 8 Mpx of output per strip). ``png_compression`` is the zlib
    level of PNG outputs (0-9). ``outscale``: the output is resized to :func:`output_size` of the
    input with MATLAB bicubic when it differs from the model's scale (None: the model's scale). Raises SrlabError for a file that cannot be read or written, or an
    image that does not fit in memory.
    """
    source, destination = Path(source), Path(destination)
    if stream not in ("auto", "always", "never"):
        raise SrlabError(f"--stream must be auto, always or never, not {stream!r}")
    if png_compression not in range(10):
        raise SrlabError(f"PNG compression must be 0 (none) to 9 (smallest), not {png_compression}")
    scale = spec_of(model).scale
    if outscale is not None and not (0 < outscale < math.inf):
        raise SrlabError(f"--outscale must be a positive number, not {outscale!r}")
    resize = outscale is not None and float(outscale) != float(scale)
    # Memory is checked for the larger of the model's output and the resized one.
    refusal = spec_of(model).info.tiling_refusal
    if refusal and stream == "always":
        raise SrlabError(f"--stream always: model {spec_of(model).name!r} with {refusal}")
    stream = "never" if refusal else stream
    streamed = _stream_or_not(source, destination, stream, max(scale, outscale) if resize else scale, resize=resize)
    try:
        if streamed:
            return _upscale_streamed(model, source, destination, tile=tile, tile_overlap=tile_overlap,
                                     self_ensemble=self_ensemble, strip_rows=strip_rows,
                                     png_compression=png_compression)
        return _upscale_whole(model, source, destination, tile=tile, tile_overlap=tile_overlap,
                              self_ensemble=self_ensemble, png_compression=png_compression,
                              outscale=outscale if resize else None)
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError; so is the CPU allocator's
        if not isinstance(e, MemoryError) and "memory" not in str(e).lower():
            raise
        raise SrlabError(f"'{source}' does not fit in memory: pass --tile 256 (or smaller)") from None


def output_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    """The (height, width) of ``-s outscale``: MATLAB's ``ceil(outscale * side)``, the product rounded
    to 9 decimals first so that binary fractions do not add a pixel (2.2 * 10 is 22, not 23)."""
    return tuple(max(1, math.ceil(round(outscale * side, 9))) for side in (height, width))


def _stream_or_not(source: Path, destination: Path, stream: str, scale: float, *, resize: bool = False) -> bool:
    """Whether to stream (see upscale_file); SrlabError if neither way can work."""
    not_png = f"cannot stream into '{destination}': streamed output is PNG only (name it .png)"
    png_out = destination.suffix.lower() == ".png"
    whole_only = not float(scale).is_integer()  # strips would not end on whole output rows
    if stream == "always":
        if not png_out:
            raise SrlabError(not_png)
        if resize:
            raise SrlabError("--stream always and --outscale do not combine: the final resize needs the whole "
                             "output (drop one)")
        if whole_only:
            raise SrlabError(f"--stream always needs an integer scale: x{scale} upscales whole images")
        return True
    refusal = None
    if stream == "auto" and not whole_only and not resize:
        header = read_header(source)
        if header.width * header.height * scale * scale > STREAM_ABOVE_PIXELS:
            refusal = streaming_refusal(source) if png_out else not_png
            if refusal is None:
                return True
    try:
        check_fits_in_memory(source, bytes_per_pixel=math.ceil(_BYTES_PER_OUTPUT_PIXEL * scale * scale),
                             task=f"upscale it x{scale} in one piece")
    except SrlabError as e:
        raise SrlabError(f"{e}; and {refusal}" if refusal else str(e)) from None
    return False


def _run_model(model: nn.Module, lr: torch.Tensor, *, tile: int | None, tile_overlap: int | None,
               self_ensemble: bool) -> torch.Tensor:
    # self_ensemble is passed only when asked for: stand-ins for upscale_tensor (tests) with the
    # older (model, lr, *, tile, tile_overlap) signature keep working.
    extra = {"self_ensemble": True} if self_ensemble else {}
    return upscale_tensor(model, lr, tile=tile, tile_overlap=tile_overlap, **extra).float().cpu()


def _upscale_whole(model: nn.Module, source: Path, destination: Path, *, tile: int | None,
                   tile_overlap: int | None, self_ensemble: bool, png_compression: int,
                   outscale: float | None) -> UpscaledFile:
    loaded = read_image(source)
    sr = _run_model(model, loaded.rgb, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble)
    if outscale is not None:
        sr = imresize(sr, size=output_size(*loaded.rgb.shape[-2:], outscale))
    alpha = None if loaded.alpha is None else imresize(loaded.alpha, size=tuple(sr.shape[-2:])).clamp(0, 1)
    write_image(destination, sr.clamp(0, 1), alpha=alpha, bit_depth=loaded.bit_depth, grayscale=loaded.grayscale,
                png_compression=png_compression)
    height, width = loaded.rgb.shape[-2:]
    return UpscaledFile(source, destination, (width, height), (sr.shape[-1], sr.shape[-2]), streamed=False)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _strip_samples(model: nn.Module, reader: StripReader, first: int, last: int, keep: slice, *,
                   tile: int | None, tile_overlap: int | None, self_ensemble: bool) -> np.ndarray:
    """The output rows ``keep`` of LR rows ``[first, last)`` upscaled, as samples for the PNG writer."""
    strip = reader.rows(first, last)
    scale = spec_of(model).scale
    sr = _run_model(model, strip.rgb, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble)[:, keep]
    alpha = None if strip.alpha is None else bicubic_upscale(strip.alpha, scale)[:, keep].clamp(0, 1)
    return to_samples(sr, alpha=alpha, bit_depth=reader.bit_depth, grayscale=reader.grayscale)


def _upscale_streamed(model: nn.Module, source: Path, destination: Path, *, tile: int | None,
                      tile_overlap: int | None, self_ensemble: bool, strip_rows: int | None,
                      png_compression: int) -> UpscaledFile:
    spec = spec_of(model)
    scale, multiple = spec.scale, max(1, spec.info.size_multiple)
    reader = StripReader(source)
    width, height = reader.width, reader.height
    radius = spec.info.receptive_radius if tile_overlap is None else tile_overlap
    has_alpha = reader.channels in (2, 4)
    context = _round_up(max(radius, _BICUBIC_CONTEXT if has_alpha else 0), multiple)
    if strip_rows is None:
        # At least twice the context, so that strips do not spend most of their time on context rows.
        strip_rows = max(_STRIP_OUTPUT_PIXELS // (width * scale * scale), 2 * context)
    rows = _round_up(max(1, strip_rows), multiple)
    # Strip bottoms congruent to the height modulo the multiple: see the module docstring.
    bottom_shift = height % multiple
    model_tile = _STREAM_TILE if tile is None else tile
    out_channels = (1 if reader.grayscale else 3) + has_alpha
    try:
        with atomic_path(destination) as tmp, PngWriter(
            tmp, width=width * scale, height=height * scale, channels=out_channels, bit_depth=reader.bit_depth,
            compress_level=png_compression,
        ) as png:
            for top in range(0, height, rows):
                bottom = min(height, top + rows)
                first, last = max(0, top - context), min(height, bottom + context + bottom_shift)
                # Written straight from the call: no tensor of this strip is alive while the next one runs.
                png.write_rows(_strip_samples(
                    model, reader, first, last, slice((top - first) * scale, (bottom - first) * scale),
                    tile=model_tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble,
                ))
    except OSError as e:
        reason = e.strerror or " ".join(str(e).split())
        raise SrlabError(
            f"cannot write image '{destination}': {reason} (check that the folder exists and is writable)"
        ) from None
    return UpscaledFile(source, destination, (width, height), (width * scale, height * scale), streamed=True)
