"""Running models on images: the one generic path (pad, tile, crop) used by every model."""

from srlab.inference.ensemble import self_ensemble
from srlab.inference.files import UpscaledFile, upscale_file
from srlab.inference.upscale import resolve_device, upscale_tensor

__all__ = ["UpscaledFile", "resolve_device", "self_ensemble", "upscale_file", "upscale_tensor"]
