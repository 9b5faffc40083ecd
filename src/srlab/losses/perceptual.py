"""Feature-space losses on a frozen ImageNet VGG19 (the study's sections 3.1.3 and 3.2.2).

* ``content`` (perceptual loss): the distance between the VGG19 features of ``sr`` and ``hr``;
  default ESRGAN's: L1 at ``conv5_4`` before its ReLU. ``criterion="l2"`` gives the MSE (SRGAN,
  Johnson et al.). Several layers are summed with ``layer_weights`` (default 1 each).
* ``texture`` (EnhanceNet, Gatys et al.): the distance between Gram matrices
  ``G = F F^T / (C * H * W)`` of the feature maps F (C, H*W) of ``sr`` and ``hr``; default the mean
  squared difference at conv1_1, conv2_1, conv3_1 (EnhanceNet's layers).

Both need torchvision's ImageNet checkpoint ``vgg19-dcbb9e9d.pth`` (``feature_weights=PATH``); with
``random_init=True`` seeded random weights stand in (tests, smoke runs; not a meaningful loss).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.errors import SrlabError
from srlab.losses.features import VGG19Features
from srlab.losses.base import LossInputs, Objective, check_pair, register_loss

CRITERIA = ("l1", "l2")


def _distance(x: Tensor, y: Tensor, criterion: str) -> Tensor:
    return F.l1_loss(x, y) if criterion == "l1" else F.mse_loss(x, y)


def _layer_weights(layers: Sequence[str], layer_weights: Sequence[float] | None, who: str) -> tuple[float, ...]:
    if layer_weights is None:
        return tuple(1.0 for _ in layers)
    if isinstance(layer_weights, str) or not isinstance(layer_weights, Sequence) or len(layer_weights) != len(layers):
        raise SrlabError(f"{who}: layer_weights must be a list of {len(layers)} numbers (one per layer), got {layer_weights!r}")
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in layer_weights):
        raise SrlabError(f"{who}: layer_weights must be numbers, got {layer_weights!r}")
    return tuple(float(w) for w in layer_weights)


def _criterion(criterion: str, who: str) -> str:
    if criterion not in CRITERIA:
        raise SrlabError(f"{who}: criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    return criterion


def gram_matrix(features: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C): F F^T / (C * H * W)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


@register_loss("content")
class ContentLoss(Objective):
    """sum_l w_l * d(VGG19_l(sr), VGG19_l(hr)), d the mean L1 (default) or mean squared difference."""

    def __init__(
        self,
        *,
        feature_weights: str | os.PathLike[str] | None = None,
        layers: Sequence[str] = ("conv5_4",),
        layer_weights: Sequence[float] | None = None,
        criterion: str = "l1",
        random_init: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.criterion = _criterion(criterion, "content")
        self.extractor = VGG19Features(layers=layers, weights=feature_weights, random_init=random_init,
                                       seed=seed, who="the content loss")
        self.layer_weights = _layer_weights(layers, layer_weights, "content")

    def forward(self, inputs: LossInputs) -> Tensor:
        check_pair(inputs, "content")
        fake = self.extractor(inputs.sr)
        with torch.no_grad():
            real = self.extractor(inputs.hr)
        terms = [w * _distance(f, r, self.criterion) for w, f, r in zip(self.layer_weights, fake, real)]
        return torch.stack(terms).sum()


@register_loss("texture")
class TextureLoss(Objective):
    """sum_l w_l * d(Gram(VGG19_l(sr)), Gram(VGG19_l(hr))), d the mean squared (default) or L1 difference."""

    def __init__(
        self,
        *,
        feature_weights: str | os.PathLike[str] | None = None,
        layers: Sequence[str] = ("conv1_1", "conv2_1", "conv3_1"),
        layer_weights: Sequence[float] | None = None,
        criterion: str = "l2",
        random_init: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.criterion = _criterion(criterion, "texture")
        self.extractor = VGG19Features(layers=layers, weights=feature_weights, random_init=random_init,
                                       seed=seed, who="the texture loss")
        self.layer_weights = _layer_weights(layers, layer_weights, "texture")

    def forward(self, inputs: LossInputs) -> Tensor:
        check_pair(inputs, "texture")
        fake = self.extractor(inputs.sr)
        with torch.no_grad():
            real = self.extractor(inputs.hr)
        terms = [
            w * _distance(gram_matrix(f), gram_matrix(r), self.criterion)
            for w, f, r in zip(self.layer_weights, fake, real)
        ]
        return torch.stack(terms).sum()
