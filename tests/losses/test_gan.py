"""Adversarial losses: formulas on fixed logits, the discriminators, and a few training steps."""

from __future__ import annotations

import math

import pytest
import torch

from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective
from srlab.losses.gan import GAN_TYPES, UNetDiscriminatorSN, VGGStyleDiscriminator, discriminator_loss, generator_loss

REAL = [1.0, -0.5, 2.0]
FAKE = [0.3, -1.2, 0.0]


def _mean(values):
    return sum(values) / len(values)


def _bce_one(x):  # -log sigmoid(x)
    return math.log1p(math.exp(-x))


def _bce_zero(x):  # -log(1 - sigmoid(x))
    return math.log1p(math.exp(x))


def _expected(gan_type):
    r, f = REAL, FAKE
    if gan_type == "vanilla":
        return _mean([_bce_one(x) for x in f]), 0.5 * (_mean([_bce_one(x) for x in r]) + _mean([_bce_zero(x) for x in f]))
    if gan_type == "lsgan":
        return _mean([(x - 1) ** 2 for x in f]), 0.5 * (_mean([(x - 1) ** 2 for x in r]) + _mean([x * x for x in f]))
    if gan_type == "hinge":
        return -_mean(f), 0.5 * (_mean([max(0.0, 1 - x) for x in r]) + _mean([max(0.0, 1 + x) for x in f]))
    mr, mf = _mean(r), _mean(f)
    g = 0.5 * (_mean([_bce_zero(x - mf) for x in r]) + _mean([_bce_one(x - mr) for x in f]))
    d = 0.5 * (_mean([_bce_one(x - mf) for x in r]) + _mean([_bce_zero(x - mr) for x in f]))
    return g, d


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_formulas_on_fixed_logits(gan_type):
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    g, d = _expected(gan_type)
    assert generator_loss(gan_type, fake, real).item() == pytest.approx(g, rel=1e-12)
    assert discriminator_loss(gan_type, real, fake).item() == pytest.approx(d, rel=1e-12)


@pytest.mark.parametrize("kind", ["vgg", "unet"])
@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_module_applies_the_formula_to_its_discriminator(kind, gan_type):
    torch.manual_seed(0)
    loss = build_objective("gan", params={"gan_type": gan_type, "discriminator": kind, "discriminator_channels": 4})
    loss.eval()  # batch norm / spectral norm deterministic between calls
    sr, hr = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    inputs = LossInputs(sr=sr, hr=hr, lr=hr[..., ::2, ::2], scale=2)
    with torch.no_grad():
        real, fake = loss.discriminator(hr), loss.discriminator(sr)
        assert loss(inputs).item() == pytest.approx(generator_loss(gan_type, fake, real).item(), rel=1e-5, abs=1e-7)
        assert loss.discriminator_loss(inputs).item() == pytest.approx(discriminator_loss(gan_type, real, fake).item(), rel=1e-5)


@pytest.mark.parametrize("size", [48, 64, 96])
def test_discriminators_accept_patch_sizes(size):
    x = torch.rand(2, 3, size, size)
    assert VGGStyleDiscriminator(channels=4)(x).shape == (2, 1)
    assert UNetDiscriminatorSN(channels=4)(x).shape == (2, 1, size, size)


def test_vgg_discriminator_is_esrgan_vgg128_at_128():
    d = VGGStyleDiscriminator(channels=64)
    assert d.body(torch.rand(2, 3, 128, 128)).shape == (2, 512, 4, 4)  # the pooling is the identity here
    assert d.head[0].in_features == 512 * 4 * 4 and d.head[0].out_features == 100
    convs = [m for m in d.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 5


def test_unet_discriminator_uses_spectral_norm():
    d = UNetDiscriminatorSN(channels=4)
    names = {name for name, _ in d.named_parameters()}
    assert {f"conv{i}.parametrizations.weight.original" for i in range(1, 9)} <= names
    assert "conv0.weight" in names and "conv9.weight" in names


def test_generator_step_leaves_the_discriminator_alone():
    loss = build_objective("gan", params={"discriminator_channels": 4})  # ragan, vgg (ESRGAN)
    sr = torch.rand(2, 3, 48, 48, requires_grad=True)
    loss(LossInputs(sr=sr, hr=torch.rand(2, 3, 48, 48), lr=torch.rand(2, 3, 24, 24), scale=2)).backward()
    assert sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.discriminator.parameters())


def test_discriminator_loss_detaches_sr():
    loss = build_objective("gan", params={"discriminator": "unet", "discriminator_channels": 4, "gan_type": "vanilla"})
    sr = torch.rand(2, 3, 32, 32, requires_grad=True)
    loss.discriminator_loss(LossInputs(sr=sr, hr=torch.rand(2, 3, 32, 32), lr=torch.rand(2, 3, 16, 16), scale=2)).backward()
    assert sr.grad is None
    assert all(p.grad is not None for p in loss.discriminator.parameters())


def _smooth(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(n, 3, size // 8, size // 8, generator=g), size=(size, size),
                                           mode="bilinear", align_corners=False)


@pytest.mark.parametrize("kind", ["vgg", "unet"])
@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_training_the_discriminator_lowers_its_loss(kind, gan_type):
    torch.manual_seed(0)
    loss = build_objective("gan", params={"gan_type": gan_type, "discriminator": kind, "discriminator_channels": 8})
    real = _smooth(4, 48, 1)
    fake = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    inputs = LossInputs(sr=fake, hr=real, lr=real[..., ::2, ::2], scale=2)
    optimizer = torch.optim.Adam(loss.discriminator.parameters(), lr=1e-3)
    values = []
    for _ in range(15):
        value = loss.discriminator_loss(inputs)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < 0.7 * values[0]


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_generator_steps_against_a_fixed_discriminator_lower_its_loss(gan_type):
    torch.manual_seed(0)
    loss = build_objective("gan", params={"gan_type": gan_type, "discriminator": "unet", "discriminator_channels": 8})
    real = _smooth(2, 32, 1)
    sr = torch.rand(2, 3, 32, 32, requires_grad=True)

    def inputs():
        return LossInputs(sr=sr, hr=real, lr=real[..., ::2, ::2], scale=2)

    d_optimizer = torch.optim.Adam(loss.discriminator.parameters(), lr=1e-3)
    for _ in range(10):  # a discriminator that tells the noise from the smooth images
        value = loss.discriminator_loss(inputs())
        d_optimizer.zero_grad()
        value.backward()
        d_optimizer.step()
    loss.eval()  # then fixed
    optimizer = torch.optim.Adam([sr], lr=2e-2)
    values = []
    for _ in range(15):
        value = loss(inputs())
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < values[0] - 0.15


def test_errors():
    with pytest.raises(SrlabError, match="gan_type must be one of vanilla, lsgan, ragan, hinge"):
        build_objective("gan", params={"gan_type": "wgan"})
    with pytest.raises(SrlabError, match="discriminator must be one of vgg, unet"):
        build_objective("gan", params={"discriminator": "patch"})
    with pytest.raises(SrlabError, match="at least 32x32"):
        VGGStyleDiscriminator(channels=4)(torch.rand(2, 3, 16, 16))
    with pytest.raises(SrlabError, match="divisible by 8"):
        UNetDiscriminatorSN(channels=4)(torch.rand(2, 3, 36, 36))
