"""Running models on images: the one generic path (pad, tile, crop) used by every model."""

from srlab.inference.ensemble import self_ensemble
from srlab.inference.upscale import resolve_device, upscale_tensor

__all__ = ["resolve_device", "self_ensemble", "upscale_tensor"]
