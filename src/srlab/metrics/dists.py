"""DISTS, deep image structure and texture similarity (Ding et al., TPAMI 2020).

As the reference implementation (dingkeyan93/DISTS, MIT; the ``DISTS_pytorch`` package) computes it:

1. [0, 1] RGB inputs are normalised with ImageNet's mean (0.485, 0.456, 0.406) and std
   (0.229, 0.224, 0.225) and go through VGG16 whose max poolings (``features`` 4, 9, 16, 23) are
   replaced by L2 pooling (3x3 Hann window, stride 2);
2. six stages are compared: the input image itself (not normalised) and relu1_2, relu2_2, relu3_3,
   relu4_3, relu5_3 (3 + 64 + 128 + 256 + 512 + 512 = 1475 channels);
3. per channel, over space: structure ``S1 = (2 mx my + c1) / (mx^2 + my^2 + c1)`` and texture
   ``S2 = (2 cov_xy + c2) / (var_x + var_y + c2)``, c1 = c2 = 1e-6 (biased variances);
4. ``D = 1 - sum_c (alpha_c S1_c + beta_c S2_c) / (sum alpha + sum beta)``.

The user provides the alpha/beta file the ``DISTS_pytorch`` package ships (``weights.pt``: ``alpha`` and
``beta`` of shape (1, 1475, 1, 1)) and torchvision's ``vgg16-397923af.pth``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.metrics.backbones import TORCHVISION_FILES, FeatureExtractor, _load_state_dict_file, build_backbone
from srlab.metrics.common import as_batch
from srlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from srlab.metrics.protocol import EvalProtocol

TAPS = (3, 8, 15, 22, 29)
CHANNELS = (3, 64, 128, 256, 512, 512)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
C1 = 1e-6
C2 = 1e-6


class DISTS(nn.Module):
    """DISTS with its weights loaded once; ``model(x, y)`` gives one distance per image (0 = identical).

    Args:
        weights: the ``DISTS_pytorch`` package's ``weights.pt`` (alpha, beta).
        backbone_weights: torchvision's ``vgg16-397923af.pth``.
    """

    def __init__(
        self,
        *,
        weights: str | os.PathLike[str] | None = None,
        backbone_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        vgg_file = TORCHVISION_FILES["vgg16"]
        if backbone_weights is None:
            raise SrlabError(f"DISTS needs the VGG16 weights: pass backbone_weights=... (torchvision's {vgg_file})")
        if weights is None:
            raise SrlabError(
                "DISTS needs its alpha/beta weights: pass weights=... (the DISTS_pytorch package's weights.pt)"
            )
        path = Path(weights)
        if not path.is_file():
            raise SrlabError(f"DISTS alpha/beta weights not found at {path}: pass the DISTS_pytorch package's weights.pt")
        if not Path(backbone_weights).is_file():
            raise SrlabError(f"DISTS VGG16 weights not found at {backbone_weights}: pass torchvision's {vgg_file}")
        self.backbone: FeatureExtractor = build_backbone("vgg16", backbone_weights, pool="l2")
        total = sum(CHANNELS)
        self.alpha = nn.Parameter(torch.zeros(1, total, 1, 1), requires_grad=False)
        self.beta = nn.Parameter(torch.zeros(1, total, 1, 1), requires_grad=False)
        state = _load_state_dict_file(path, "DISTS alpha/beta weights")
        if set(state) != {"alpha", "beta"} or any(tuple(v.shape) != (1, total, 1, 1) for v in state.values()):
            shapes = {k: tuple(v.shape) for k, v in state.items()}
            raise SrlabError(
                f"{path} does not hold DISTS weights (expected alpha and beta of shape (1, {total}, 1, 1), got "
                f"{shapes}); pass the DISTS_pytorch package's weights.pt"
            )
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
            self.beta.copy_(state["beta"])
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def features(self, x: Tensor) -> list[Tensor]:
        """The six DISTS stages of [0, 1] RGB images (the image itself first)."""
        mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        h = (x - mean) / std
        return [x, *self.backbone.taps(h, TAPS)]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """DISTS distances of [0, 1] RGB images: (N,) for (N, 3, H, W) inputs, a scalar for (3, H, W)."""
        single = isinstance(x, Tensor) and x.dim() == 3
        x, y = _prepare(x, "x", self), _prepare(y, "y", self)
        if x.shape != y.shape:
            raise SrlabError(f"DISTS: images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        w_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w_sum, CHANNELS, dim=1)
        betas = torch.split(self.beta / w_sum, CHANNELS, dim=1)
        score = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for k, (fx, fy) in enumerate(zip(self.features(x), self.features(y))):
            mx = fx.mean(dim=(2, 3), keepdim=True)
            my = fy.mean(dim=(2, 3), keepdim=True)
            s1 = (2 * mx * my + C1) / (mx.pow(2) + my.pow(2) + C1)
            vx = (fx - mx).pow(2).mean(dim=(2, 3), keepdim=True)
            vy = (fy - my).pow(2).mean(dim=(2, 3), keepdim=True)
            cov = (fx * fy).mean(dim=(2, 3), keepdim=True) - mx * my
            s2 = (2 * cov + C2) / (vx + vy + C2)
            score = score + (alphas[k] * s1 + betas[k] * s2).sum(dim=(1, 2, 3))
        distance = 1 - score
        return distance[0] if single else distance


def _prepare(x: Tensor, name: str, model: nn.Module) -> Tensor:
    x = as_batch(x, name)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise SrlabError(f"{name} must have 1 or 3 channels (RGB in [0, 1]), got {x.shape[1]}")
    return x.to(device=model.alpha.device, dtype=model.alpha.dtype)


@lru_cache(maxsize=2)
def _cached(weights: str, backbone: str, stamps: tuple[float, float]) -> DISTS:
    return DISTS(weights=weights, backbone_weights=backbone)


def dists(
    x: Tensor,
    y: Tensor,
    *,
    weights: str | os.PathLike[str] | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
) -> Tensor:
    """DISTS distance of [0, 1] RGB images (see :class:`DISTS`; the loaded model is cached per file)."""
    if weights is None or backbone_weights is None or not Path(weights).is_file() \
            or not Path(backbone_weights).is_file():
        DISTS(weights=weights, backbone_weights=backbone_weights)  # raises the message
    stamps = (os.path.getmtime(weights), os.path.getmtime(backbone_weights))
    model = _cached(str(Path(weights).resolve()), str(Path(backbone_weights).resolve()), stamps)
    return model(x, y)


def load_dists(files: Mapping[str, str]) -> DISTS:
    """The metric's model from ``--metric_weights`` files, in float64 like the other metrics."""
    return DISTS(weights=files["dists"], backbone_weights=files["dists_backbone"]).double()


@register_metric(
    "dists", higher_is_better=False, best=0.0, load=load_dists,
    weights={"dists_backbone": "torchvision's vgg16-397923af.pth", "dists": "DISTS_pytorch's weights.pt"},
)
def score_dists(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol, model: DISTS) -> float:
    """DISTS of a prepared pair, in colour."""
    return float(model(sr, hr))
