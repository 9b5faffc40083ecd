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
networks are EDSR-sized): one cycle, G is the run's model, and F is one of two small degraders. The
``network`` F (``unpaired.degrader: network``) is MATLAB-bicubic downscaling plus a
learned residual computed at LR resolution from the space-to-depth HR patch and three maps of Gaussian
noise (so F can learn blur, signal-dependent colour noise and compression-like residue), bounded by a tanh
to +-0.25; its last convolution starts at zero, so F starts as the bicubic D. F is trained by the LR adversarial term and the
cycle term only: the pseudo pairs see F(y) detached, or G and F would collude towards degradations that
are easy to invert (F staying bicubic) instead of the target domain's.

The ``classical`` F (the default) is the study's classical degradation model,
``x = (y * k) downscaled + n`` (:class:`ClassicalDegrader`): an anisotropic Gaussian kernel k (two standard
deviations and an angle), MATLAB bicubic downscaling and Gaussian noise n with one standard deviation per
channel, six numbers learned by the LR adversarial term alone (the blind-SR assumption of a kernel plus
noise, whose parameters the unpaired LR images then estimate, as KernelGAN estimates a kernel from one
image). The cycle term runs it without noise and with its parameters held (a noise it cannot redraw would
pull its noise level to zero, and the cycle would fit the kernel to G's current output rather than to the
domain). By default the LR discriminator sees the high frequencies of F(y) and x only (:func:`high_pass`).
Measured (bench/unpaired_demo.py, README "Unpaired"): seen whole, neither F learned the target domain's
noise in 600 iterations; the classical F seen through the high pass learned it (0.032-0.039 for 0.039), its
blur not.
"""

from __future__ import annotations

import math

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

    def cycle(self, sr: Tensor) -> Tensor:
        """F as the cycle term applies it: as it is, noise maps and all (trained by that term too)."""
        return self(sr)


class ClassicalDegrader(nn.Module):
    """F: HR (N, 3, H, W) -> LR = MATLAB-bicubic downscaling of (HR blurred by an anisotropic Gaussian) + noise.

    Starts near the bicubic D (kernel deviations 0.3 HR pixels, noise 1/1000). Its parameters are stored
    divided by ``RATE``: the optimiser's steps (Adam's, about the learning rate in size whatever the
    gradient) then move the log-deviations ``RATE`` times as fast as the networks' weights, so F settles
    within a few hundred iterations at the networks' learning rate.
    """

    RATE = 20.0

    def __init__(self, *, scale: int, radius: int = 10) -> None:
        super().__init__()
        self.scale, self.radius = scale, radius
        self.log_blur = nn.Parameter(torch.full((2,), math.log(0.3) / self.RATE))  # log HR pixels, / RATE
        self.angle = nn.Parameter(torch.zeros(()))  # radians, / RATE
        self.log_noise = nn.Parameter(torch.full((3,), math.log(1e-3) / self.RATE))  # per channel, / RATE

    def blur_sigmas(self) -> Tensor:
        return torch.exp(self.RATE * self.log_blur)

    def noise_sigmas(self) -> Tensor:
        return torch.exp(self.RATE * self.log_noise)

    def kernel(self) -> Tensor:
        """(2r+1, 2r+1), non-negative, summing to 1."""
        t = torch.arange(-self.radius, self.radius + 1, dtype=self.log_blur.dtype, device=self.log_blur.device)
        v, u = torch.meshgrid(t, t, indexing="ij")
        theta = self.RATE * self.angle
        along, across = u * torch.cos(theta) + v * torch.sin(theta), -u * torch.sin(theta) + v * torch.cos(theta)
        sigma = self.blur_sigmas()
        logits = -0.5 * ((along / sigma[0]) ** 2 + (across / sigma[1]) ** 2)
        return torch.softmax(logits.flatten(), dim=0).view_as(logits)

    def forward(self, hr: Tensor, *, noise: bool = True, hold: bool = False) -> Tensor:
        """``noise=False``: the deterministic part; ``hold=True``: no gradient to F's parameters."""
        kernel, sigmas = self.kernel(), self.noise_sigmas()
        if hold:
            kernel, sigmas = kernel.detach(), sigmas.detach()
        r, channels = self.radius, hr.shape[1]
        weight = kernel.to(hr.dtype).expand(channels, 1, -1, -1)
        blurred = F.conv2d(F.pad(hr, (r, r, r, r), mode="replicate"), weight, groups=channels)
        lr = imresize(blurred, scale=1 / self.scale)
        if noise:
            lr = lr + sigmas.to(hr.dtype).view(1, -1, 1, 1) * torch.randn_like(lr)
        return lr

    def cycle(self, sr: Tensor) -> Tensor:
        """F as the cycle term applies it: no noise, parameters held (module docstring)."""
        return self(sr, noise=False, hold=True)


DEGRADERS = ("network", "classical")  # unpaired.degrader


def build_degrader(name: str, *, scale: int, channels: int, blocks: int) -> nn.Module:
    """``unpaired.degrader``: ``network`` (:class:`Degrader`, ``channels`` x ``blocks``) or ``classical``."""
    if name == "classical":
        return ClassicalDegrader(scale=scale)
    return Degrader(scale=scale, channels=channels, blocks=blocks)


LR_DISCRIMINATOR_INPUTS = ("image", "high_pass")  # unpaired.lr_discriminator_input


def high_pass(x: Tensor) -> Tensor:
    """``x`` minus its 5x5 box average (edges replicated): what the LR discriminator sees with
    ``unpaired.lr_discriminator_input: high_pass``, the frequency separation of Fritsche, Gu and Timofte
    (ICCVW 2019): unpaired LR and HR photos differ in content and colour, which F cannot and should not
    match; their high frequencies carry the noise and blur F has to learn."""
    return x - F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)


def build_discriminators(channels: int) -> dict[str, nn.Module]:
    """One U-Net discriminator per domain: ``hr`` (G's outputs vs real HR), ``lr`` (F's outputs vs real LR)."""
    return {"hr": build_discriminator("unet", channels=channels), "lr": build_discriminator("unet", channels=channels)}


def adversarial_generator_loss(gan_type: str, discriminator: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    """The generator's loss for ``fake`` against ``real`` (the real logits only for ragan)."""
    return generator_loss(gan_type, discriminator(fake), discriminator(real) if gan_type == "ragan" else None)


def adversarial_discriminator_loss(gan_type: str, discriminator: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    return discriminator_loss(gan_type, discriminator(real), discriminator(fake.detach()))


def cycle_loss(degrader: Degrader | ClassicalDegrader, sr: Tensor, lr: Tensor) -> Tensor:
    """The study's cycle content loss on the LR image: ``|F(G(x)) - x|_1``, F in its ``cycle`` form."""
    return (degrader.cycle(sr) - lr).abs().mean()
