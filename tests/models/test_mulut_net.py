"""MuLUT's network (``mulut_net``): the official checkpoint, the forward against a per-pixel reference, the
transfer to ``mulut`` tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import srlab
from conftest import OFFICIAL_WEIGHTS, needs_shared
from srlab.models.mulut_net import to_mulut
from srlab.models.registry import model_info
from srlab.models.sr_net import sampled_inputs

CHECKPOINT = OFFICIAL_WEIGHTS / "mulut" / "Model_200000.safetensors"

# Where each official first-layer weight w[:, 0, i, j] reads the patch (common/network.py: a 2x2
# convolution, a 2x2 one dilated by 2, a 1x4 one over the Y taps cat in a row), independent of srlab's fields.
_PATCH = {
    "s": {(0, 0): (0, 0), (0, 1): (0, 1), (1, 0): (1, 0), (1, 1): (1, 1)},
    "d": {(0, 0): (0, 0), (0, 1): (0, 2), (1, 0): (2, 0), (1, 1): (2, 2)},
    "y": {(0, 0): (0, 0), (0, 1): (1, 1), (0, 2): (1, 2), (0, 3): (2, 1)},
}
_PAD = {"s": 1, "d": 2, "y": 2}


def _unit(weights, key, patch):
    """One unit at one pixel, written out: first layer, four dense layers, tanh output (float64)."""
    w = {k: v.double().numpy() for k, v in weights.items() if k.startswith(key + ".")}
    first = w[f"{key}.model.conv1.conv.weight"]
    feats = np.maximum(sum(first[:, 0, i, j] * patch[p] for (i, j), p in _PATCH[key[-1]].items())
                       + w[f"{key}.model.conv1.conv.bias"], 0)
    for layer in (2, 3, 4, 5):
        wl, bl = w[f"{key}.model.conv{layer}.conv1.conv.weight"][:, :, 0, 0], w[f"{key}.model.conv{layer}.conv1.conv.bias"]
        feats = np.concatenate([feats, np.maximum(wl @ feats + bl, 0)])
    return np.tanh(w[f"{key}.model.conv6.conv.weight"][:, :, 0, 0] @ feats + w[f"{key}.model.conv6.conv.bias"])


def _reference(weights, plane, scale, modes, stages):
    """The training forward of ``sr/1_train_model.py`` on one plane, pixel by pixel in float64."""
    for stage in range(1, stages + 1):
        s = scale if stage == stages else 1
        total = np.zeros((plane.shape[0] * s, plane.shape[1] * s))
        for mode in modes:
            for r in range(4):
                rotated = np.rot90(plane, r)
                padded = np.pad(rotated, ((0, _PAD[mode]), (0, _PAD[mode])), mode="edge")
                out = np.zeros((rotated.shape[0] * s, rotated.shape[1] * s))
                for y in range(rotated.shape[0]):
                    for x in range(rotated.shape[1]):
                        patch = padded[y : y + 3, x : x + 3]
                        out[y * s : (y + 1) * s, x * s : (x + 1) * s] = _unit(weights, f"s{stage}_{mode}", patch).reshape(s, s)
                total += np.round(np.rot90(out, -r) * 127)
        if stage == stages:
            plane = np.round(total / len(modes)) / 255
        else:
            plane = np.round(np.clip(total / (4 * len(modes)) + 127, 0, 255)) / 255
    return plane


@pytest.mark.parametrize(("scale", "modes", "stages"), [(2, "sdy", 2), (3, "dy", 1)])
def test_the_forward_is_the_official_training_forward(scale, modes, stages):
    torch.manual_seed(0)
    net = srlab.create_model("mulut_net", scale=scale, args={"modes": modes, "stages": stages, "channels": 4})
    net = net.double().eval()
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        got = net(x)[0].numpy()
    weights = net.state_dict()
    for c in range(2):
        want = _reference(weights, x[0, c].numpy(), scale, modes, stages)
        assert np.array_equal(got[c], want)
    assert len(np.unique(got)) > 10  # the outputs vary: rounding and clamping have something to do


def test_the_rounding_is_straight_through_while_training():
    torch.manual_seed(0)
    net = srlab.create_model("mulut_net", scale=2, args={"channels": 4})
    x = torch.rand(1, 1, 6, 6)
    net(x).sum().backward()
    # every unit's first layer learns, the first stage's through the second stage's roundings
    assert all(block.model.conv1.conv.weight.grad.abs().sum() > 0 for _, block in net.blocks())


def test_the_tables_hold_the_units_at_the_lattice():
    # Each table row equals its unit run on an image whose field pixels are that row's sampled inputs,
    # through the block's own padding and tap gathering (not to_mulut's path).
    torch.manual_seed(0)
    net = srlab.create_model("mulut_net", scale=2, args={"channels": 8}).eval()
    lut = to_mulut(net)
    assert (lut.scale, lut.modes, lut.stages, lut.interval) == (2, "sdy", 2, 4)
    lattice = sampled_inputs(4, 17)
    rows = torch.randint(0, 17**4, (40,))
    for name, block in net.blocks():
        table = lut.luts[name]
        assert table.shape == (17**4, 4 if name.startswith("s2") else 1)
        for row in rows.tolist():
            image = torch.rand(1, 1, 3, 3)
            for (dy, dx), value in zip(block.field.taps, lattice[row]):
                image[0, 0, dy, dx] = value
            with torch.no_grad():
                out = block(image)[0, 0, : block.scale, : block.scale].reshape(-1)
            assert torch.equal(table[row], out.mul(127).round()), (name, row)
    assert lut.luts["s2_y"].abs().max() > 20 and len(lut.luts["s1_s"].unique()) > 10


@needs_shared(CHECKPOINT)
def test_the_official_checkpoint_loads_strictly_under_its_own_names():
    weights = load_file(CHECKPOINT)
    net = srlab.create_model("mulut_net", scale=4)
    assert set(net.state_dict()) == set(weights)
    net.load_state_dict(weights, strict=True)
    assert sum(p.numel() for p in net.parameters()) == 265_587  # paper-results.md: MuLUT-SDY x4 network



def test_the_hyper_parameters_are_read_from_a_state_dict():
    # What detection builds and then checks (srlab.models.detect; the released x4 file: test_detect.py).
    net = srlab.create_model("mulut_net", scale=3, args={"modes": "dy", "stages": 3, "channels": 8})
    args = model_info("mulut_net").args_from_weights(net.state_dict())
    assert args == {"modes": "dy", "stages": 3, "channels": 8}
    srlab.create_model("mulut_net", scale=3, args=args).load_state_dict(net.state_dict(), strict=True)
