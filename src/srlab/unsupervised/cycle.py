"""Weakly supervised SR from unpaired LR and HR images (study section 8): the networks and objectives.

The study's weakly supervised setting (CinCGAN, Yuan et al., CVPRW 2018; the cycle-in-cycle idea of
CycleGAN) learns LR -> HR without pairs: a generator G (any zoo network) maps the real LR image x to HR, a
degradation network F maps the real HR image y to LR, and

* the cycle content loss on the LR image, ``|F(G(x)) - x|_1`` (the study's cycle loss: the SR output,
  degraded again, must give back the input);
* pseudo pairs, the run's ``losses`` on ``(G(F(y)), y)``: once F degrades like the unknown D, G learns
  to invert it from HR images (as Bulat et al., ECCV 2018, learn the degradation first; CycleGAN's second
  cycle, with the run's pixel/perceptual objective);
* CinCGAN's identity term ``|G(bicubic(y)) - y|_1``, which keeps G an SR network from the first step;
* an adversarial term per domain: G(x) against real HR patches, F(y) against real LR patches, each with
  its own discriminator (srlab.losses.gan's U-Net discriminator and GAN formulations).

srlab's choices, not CinCGAN's (whose first cycle also learns a denoiser to a clean-LR domain and whose
networks are EDSR-sized): one cycle, G is the run's model, F is small -- MATLAB-bicubic downscaling plus a
learned residual computed at LR resolution from the space-to-depth HR patch and three maps of Gaussian
noise (so F can learn blur, signal-dependent colour noise and compression-like residue), bounded by a tanh
to +-0.25; its last convolution starts at zero, so F starts as the bicubic D. F is trained by the LR adversarial term and the
cycle term only: the pseudo pairs see F(y) detached, or G and F would collude towards degradations that
are easy to invert (F staying bicubic) instead of the target domain's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.data.resize import imresize
from srlab.losses.gan import build_discriminator, discriminator_loss, generator_loss


# F's residual is bounded to +-RESIDUAL_BOUND around bicubic(y): enough for blur and strong noise (3 sigma of
# 25/255 is 0.29... of a [0, 1] image at 0.25 clips only the rarest samples), and it keeps an adversarially
# trained F from drifting to images that wreck G (measured: unbounded, F diverged and G with it, 24 dB).
RESIDUAL_BOUND = 0.25
# Independent noise maps F can shape into colour noise (one map could only give noise equal in R, G and B).
NOISE_CHANNELS = 3


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class Degrader(nn.Module):
    """F: HR (N, 3, H, W) -> LR (N, 3, H/s, W/s) = bicubic(HR) + residual(space-to-depth HR, noise)."""

    def __init__(self, *, scale: int, channels: int = 32, blocks: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3 * scale * scale + NOISE_CHANNELS, channels, 3, padding=1)
        self.body = nn.Sequential(*(_ResidualBlock(channels) for _ in range(blocks)))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, hr: Tensor) -> Tensor:
        s = self.scale
        if hr.shape[-2] % s or hr.shape[-1] % s:
            raise ValueError(f"Degrader: HR sides {tuple(hr.shape[-2:])} must be multiples of the scale {s}")
        base = imresize(hr, scale=1 / s)
        noise = torch.randn(hr.shape[0], NOISE_CHANNELS, hr.shape[-2] // s, hr.shape[-1] // s, device=hr.device,
                            dtype=hr.dtype)
        features = F.leaky_relu(self.head(torch.cat([F.pixel_unshuffle(hr, s), noise], dim=1)), 0.2)
        return base + RESIDUAL_BOUND * torch.tanh(self.tail(self.body(features)))


def build_discriminators(channels: int) -> dict[str, nn.Module]:
    """One U-Net discriminator per domain: ``hr`` (G's outputs vs real HR), ``lr`` (F's outputs vs real LR)."""
    return {"hr": build_discriminator("unet", channels=channels), "lr": build_discriminator("unet", channels=channels)}


def adversarial_generator_loss(gan_type: str, discriminator: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    """The generator's loss for ``fake`` against ``real`` (the real logits only for ragan)."""
    return generator_loss(gan_type, discriminator(fake), discriminator(real) if gan_type == "ragan" else None)


def adversarial_discriminator_loss(gan_type: str, discriminator: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    return discriminator_loss(gan_type, discriminator(real), discriminator(fake.detach()))


def cycle_loss(degrader: nn.Module, sr: Tensor, lr: Tensor) -> Tensor:
    """The study's cycle content loss on the LR image: ``|F(G(x)) - x|_1``."""
    return (degrader(sr) - lr).abs().mean()
