"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), version 0.1.

As the reference implementation (richzhang/PerceptualSimilarity, BSD-2, the ``lpips`` package) computes it:

1. the [0, 1] RGB inputs go to [-1, 1], then through the scaling layer ``(x - shift) / scale`` with
   shift = (-0.030, -0.088, -0.188), scale = (0.458, 0.448, 0.450);
2. backbone activations at the official layers: AlexNet relu1..relu5 (``features`` 1, 4, 7, 9, 11),
   VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (3, 8, 15, 22, 29), SqueezeNet 1.1 relu1 and the
   six Fire outputs (1, 4, 7, 9, 10, 11, 12);
3. each activation is unit-normalised over channels (``f / (||f||_2 + 1e-10)``);
4. the squared difference of the two images' normalised features goes through a 1x1 convolution with
   one output and no bias (``lin0``.. ``lin4``, ``lin6`` for SqueezeNet), is averaged over space,
   and the layers are summed.

srlab does not depend on ``lpips`` or torchvision: the user provides two files, the linear weights
the ``lpips`` package ships (``lpips/weights/v0.1/{alex,vgg,squeeze}.pth``, keys
``linN.model.1.weight``) and torchvision's ImageNet checkpoint of the backbone.
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

#: net name -> (torchvision arch, feature taps, channels per tap)
NETS: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    "alex": ("alexnet", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": ("vgg16", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
    "squeeze": ("squeezenet1_1", (1, 4, 7, 9, 10, 11, 12), (64, 128, 256, 384, 384, 512, 512)),
}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
_TITLES = {"alex": "AlexNet", "vgg": "VGG16", "squeeze": "SqueezeNet 1.1"}


class _LinLayer(nn.Module):
    """``model.1`` is the 1x1 convolution (``model.0`` is the training-time dropout: identity here)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class _LinLayers(nn.Module):
    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        for i, c in enumerate(channels):
            self.add_module(f"lin{i}", _LinLayer(c))

    def __getitem__(self, i: int) -> _LinLayer:
        return getattr(self, f"lin{i}")


def _check_net(net: str) -> str:
    if net not in NETS:
        raise SrlabError(f"LPIPS: net must be one of {sorted(NETS)}, got {net!r}")
    return net


class LPIPS(nn.Module):
    """LPIPS with its weights loaded once; ``model(x, y)`` gives one distance per image.

    Args:
        net: ``"alex"`` (the default of the paper and the package), ``"vgg"`` or ``"squeeze"``.
        lin_weights: the ``lpips`` package's ``weights/v0.1/<net>.pth``.
        backbone_weights: torchvision's checkpoint (``alexnet-owt-7be5be79.pth``,
            ``vgg16-397923af.pth`` or ``squeezenet1_1-b8a52dc0.pth``).
    """

    def __init__(
        self,
        net: str = "alex",
        *,
        lin_weights: str | os.PathLike[str] | None = None,
        backbone_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.net_name = _check_net(net)
        arch, self.tap_indices, self.channels = NETS[net]
        title = _TITLES[net]
        if backbone_weights is None:
            raise SrlabError(
                f"LPIPS needs the {title} weights: pass backbone_weights=... "
                f"(torchvision's {TORCHVISION_FILES[arch]})"
            )
        if lin_weights is None:
            raise SrlabError(
                f"LPIPS needs its linear-layer weights: pass lin_weights=... "
                f"(the lpips package's lpips/weights/v0.1/{net}.pth)"
            )
        lin_path = Path(lin_weights)
        if not lin_path.is_file():
            raise SrlabError(
                f"LPIPS linear-layer weights not found at {lin_path}: pass the lpips package's "
                f"lpips/weights/v0.1/{net}.pth"
            )
        if not Path(backbone_weights).is_file():
            raise SrlabError(
                f"LPIPS {title} weights not found at {backbone_weights}: pass torchvision's {TORCHVISION_FILES[arch]}"
            )
        self.backbone: FeatureExtractor = build_backbone(arch, backbone_weights)
        self.lins = _LinLayers(self.channels)
        self._load_lins(lin_path)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def _load_lins(self, path: Path) -> None:
        state = _load_state_dict_file(path, "LPIPS linear-layer weights")
        own = self.lins.state_dict()
        if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
            raise SrlabError(
                f"{path} does not hold LPIPS {self.net_name} linear weights (expected keys "
                f"{sorted(own)[:2]}... with {len(own)} layers); pass the lpips package's "
                f"lpips/weights/v0.1/{self.net_name}.pth"
            )
        self.lins.load_state_dict(state, strict=True)

    def features(self, x: Tensor) -> list[Tensor]:
        """Backbone activations of [0, 1] RGB images at the LPIPS layers."""
        shift = torch.tensor(SHIFT, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        scale = torch.tensor(SCALE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (2.0 * x - 1.0 - shift) / scale
        return self.backbone.taps(x, self.tap_indices)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distances of [0, 1] RGB images: (N,) for (N, 3, H, W) inputs, a scalar for (3, H, W)."""
        single = isinstance(x, Tensor) and x.dim() == 3
        x, y = _prepare(x, "x", self), _prepare(y, "y", self)
        if x.shape != y.shape:
            raise SrlabError(f"LPIPS: images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i, (fx, fy) in enumerate(zip(self.features(x), self.features(y))):
            nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            total = total + self.lins[i]((nx - ny).pow(2)).mean(dim=(1, 2, 3))
        return total[0] if single else total


def _prepare(x: Tensor, name: str, model: nn.Module) -> Tensor:
    x = as_batch(x, name)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise SrlabError(f"{name} must have 1 or 3 channels (RGB in [0, 1]), got {x.shape[1]}")
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


@lru_cache(maxsize=4)
def _cached(net: str, lin: str, backbone: str, stamps: tuple[float, float]) -> LPIPS:
    return LPIPS(net, lin_weights=lin, backbone_weights=backbone)


def lpips(
    x: Tensor,
    y: Tensor,
    net: str = "alex",
    *,
    lin_weights: str | os.PathLike[str] | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
) -> Tensor:
    """LPIPS distance of [0, 1] RGB images (see :class:`LPIPS`; the loaded model is cached per file)."""
    if lin_weights is None or backbone_weights is None or not Path(lin_weights).is_file() \
            or not Path(backbone_weights).is_file():
        LPIPS(_check_net(net), lin_weights=lin_weights, backbone_weights=backbone_weights)  # raises the message
    stamps = (os.path.getmtime(lin_weights), os.path.getmtime(backbone_weights))
    model = _cached(net, str(Path(lin_weights).resolve()), str(Path(backbone_weights).resolve()), stamps)
    return model(x, y)


def load_lpips(files: Mapping[str, str]) -> LPIPS:
    """The metric's model from ``--metric_weights`` files, in float64 like the other metrics."""
    return LPIPS(
        files.get("lpips_net", "alex"), lin_weights=files["lpips_lin"], backbone_weights=files["lpips_backbone"],
    ).double()


@register_metric(
    "lpips", higher_is_better=False, best=0.0, load=load_lpips,
    weights={
        "lpips_backbone": "torchvision's alexnet-owt-7be5be79.pth (or the VGG16 / SqueezeNet file, "
                          "with lpips_net=vgg|squeeze)",
        "lpips_lin": "the lpips package's lpips/weights/v0.1/alex.pth",
    },
    options={"lpips_net": "alex (default), vgg or squeeze"},
)
def score_lpips(sr: Tensor, hr: Tensor, *, protocol: EvalProtocol, model: LPIPS) -> float:
    """LPIPS of a prepared pair, in colour."""
    return float(model(sr, hr))
