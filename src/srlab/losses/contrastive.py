"""RLFN's contrastive loss (Kong et al., "Residual Local Feature Network for Efficient
Super-Resolution", CVPRW 2022; the ratio form of AECR-Net, Wu et al., CVPR 2021)::

    L = sum_i w_i * d(phi_i(sr), phi_i(hr)) / (d(phi_i(sr), phi_i(lr_up)) + eps)

``sr`` (the anchor) is pulled toward ``hr`` (the positive) and pushed from ``lr_up``, the LR input
upscaled with MATLAB's bicubic (the negative). d is the mean L1 distance over the batch. RLFN found
that deep features of a pretrained VGG hurt PSNR and that the shallow features of a randomly
initialised network carry the edges and textures that matter: phi is
:class:`srlab.losses.features.RandomTanhFeatures` (conv3x3 - Tanh - conv3x3, random, frozen), by
default its second convolution's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.data.resize import bicubic_upscale
from srlab.errors import SrlabError
from srlab.losses.features import RandomTanhFeatures
from srlab.losses.base import LossInputs, Objective, check_pair, register_loss


@register_loss("contrastive")
class ContrastiveLoss(Objective):
    """RLFN's contrastive loss on a randomly initialised, frozen conv-Tanh-conv extractor."""

    def __init__(
        self,
        *,
        layers: Sequence[str] = ("conv1_2",),
        layer_weights: Sequence[float] | None = None,
        channels: int = 64,
        seed: int = 0,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        self.extractor = RandomTanhFeatures(layers=layers, channels=channels, seed=seed)
        if layer_weights is None:
            layer_weights = [1.0] * len(self.extractor.indices)
        if (isinstance(layer_weights, str) or not isinstance(layer_weights, Sequence)
                or len(layer_weights) != len(self.extractor.indices)
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in layer_weights)):
            raise SrlabError(
                f"contrastive: layer_weights must be a list of {len(self.extractor.indices)} numbers, got {layer_weights!r}"
            )
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
            raise SrlabError(f"contrastive: eps must be a positive number, got {eps!r}")
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.eps = float(eps)

    def forward(self, inputs: LossInputs) -> Tensor:
        check_pair(inputs, "contrastive")
        with torch.no_grad():
            negative = bicubic_upscale(inputs.lr, inputs.scale)
            if negative.shape != inputs.hr.shape:
                raise SrlabError(
                    f"contrastive: lr {tuple(inputs.lr.shape)} upscaled x{inputs.scale} is {tuple(negative.shape)}, "
                    f"not hr's {tuple(inputs.hr.shape)}: crop HR to a multiple of the scale"
                )
            positives = self.extractor(inputs.hr)
            negatives = self.extractor(negative)
        anchors = self.extractor(inputs.sr)
        terms = [
            w * F.l1_loss(a, p) / (F.l1_loss(a, n) + self.eps)
            for w, a, p, n in zip(self.layer_weights, anchors, positives, negatives)
        ]
        return torch.stack(terms).sum()
