"""Content-adaptive inference: patch-wise routing of an LR image through paths of different cost.

    method = build_adaptive("gradient_routes", scale=4, knob=0.05).eval()
    sr, stats = adaptive_upscale(method, lr)  # lr: (N, C, H, W) in [0, 1]
    stats.route_counts, stats.macs_spent, stats.macs_full

A registered factory takes ``scale`` and, where the method has one, its quality/compute knob as ``knob``.
"""

from srlab.adaptive import arm, reference  # noqa: F401  (registers the methods)
from srlab.adaptive.engine import AdaptiveStats, adaptive_upscale
from srlab.adaptive.method import AdaptiveMethod, build_adaptive, list_adaptive, register_adaptive
from srlab.adaptive.patches import PatchGrid, blend_patches, split_patches
from srlab.adaptive.regions import RegionStats, adaptive_upscale_regions

__all__ = [
    "AdaptiveMethod", "AdaptiveStats", "PatchGrid", "RegionStats", "adaptive_upscale", "adaptive_upscale_regions",
    "blend_patches", "build_adaptive", "list_adaptive", "register_adaptive", "split_patches",
]
