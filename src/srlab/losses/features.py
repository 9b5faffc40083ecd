"""Frozen feature extractors for the feature-space losses, without torchvision.

* :class:`VGG19Features`: torchvision's ``vgg19().features`` rebuilt layer by layer, so its parameter
  names are torchvision's (``features.0.weight`` ... ``features.34.bias``): torchvision's ImageNet
  checkpoint ``vgg19-dcbb9e9d.pth`` loads strictly (its ``classifier.*`` entries are dropped, every
  other entry must match). Inputs are [0, 1] RGB, normalised with the ImageNet mean and std inside.
  Layers are named as in the SR papers: ``conv5_4`` is ``features.34`` before its ReLU (ESRGAN's
  content layer), ``relu5_4`` after it (SRGAN), ``pool4`` the fourth max pooling.
* :class:`RandomTanhFeatures`: RLFN's extractor for the contrastive loss, the first two 3x3
  convolutions of a VGG (3 -> 64 -> 64) with a Tanh between them, randomly initialised (seeded) and
  never trained.

Both are frozen (``requires_grad`` False) and hold no batch statistics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.metrics.backbones import load_torchvision_state

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _vgg19_layer_names() -> dict[str, int]:
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for v in _VGG19_CFG:
        if v == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


#: layer name (conv1_1, relu1_1, ..., pool5) -> index in ``features``
VGG19_LAYERS: dict[str, int] = _vgg19_layer_names()


def _vgg19_modules(last: int) -> list[nn.Module]:
    modules: list[nn.Module] = []
    channels = 3
    for v in _VGG19_CFG:
        if v == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(v)
    return modules[: last + 1]


def _freeze(module: nn.Module) -> None:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)


def _init_like_torchvision(modules: nn.Module, seed: int) -> None:
    """torchvision's VGG init (Kaiming normal, fan_out, ReLU gain; zero bias), from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    for m in modules.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            nn.init.zeros_(m.bias)


def resolve_vgg19_layers(layers: Sequence[str], who: str) -> tuple[int, ...]:
    if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
        raise SrlabError(f"{who}: layers must be a non-empty list of VGG19 layer names, e.g. ['conv5_4'], got {layers!r}")
    unknown = [name for name in layers if name not in VGG19_LAYERS]
    if unknown:
        raise SrlabError(f"{who}: unknown VGG19 layer {unknown[0]!r}: use conv1_1 .. conv5_4, relu1_1 .. relu5_4 or pool1 .. pool5")
    return tuple(VGG19_LAYERS[name] for name in layers)


class VGG19Features(nn.Module):
    """VGG19 activations of [0, 1] RGB images at ``layers``; ``forward(x)`` returns them in that order.

    Args:
        layers: layer names (see :data:`VGG19_LAYERS`), e.g. ``("conv5_4",)``.
        weights: torchvision's ``vgg19-dcbb9e9d.pth``; loaded strictly.
        random_init: with no ``weights``, use seeded random weights (tests, smoke runs).
        seed: the seed of ``random_init``.

    Only ``features`` up to the deepest requested layer is kept.
    """

    def __init__(
        self,
        *,
        layers: Sequence[str] = ("conv5_4",),
        weights: str | os.PathLike[str] | None = None,
        random_init: bool = False,
        seed: int = 0,
        who: str = "VGG19 features",
    ) -> None:
        super().__init__()
        self.layer_names = tuple(layers) if not isinstance(layers, str) else layers
        self.indices = resolve_vgg19_layers(layers, who)
        last = max(self.indices)
        if weights is not None and random_init:
            raise SrlabError(f"{who}: pass either feature_weights or random_init=True, not both")
        if weights is not None:
            self.features = nn.Sequential(*_vgg19_modules(len(VGG19_LAYERS) - 1))
            load_vgg19_weights(self, weights, who)
            self.features = self.features[: last + 1]
        elif random_init:
            self.features = nn.Sequential(*_vgg19_modules(last))
            _init_like_torchvision(self.features, seed)
        else:
            raise SrlabError(
                f"{who} needs VGG19 ImageNet weights: download torchvision's {VGG19_FILE} ({VGG19_URL}) "
                f"and pass its path as feature_weights=PATH"
            )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        _freeze(self)

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)  # always frozen: no dropout or batch norm to switch anyway

    def forward(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std
        found: dict[int, Tensor] = {}
        wanted = set(self.indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                found[i] = x
        return [found[i] for i in self.indices]


def load_vgg19_weights(model: VGG19Features, path: str | os.PathLike[str], who: str = "VGG19 features") -> None:
    """Load torchvision's VGG19 checkpoint into the full ``model.features`` strictly (``classifier.*`` dropped)."""
    path = Path(path)
    if not path.is_file():
        raise SrlabError(
            f"{who}: VGG19 weights not found at {path}: download torchvision's {VGG19_FILE} ({VGG19_URL}) "
            "and pass its path as feature_weights"
        )
    load_torchvision_state(model, path, "VGG19", VGG19_FILE)


#: RandomTanhFeatures layer names -> index
RANDOM_TANH_LAYERS = {"conv1_1": 0, "tanh1_1": 1, "conv1_2": 2}


class RandomTanhFeatures(nn.Module):
    """RLFN's contrastive-loss extractor: conv3x3(3->64) - Tanh - conv3x3(64->64), random and frozen.

    ``forward(x)`` returns the activations at ``layers`` (names in :data:`RANDOM_TANH_LAYERS`; default the
    output of the second convolution). Inputs are [0, 1] RGB, used as they are.
    """

    def __init__(self, *, layers: Sequence[str] = ("conv1_2",), channels: int = 64, seed: int = 0) -> None:
        super().__init__()
        if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
            raise SrlabError(f"contrastive: layers must be a non-empty list, e.g. ['conv1_2'], got {layers!r}")
        unknown = [name for name in layers if name not in RANDOM_TANH_LAYERS]
        if unknown:
            raise SrlabError(f"contrastive: unknown layer {unknown[0]!r}: use {', '.join(RANDOM_TANH_LAYERS)}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise SrlabError(f"contrastive: channels must be a positive integer, got {channels!r}")
        self.layer_names = tuple(layers)
        self.indices = tuple(RANDOM_TANH_LAYERS[name] for name in layers)
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1),
            nn.Tanh(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )
        _init_like_torchvision(self.features, seed)
        _freeze(self)

    def train(self, mode: bool = True) -> RandomTanhFeatures:
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        found: dict[int, Tensor] = {}
        last = max(self.indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.indices:
                found[i] = x
            if i == last:
                break
        return [found[i] for i in self.indices]
