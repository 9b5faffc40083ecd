"""Upsamplers behind one contract (:mod:`srlab.layers.upsamplers.base`): each family registers its
factories on import; the explicit import list below makes the registry complete."""

from srlab.layers.upsamplers import (  # noqa: F401  (registers the upsamplers)
    attention, decomposed, interpolate, liif, lte, meta, subpixel, transposed,
)
from srlab.layers.upsamplers.base import build_upsampler, list_upsamplers, register_upsampler, upsampler_entry
from srlab.layers.upsamplers.subpixel import ProgressiveUpsampler, SubPixelHead, image_head

__all__ = [
    "ProgressiveUpsampler", "SubPixelHead", "build_upsampler", "image_head", "list_upsamplers",
    "register_upsampler", "upsampler_entry",
]
