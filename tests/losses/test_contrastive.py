"""RLFN's contrastive loss: hand-computed ratio, the random frozen extractor, and a few steps."""

from __future__ import annotations

import math

import pytest
import torch

from srlab.data.resize import bicubic_downscale, bicubic_upscale
from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective
from srlab.losses.features import RandomTanhFeatures


def _identity_extractor(loss):
    """Make both convolutions identities (3 channels), so phi = conv(tanh(conv(x))) = tanh(x)."""
    with torch.no_grad():
        for i in (0, 2):
            conv = loss.extractor.features[i]
            torch.nn.init.dirac_(conv.weight)
            conv.bias.zero_()
    return loss


def test_hand_computed_ratio_with_constant_images():
    loss = _identity_extractor(build_objective("contrastive", params={"channels": 3}))
    sr = torch.full((1, 3, 8, 8), 0.2)
    hr = torch.full((1, 3, 8, 8), 0.5)
    lr = torch.zeros(1, 3, 4, 4)  # bicubic keeps a constant image constant: the negative is 0
    expected = abs(math.tanh(0.2) - math.tanh(0.5)) / (abs(math.tanh(0.2) - 0.0) + 1e-7)
    value = loss(LossInputs(sr=sr, hr=hr, lr=lr, scale=2))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert loss(LossInputs(sr=hr, hr=hr, lr=lr, scale=2)).item() == 0.0


def test_negative_is_the_bicubic_upscaled_lr():
    torch.manual_seed(0)
    loss = _identity_extractor(build_objective("contrastive", params={"channels": 3, "layers": ["tanh1_1", "conv1_2"],
                                                                      "layer_weights": [0.5, 1.0]}))
    hr, lr = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 4, 4)
    up = bicubic_upscale(lr, 3)
    sr = 0.5 * hr + 0.5 * up + 0.05 * torch.rand(2, 3, 12, 12)
    ratio = (sr.tanh() - hr.tanh()).abs().mean() / ((sr.tanh() - up.tanh()).abs().mean() + 1e-7)
    value = loss(LossInputs(sr=sr, hr=hr, lr=lr, scale=3))
    assert value.item() == pytest.approx(1.5 * ratio.item(), rel=1e-5)  # both taps give tanh(x)


def test_extractor_is_random_frozen_and_seeded():
    a, b, c = RandomTanhFeatures(), RandomTanhFeatures(), RandomTanhFeatures(seed=1)
    assert [type(m).__name__ for m in a.features] == ["Conv2d", "Tanh", "Conv2d"]
    assert a.features[0].weight.shape == (64, 3, 3, 3) and a.features[2].weight.shape == (64, 64, 3, 3)
    assert not any(p.requires_grad for p in a.parameters())
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(a(x)[0], b(x)[0])
    assert not torch.allclose(a(x)[0], c(x)[0])
    a.train()
    assert not a.training


def test_gradient_reaches_sr_only():
    loss = build_objective("contrastive", params={"channels": 8})
    sr = torch.rand(1, 3, 8, 8, requires_grad=True)
    loss(LossInputs(sr=sr, hr=torch.rand(1, 3, 8, 8), lr=torch.rand(1, 3, 4, 4), scale=2)).backward()
    assert sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_errors():
    loss = build_objective("contrastive", params={"channels": 4})
    with pytest.raises(SrlabError, match="crop HR to a multiple of the scale"):
        loss(LossInputs(sr=torch.rand(1, 3, 9, 9), hr=torch.rand(1, 3, 9, 9), lr=torch.rand(1, 3, 4, 4), scale=2))
    with pytest.raises(SrlabError, match="unknown layer 'conv2_1'"):
        build_objective("contrastive", params={"layers": ["conv2_1"]})
    with pytest.raises(SrlabError, match="layer_weights must be a list of 1"):
        build_objective("contrastive", params={"layer_weights": [1.0, 1.0]})


def test_adam_steps_on_a_learnable_image_reduce_it():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16, 16)
    lr = bicubic_downscale(hr, 2)
    sr = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss = build_objective("contrastive", params={"channels": 16})
    optimizer = torch.optim.Adam([sr], lr=1e-2)
    values = []
    for _ in range(30):
        value = loss(LossInputs(sr=sr, hr=hr, lr=lr, scale=2))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < 0.75 * values[0]
