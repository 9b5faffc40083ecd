"""Adversarial loss (study section 3.2) with the discriminator it trains.

Discriminators (raw logits out):

* ``"vgg"``: ESRGAN's VGG-style ``VGG128`` discriminator: ten convolutions (3x3 stride 1 and 4x4
  stride 2 in turn, widths c, c, 2c, 2c, 4c, 4c, 8c, 8c, 8c, 8c; batch norm after all but the first;
  LeakyReLU 0.2), then Linear(8c*4*4, 100) - LeakyReLU - Linear(100, 1). Adapted to any patch of
  side >= 32 by an adaptive average pooling to 4x4 before the head (the identity for 128 patches,
  where it is ESRGAN's network). One logit per image. Batch norm needs more than one value per
  channel: batch >= 2 for patches under 64.
* ``"unet"``: Real-ESRGAN's U-Net discriminator with spectral normalisation (three 4x4 stride-2
  downsamplings, bilinear upsampling with skip additions, two more convolutions, a 1-channel 3x3
  head): one logit per pixel. Any patch side divisible by 8.

Losses, with r = D(hr), f = D(sr) the logits and BCE(x, t) the binary cross entropy of logits,
all means over the logits:

* vanilla:  G = BCE(f, 1);                    D = (BCE(r, 1) + BCE(f, 0)) / 2
* lsgan:    G = mean((f - 1)^2);              D = (mean((r - 1)^2) + mean(f^2)) / 2
* ragan (ESRGAN's relativistic average GAN):
            G = (BCE(r - mean f, 0) + BCE(f - mean r, 1)) / 2
            D = (BCE(r - mean f, 1) + BCE(f - mean r, 0)) / 2
* hinge:    G = -mean(f);                     D = (mean(relu(1 - r)) + mean(relu(1 + f))) / 2

G is ``forward`` (the generator's loss), D is ``discriminator_loss`` (computed on ``sr.detach()``).

The generator's loss sends gradients to ``sr`` only: the discriminator runs with detached parameters
(``torch.func.functional_call``), so the discriminator's ``.grad`` stays untouched by the generator step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from srlab.errors import SrlabError
from srlab.losses.base import LossInputs, Objective, check_pair, register_loss

GAN_TYPES = ("vanilla", "lsgan", "ragan", "hinge")
DISCRIMINATORS = ("vgg", "unet")


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's VGG128 discriminator for any patch side >= 32 (see the module docstring)."""

    def __init__(self, *, channels: int = 64) -> None:
        super().__init__()
        c = channels
        widths = (c, c, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c, 8 * c, 8 * c, 8 * c)
        layers: list[nn.Module] = []
        previous = 3
        for i, width in enumerate(widths):
            stride_two = i % 2 == 1
            conv = nn.Conv2d(previous, width, kernel_size=4 if stride_two else 3, stride=2 if stride_two else 1,
                             padding=1, bias=i == 0)
            layers.append(conv)
            if i > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2))
            previous = width
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Sequential(nn.Linear(8 * c * 4 * 4, 100), nn.LeakyReLU(0.2), nn.Linear(100, 1))

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < 32:
            raise SrlabError(
                f"the VGG-style discriminator needs patches of at least 32x32, got {tuple(x.shape[-2:])}"
            )
        return self.head(self.pool(self.body(x)).flatten(1))


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm: (N, 3, H, W) -> (N, 1, H, W) logits."""

    def __init__(self, *, channels: int = 64) -> None:
        super().__init__()
        c = channels
        self.conv0 = nn.Conv2d(3, c, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(2 * c, 4 * c, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(4 * c, 8 * c, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(8 * c, 4 * c, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(4 * c, 2 * c, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(2 * c, c, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise SrlabError(f"the U-Net discriminator needs patch sides divisible by 8, got {tuple(x.shape[-2:])}")
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        up = lambda t, like: F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        x4 = act(self.conv4(up(x3, x2))) + x2
        x5 = act(self.conv5(up(x4, x1))) + x1
        x6 = act(self.conv6(up(x5, x0))) + x0
        out = act(self.conv8(act(self.conv7(x6))))
        return self.conv9(out)


def build_discriminator(kind: str, *, channels: int = 64) -> nn.Module:
    if kind not in DISCRIMINATORS:
        raise SrlabError(f"gan: discriminator must be one of {', '.join(DISCRIMINATORS)}, got {kind!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise SrlabError(f"gan: discriminator_channels must be a positive integer, got {channels!r}")
    return VGGStyleDiscriminator(channels=channels) if kind == "vgg" else UNetDiscriminatorSN(channels=channels)


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def generator_loss(gan_type: str, fake: Tensor, real: Tensor | None) -> Tensor:
    """The generator's loss from the logits of sr (``fake``) and, for ragan, of hr (``real``)."""
    if gan_type == "vanilla":
        return _bce(fake, 1.0)
    if gan_type == "lsgan":
        return (fake - 1.0).square().mean()
    if gan_type == "hinge":
        return -fake.mean()
    assert real is not None
    return 0.5 * (_bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0))


def discriminator_loss(gan_type: str, real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's loss from the logits of hr (``real``) and sr (``fake``)."""
    if gan_type == "vanilla":
        return 0.5 * (_bce(real, 1.0) + _bce(fake, 0.0))
    if gan_type == "lsgan":
        return 0.5 * ((real - 1.0).square().mean() + fake.square().mean())
    if gan_type == "hinge":
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    return 0.5 * (_bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0))


@register_loss("gan")
class GANLoss(Objective):
    """Adversarial loss owning its ``discriminator``; ``forward`` = generator loss (see the module docstring)."""

    adversarial = True

    def __init__(self, *, gan_type: str = "ragan", discriminator: str = "vgg", discriminator_channels: int = 64) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise SrlabError(f"gan: gan_type must be one of {', '.join(GAN_TYPES)}, got {gan_type!r}")
        self.gan_type = gan_type
        self.kind = discriminator
        self.discriminator = build_discriminator(discriminator, channels=discriminator_channels)

    def _frozen_call(self, x: Tensor) -> Tensor:
        params = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        return torch.func.functional_call(self.discriminator, params, (x,))

    def forward(self, inputs: LossInputs) -> Tensor:
        check_pair(inputs, "gan")
        fake = self._frozen_call(inputs.sr)
        real = None
        if self.gan_type == "ragan":
            with torch.no_grad():
                real = self.discriminator(inputs.hr)
        return generator_loss(self.gan_type, fake, real)

    def discriminator_loss(self, inputs: LossInputs) -> Tensor:
        check_pair(inputs, "gan")
        real = self.discriminator(inputs.hr)
        fake = self.discriminator(inputs.sr.detach())
        return discriminator_loss(self.gan_type, real, fake)

    def extra_repr(self) -> str:
        return f"gan_type={self.gan_type!r}, discriminator={self.kind!r}"
