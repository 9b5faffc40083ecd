"""The study's isotropic total variation (section 3.2.1) on hand-computed images."""

from __future__ import annotations

import pytest
import torch

from srlab.losses import LossInputs, build_objective
from srlab.losses.tv import total_variation


def _tv(sr: torch.Tensor) -> float:
    return build_objective("tv")(LossInputs(sr=sr, hr=sr, lr=sr, scale=1)).item()


def test_isotropic_2x2_hand_computed():
    # Only pixel (0, 0) has both neighbours: sqrt((4 - 0)^2 + (3 - 0)^2) = 5; N_y = 1 * 2 * 2.
    y = torch.tensor([[[[0.0, 3.0], [4.0, 0.0]]]])
    assert _tv(y) == pytest.approx(5 / 4)  # anisotropic TV would give 7 / 4


def test_ramp_3x3_hand_computed():
    # Horizontal ramp: right differences 1, down differences 0, at the 2 x 2 inner positions; N_y = 9.
    y = torch.tensor([[0.0, 1.0, 2.0]] * 3).view(1, 1, 3, 3)
    assert _tv(y) == pytest.approx(4 / 9)


def test_channels_count_in_n_and_batch_is_averaged():
    a = torch.tensor([[[0.0, 3.0], [4.0, 0.0]]]).expand(3, 2, 2)  # per channel 5, so 15 / 12
    b = torch.zeros(3, 2, 2)
    assert total_variation(a[None]).item() == pytest.approx(15 / 12)
    assert total_variation(torch.stack([a, b])).item() == pytest.approx(15 / 24)


def test_flat_image_has_zero_value_and_finite_gradient():
    y = torch.full((1, 3, 5, 5), 0.3, requires_grad=True)
    value = total_variation(y)
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() == 0


def test_adam_smooths_a_noisy_image():
    torch.manual_seed(0)
    y = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss = build_objective("tv")
    optimizer = torch.optim.Adam([y], lr=1e-2)
    values = []
    for _ in range(30):
        value = loss(LossInputs(sr=y, hr=y.detach(), lr=y.detach(), scale=1))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < 0.5 * values[0]
