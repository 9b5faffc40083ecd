"""UDL (Ning et al., NeurIPS 2021): both stages on hand-computed cases, and a few training steps."""

from __future__ import annotations

import math

import pytest
import torch

from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective


def _inputs(sr, hr, s) -> LossInputs:
    return LossInputs(sr=sr, hr=hr, lr=hr[..., ::2, ::2], scale=2, uncertainty=s)


def test_estimate_stage_hand_computed():
    sr = torch.tensor([[[[0.0, 1.0]]]])
    hr = torch.tensor([[[[0.5, 0.5]]]])
    s = torch.tensor([[[[0.0, math.log(2.0)]]]])
    # pixel 1: exp(0) * 0.5 + 2 * 0 = 0.5; pixel 2: exp(-ln 2) * 0.5 + 2 ln 2 = 0.25 + 1.386294...
    expected = (0.5 + 0.25 + 2 * math.log(2.0)) / 2
    assert build_objective("udl")(_inputs(sr, hr, s)).item() == pytest.approx(expected, rel=1e-6)


def test_estimate_stage_broadcasts_one_map_over_rgb():
    sr = torch.zeros(1, 3, 1, 2)
    hr = torch.full((1, 3, 1, 2), 0.5)
    s = torch.tensor([[[[0.0, math.log(2.0)]]]])
    expected = (0.5 + 0.25 + 2 * math.log(2.0)) / 2  # every channel has the same error
    assert build_objective("udl", params={"stage": "estimate"})(_inputs(sr, hr, s)).item() == pytest.approx(expected, rel=1e-6)


def test_estimate_stage_minimiser_is_log_half_error():
    """For a fixed error e, exp(-s) e + 2 s is smallest at s = ln(e / 2)."""
    sr, hr = torch.zeros(1, 1, 1, 2), torch.tensor([[[[0.4, 0.1]]]])
    s = torch.zeros(1, 1, 1, 2, requires_grad=True)
    optimizer = torch.optim.Adam([s], lr=0.05)
    loss = build_objective("udl")
    first = loss(_inputs(sr, hr, s)).item()
    for _ in range(300):
        value = loss(_inputs(sr, hr, s))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert value.item() < first
    torch.testing.assert_close(s.detach(), torch.log(hr / 2), atol=2e-2, rtol=0)


def test_weighted_stage_hand_computed():
    sr = torch.tensor([[[[0.0, 0.0]]], [[[0.0, 0.0]]]])
    hr = torch.tensor([[[[0.5, 0.25]]], [[[1.0, 0.5]]]])
    s = torch.tensor([[[[1.0, 3.0]]], [[[-2.0, -1.5]]]])
    # image 1: s_hat = (0, 2), weighted errors (0, 0.5); image 2: s_hat = (0, 0.5), weighted errors (0, 0.25)
    expected = (0 + 0.5 + 0 + 0.25) / 4
    assert build_objective("udl", params={"stage": "weighted"})(_inputs(sr, hr, s)).item() == pytest.approx(expected)


def test_weighted_stage_does_not_train_the_uncertainty():
    sr = torch.rand(1, 3, 4, 4, requires_grad=True)
    s = torch.randn(1, 1, 4, 4, requires_grad=True)
    build_objective("udl", params={"stage": "weighted"})(_inputs(sr, torch.rand(1, 3, 4, 4), s)).backward()
    assert s.grad is None
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_weighted_stage_favours_uncertain_pixels():
    """Equal errors: the pixel with the larger uncertainty gets the larger gradient."""
    sr = torch.zeros(1, 1, 1, 3, requires_grad=True)
    hr = torch.full((1, 1, 1, 3), 0.5)
    s = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    build_objective("udl", params={"stage": "weighted"})(_inputs(sr, hr, s)).backward()
    g = sr.grad.abs().flatten()
    assert g[0] == 0 and 0 < g[1] < g[2]


def test_errors():
    with pytest.raises(SrlabError, match="uncertainty map"):
        build_objective("udl")(_inputs(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), None))
    with pytest.raises(SrlabError, match=r"\(N, 1, H, W\)"):
        build_objective("udl")(_inputs(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 2, 2)))
    with pytest.raises(SrlabError, match="stage must be one of estimate, weighted"):
        build_objective("udl", params={"stage": "2"})


def test_two_stages_train_a_tiny_model():
    """Stage 1 trains an SR head and an uncertainty head; stage 2 trains the SR head with s frozen."""
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16, 16)
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.PixelShuffle(2))  # 3 sr + 1 s channels

    def run(loss, params, frozen_s=None, steps=40):
        optimizer = torch.optim.Adam(params, lr=1e-2)
        values = []
        for _ in range(steps):
            out = model(lr)
            s = out[:, 3:] if frozen_s is None else frozen_s
            value = loss(LossInputs(sr=out[:, :3], hr=hr, lr=lr, scale=2, uncertainty=s))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            values.append(value.item())
        return values

    stage1 = run(build_objective("udl"), model.parameters())
    assert stage1[-1] < stage1[0] - 0.1
    with torch.no_grad():
        frozen = model(lr)[:, 3:].clone()
    stage2 = run(build_objective("udl", params={"stage": "weighted"}), model.parameters(), frozen)
    assert stage2[-1] < 0.9 * stage2[0]
