"""Running models on images: the one generic path (pad, tile, crop) used by every model."""

from srlab.inference.upscale import resolve_device, upscale_tensor

__all__ = ["resolve_device", "upscale_tensor"]
