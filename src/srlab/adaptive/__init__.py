"""Content-adaptive inference: patch-wise routing of an LR image through paths of different cost."""

from srlab.adaptive import reference  # noqa: F401  (registers the reference methods)
from srlab.adaptive.engine import AdaptiveStats, adaptive_upscale
from srlab.adaptive.method import AdaptiveMethod, build_adaptive, list_adaptive, register_adaptive
from srlab.adaptive.patches import PatchGrid, blend_patches, split_patches

__all__ = [
    "AdaptiveMethod", "AdaptiveStats", "PatchGrid", "adaptive_upscale", "blend_patches", "build_adaptive",
    "list_adaptive", "register_adaptive", "split_patches",
]
