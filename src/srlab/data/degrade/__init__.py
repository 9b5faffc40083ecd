"""Degradations ``x = D(y; δ)``: the LR image made from an HR image by a sampled, recorded δ.

δ holds everything that made the LR image: the scale, and the list of operations with their
parameters (blur kernels, resizes, noise with its seed, JPEG qualities; :mod:`srlab.data.degrade.ops`).
A :class:`Degradation` samples δ from a preset (:mod:`srlab.data.degrade.presets`: ``bicubic``,
``realesrgan``, ``bsrgan``) or a list of steps (:mod:`srlab.data.degrade.steps`), with a generator
seeded by integers only (:func:`sample_rng`: the run's seed, the epoch, the sample's index), so the
same seed gives the same δ on any machine, in any loader worker, after any resume;
:func:`apply_ops` replays a recorded δ exactly.

Used by ``srlab degrade`` (LR test sets, δ written beside each image) and by training
(``degradation:`` in the training config: each HR patch is degraded on the fly).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from srlab.data.degrade.ops import OPS, RESIZE_METHODS, apply_ops
from srlab.data.degrade.presets import PRESETS
from srlab.data.degrade.steps import STEPS, Builder, check_steps, run_steps
from srlab.data.resize import downscaled_size
from srlab.errors import SrlabError

__all__ = [
    "OPS", "PRESETS", "RESIZE_METHODS", "STEPS", "Degradation", "apply_ops", "name_seed", "parse_degradation",
    "sample_rng",
]


def sample_rng(*seeds: int) -> np.random.Generator:
    """The generator of one sample's δ, from integers (e.g. seed, epoch, index; taken modulo 2**64)."""
    return np.random.default_rng([int(s) % 2**64 for s in seeds])


def name_seed(name: str) -> int:
    """A stable integer for a file name (the same in every process, unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


@dataclass(frozen=True)
class Degradation:
    """A sampler of δ at ``scale``: a preset's name, or ``steps`` (the user's list)."""

    scale: float
    preset: str = ""
    steps: tuple[dict[str, Any], ...] = ()
    # Training only: the HR patch is USM-sharpened first (:mod:`srlab.data.degrade.usm`), and both the LR
    # patch and the target are made from the sharpened patch (Real-ESRNet's ``gt_usm: True``).
    gt_usm: bool = False

    def describe(self) -> dict[str, Any]:
        """The plain mapping that configures this degradation (as in a training config)."""
        spec: dict[str, Any] = {"preset": self.preset} if self.preset else {"steps": list(self.steps)}
        return {**spec, "gt_usm": True} if self.gt_usm else spec

    def sample(self, rng: np.random.Generator, hr_size: tuple[int, int]) -> list[dict[str, Any]]:
        """δ's operations for an HR image of ``hr_size`` (H, W); they end at the LR size."""
        builder = Builder(rng, tuple(hr_size), self.scale)
        if self.preset:
            PRESETS[self.preset](builder)
        else:
            run_steps(builder, list(self.steps))
        lr_size = downscaled_size(*hr_size, self.scale)
        if builder.size != lr_size:
            raise SrlabError(
                f"the degradation steps end at {builder.size[1]}x{builder.size[0]}, not at the LR size "
                f"{lr_size[1]}x{lr_size[0]} of a {hr_size[1]}x{hr_size[0]} image at x{self.scale:g}: "
                "add a {step: downscale} step (or fix its scale)"
            )
        return builder.ops

    def __call__(self, hr: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """(LR image, its δ operations) for a float (3, H, W) HR image in [0, 1]."""
        ops = self.sample(rng, tuple(hr.shape[-2:]))
        return apply_ops(hr, ops), ops


def parse_degradation(spec: Any, scale: float) -> Degradation | None:
    """``{preset: NAME}``, ``{steps: [...]}`` or a list of steps -> a Degradation; None/{}/[] -> None
    (the paired or bicubic data of old). A mapping may add ``gt_usm: true`` (the training target
    USM-sharpened first, as Real-ESRNet trains)."""
    if spec is None or spec == {} or spec == []:
        return None
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 1 <= scale < float("inf"):
        raise SrlabError(f"a degradation downscales: its scale must be a number >= 1, got {scale!r}")
    if isinstance(spec, list):
        spec = {"steps": spec}
    if not isinstance(spec, dict) or len({"preset", "steps"} & set(spec)) != 1 or set(spec) - {"preset", "steps", "gt_usm"}:
        raise SrlabError(f"degradation must be {{preset: NAME}}, {{steps: [...]}} or a list of steps (a mapping may "
                         f"add gt_usm: true), got {spec!r} (presets: {', '.join(PRESETS)})")
    gt_usm = spec.get("gt_usm", False)
    if not isinstance(gt_usm, bool):
        raise SrlabError(f"degradation gt_usm must be true or false, got {gt_usm!r}")
    if "steps" in spec:
        degradation = Degradation(float(scale), steps=tuple(check_steps(spec["steps"])), gt_usm=gt_usm)
        # A dry run: a bad value (a range of even kernel sizes, a quality of 0, no downscale) is refused
        # now, not in the middle of a run.
        degradation.sample(sample_rng(0), (240, 240))
        return degradation
    preset = spec["preset"]
    if preset not in PRESETS:
        raise SrlabError(f"unknown degradation preset {preset!r}: use one of {', '.join(PRESETS)}")
    if preset == "bsrgan" and not float(scale).is_integer():
        raise SrlabError(f"the bsrgan preset needs an integer scale, not x{scale:g}")
    return Degradation(float(scale), preset=preset, gt_usm=gt_usm)
