"""ImageNet feature extractors for the learned metrics (LPIPS, DISTS), without torchvision.

AlexNet, VGG16 and SqueezeNet 1.1 are rebuilt here layer by layer with torchvision's module layout, so
their parameter names (``features.0.weight``, ``features.3.squeeze.weight``, ...) and shapes are
torchvision's: a torchvision checkpoint the user provides (``alexnet-owt-7be5be79.pth``,
``vgg16-397923af.pth``, ``squeezenet1_1-b8a52dc0.pth``) loads strictly with
:func:`load_torchvision_weights`. Only the convolutional ``features`` are built: the file's
``classifier.*`` entries are dropped, every other entry must match exactly.

:meth:`FeatureExtractor.taps` returns the activations after the given ``features`` indices, e.g.
the ReLU outputs LPIPS and DISTS compare.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import SrlabError

#: The checkpoint file names torchvision publishes, for error messages.
TORCHVISION_FILES = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "vgg16": "vgg16-397923af.pth",
    "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth",
}

ARCH_TITLES = {"alexnet": "AlexNet", "vgg16": "VGG16", "squeezenet1_1": "SqueezeNet 1.1"}


class Fire(nn.Module):
    """SqueezeNet's Fire module (torchvision names: squeeze, expand1x1, expand3x3)."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], dim=1)


class L2Pool(nn.Module):
    """DISTS' L2 pooling: sqrt(blur(x^2) + 1e-12), 3x3 Hann window (hanning(5)[1:-1]), stride 2, pad 1.

    The module has no parameters or buffers, so it adds no names to the state dict.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        a = torch.tensor([0.5, 1.0, 0.5], dtype=x.dtype, device=x.device)
        window = (a[:, None] * a[None, :] / 4).expand(self.channels, 1, 3, 3)  # sums to 1; exact in binary
        out = F.conv2d(x * x, window, stride=2, padding=1, groups=self.channels)
        return (out + 1e-12).sqrt()


class FeatureExtractor(nn.Module):
    """A ``features`` Sequential with torchvision's indices; ``arch`` names the torchvision model."""

    arch: str = ""
    features: nn.Sequential

    def taps(self, x: Tensor, indices: tuple[int, ...]) -> list[Tensor]:
        """The outputs of ``features[i]`` for each ``i`` in ``indices`` (increasing)."""
        outs: list[Tensor] = []
        last = max(indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in indices:
                outs.append(x)
            if i == last:
                break
        return outs


class AlexNetFeatures(FeatureExtractor):
    """torchvision ``alexnet().features`` (indices 0..12)."""

    arch = "alexnet"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16Features(FeatureExtractor):
    """torchvision ``vgg16().features`` (indices 0..30).

    ``pool="l2"`` replaces the max poolings at 4, 9, 16, 23 by :class:`L2Pool` (DISTS); the last one
    (30) is never reached by the metrics and stays a max pooling. Parameter names are unchanged.
    """

    arch = "vgg16"

    def __init__(self, pool: str = "max") -> None:
        super().__init__()
        if pool not in ("max", "l2"):
            raise SrlabError(f"VGG16Features: pool must be 'max' or 'l2', got {pool!r}")
        layers: list[nn.Module] = []
        channels = 3
        for v in _VGG16_CFG:
            if v == "M":
                last = len(layers) == 30
                layers.append(L2Pool(channels) if pool == "l2" and not last else nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU()]
                channels = int(v)
        self.features = nn.Sequential(*layers)


class SqueezeNet11Features(FeatureExtractor):
    """torchvision ``squeezenet1_1().features`` (indices 0..12)."""

    arch = "squeezenet1_1"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        )


def _load_state_dict_file(path: Path, what: str) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to replace
        raise SrlabError(f"{what}: cannot read {path} as a PyTorch state dict ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise SrlabError(f"{what}: {path} is not a state dict of tensors")
    return state


def load_torchvision_state(model: nn.Module, path: Path, title: str, expected_file: str) -> None:
    """Load a torchvision checkpoint into ``model`` strictly (``classifier.*`` dropped), explaining a mismatch."""
    state = _load_state_dict_file(path, f"{title} weights")
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        detail = "; ".join(
            part for part in (
                f"missing {missing[:4]}" if missing else "",
                f"unexpected {unexpected[:4]}" if unexpected else "",
                f"shape mismatch at {shapes[:4]}" if shapes else "",
            ) if part
        )
        raise SrlabError(f"{path} is not torchvision's {title} checkpoint ({detail}); pass torchvision's {expected_file}")
    model.load_state_dict(state, strict=True)


def load_torchvision_weights(model: FeatureExtractor, path: str | os.PathLike[str]) -> FeatureExtractor:
    """Load a torchvision checkpoint of ``model.arch`` into ``model`` strictly (``classifier.*`` dropped)."""
    path = Path(path)
    expected = TORCHVISION_FILES[model.arch]
    title = ARCH_TITLES[model.arch]
    if not path.is_file():
        raise SrlabError(f"{title} weights not found at {path}: pass the path of torchvision's {expected}")
    load_torchvision_state(model, path, title, expected)
    return model


def build_backbone(arch: str, weights: str | os.PathLike[str] | None, *, pool: str = "max") -> FeatureExtractor:
    """A frozen, eval-mode feature extractor loaded from a torchvision checkpoint ``weights``."""
    builders = {"alexnet": AlexNetFeatures, "vgg16": lambda: VGG16Features(pool=pool),
                "squeezenet1_1": SqueezeNet11Features}
    if arch not in builders:
        raise SrlabError(f"unknown backbone {arch!r}: choose one of {sorted(builders)}")
    model = builders[arch]()
    if weights is None:
        raise SrlabError(f"the {ARCH_TITLES[arch]} weights are missing: pass the path of torchvision's "
                         f"{TORCHVISION_FILES[arch]}")
    load_torchvision_weights(model, weights)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
