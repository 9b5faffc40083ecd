"""Content-adaptive inference: models whose compute follows the image content, with one knob.

    method = adaptive_for(model, checkpoint=path, knob=1.0)  # the method the model's ModelInfo names
    sr, stats = method.upscale(lr)  # lr: (N, C, H, W) in [0, 1]
    stats.macs_spent, stats.macs_full, stats.histogram()

See :mod:`srlab.adaptive.method` for the contract and :mod:`srlab.adaptive.engine` for patch routing.
"""

from srlab.adaptive import arm, arm_learned, camixersr, classsr, pcsr, rdsr, reference, smsr  # noqa: F401  (registers the methods)
from srlab.adaptive.engine import PatchRoutedMethod, adaptive_upscale
from srlab.adaptive.method import (
    AdaptiveMethod, AdaptiveModel, AdaptiveStats, adaptive_for, build_adaptive, list_adaptive, register_adaptive,
)
from srlab.adaptive.patches import PatchGrid, blend_patches, split_patches
from srlab.adaptive.regions import RegionStats, adaptive_upscale_regions

__all__ = [
    "AdaptiveMethod", "AdaptiveModel", "AdaptiveStats", "PatchGrid", "PatchRoutedMethod", "RegionStats", "adaptive_for",
    "adaptive_upscale", "adaptive_upscale_regions",
    "blend_patches", "build_adaptive", "list_adaptive", "register_adaptive", "split_patches",
]
