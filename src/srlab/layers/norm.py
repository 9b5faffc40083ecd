"""Normalisation of (N, C, H, W) feature maps: the channel LayerNorm that the Restormer / ConvNeXt family of
SR models uses, and the registry of the norms a network takes as ``norm=`` (:func:`build_norm`).

Omni-SR (``LayerNorm2d``), SAFMN (``LayerNorm``, ``channels_first``), DLGSANet (``WithBias_LayerNorm``)
and ShuffleMixer (``BiasFree_LayerNorm``, which despite its name subtracts the mean) all normalise each
pixel over its C values: ``(x - mean) / sqrt(var + eps) * weight (+ bias)``, biased variance. They differ
only in ``eps`` and in whether there is a bias, which are parameters here. ``F.layer_norm`` computes it
(one kernel whose statistics are accumulated in float32 for half-precision inputs).

:func:`build_norm` is the registry of feature-map normalisations that a network takes as a hyper-parameter
(``norm=none|batch|layer|instance``, the study's section 6.6); a new one is one line in ``_NORMS``. For an
(N, C, H, W) map, each normalises ``(x - mean) / sqrt(var + eps)`` (biased variance) and applies a learnt
per-channel scale and shift:

* ``none``: ``nn.Identity`` (no parameters, no state-dict keys), so a network built with it is the one
  built without the option, key for key and bit for bit.
* ``batch``: ``nn.BatchNorm2d`` (eps 1e-5, momentum 0.1). In training, statistics per channel over the
  batch and all pixels (N, H, W), and the running mean / variance are updated; in ``eval()`` the running
  statistics are used, so the layer is a fixed per-channel affine map and a pixel's output does not depend
  on the rest of the image (tiles are exact).
* ``layer``: :class:`LayerNorm2d` (eps 1e-6, the ConvNeXt / SAFMN / Omni-SR choice), per pixel over its C
  values, the same in training and evaluation; it looks at no other pixel, so tiles are exact.
* ``instance``: ``nn.InstanceNorm2d(affine=True)`` (eps 1e-5, no running statistics), per sample and per
  channel over all H x W pixels, the same in training and evaluation. Its statistics are the whole image's:
  a tile's are other ones, so tiled inference cannot reproduce whole-image inference (the models refuse
  ``--tile`` and streaming with it; see ``ModelInfo.tiling_refusal``), and a network trained on patches
  sees different statistics on a whole image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an (N, C, H, W) tensor, at every pixel.

    Parameters ``weight`` (ones) and, when ``bias``, ``bias`` (zeros), both of length C. Models whose
    official norm holds them one level down (``norm.body.weight``) nest this in ``Sequential(body=...)``.
    """

    def __init__(self, channels: int, *, eps: float, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The normalised shape from the parameter, not from x.shape: a constant for the ONNX exporters.
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}, bias={self.bias is not None}"


@dataclass(frozen=True)
class NormEntry:
    build: Callable[[int], nn.Module]
    # Its statistics span all pixels of the image at inference: a tile of the image is normalised differently.
    whole_image: bool


_NORMS: dict[str, NormEntry] = {
    "none": NormEntry(lambda channels: nn.Identity(), whole_image=False),
    "batch": NormEntry(lambda channels: nn.BatchNorm2d(channels), whole_image=False),
    "layer": NormEntry(lambda channels: LayerNorm2d(channels, eps=1e-6), whole_image=False),
    "instance": NormEntry(lambda channels: nn.InstanceNorm2d(channels, affine=True), whole_image=True),
}
NORMS = tuple(_NORMS)


def norm_entry(name: str) -> NormEntry:
    """The registered normalisation ``name``; ValueError naming the choices for any other."""
    try:
        return _NORMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {name!r}") from None


def build_norm(name: str, channels: int) -> nn.Module:
    """A fresh normalisation layer ``name`` (one of :data:`NORMS`) for ``channels``-channel feature maps."""
    return norm_entry(name).build(channels)


def norm_tiling_refusal(name: str) -> str:
    """Why a network using norm ``name`` must see whole images ("" when tiles reproduce it), for ModelInfo."""
    if not norm_entry(name).whole_image:
        return ""
    return (f"norm={name} normalises over the whole image, so tiles or strips would be normalised differently "
            "and would not reproduce it: upscale whole images (drop --tile / --stream always)")
