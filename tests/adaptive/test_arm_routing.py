"""ARM through the adaptive engine: the official routing and merge, on the released supernets."""

import numpy as np
import pytest
import torch

from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared
from srlab.adaptive import adaptive_upscale, build_adaptive
from srlab.data.io import read_rgb
from srlab.errors import SrlabError
from srlab.models.arm_lookup import arm_upscale_patches
from srlab.models.create import create_model

ARM = OFFICIAL_WEIGHTS / "arm"
BUTTERFLY = BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png"
pytestmark = needs_shared(ARM, BUTTERFLY)


def _method(name: str, knob: float):
    checkpoint = ARM / f"arm-{name}.pth"
    return build_adaptive("arm", create_model(f"arm_{name}", scale=4, checkpoint=checkpoint), checkpoint=checkpoint, knob=knob)


@pytest.mark.parametrize(("name", "knob"), [("fsrcnn", 0.5), ("fsrcnn", 4.0), ("carn", 1.0), ("carn", 32.0)])
def test_the_engine_routes_and_merges_as_the_official_loop(name: str, knob: float) -> None:
    method = _method(name, knob)
    lr = read_rgb(BUTTERFLY)
    with torch.no_grad():
        sr, stats = adaptive_upscale(method, lr[None])
    reference = arm_upscale_patches(method.routes[-1].supernet, method.table, lr, knob * float(method.table.cost[-1]))
    assert stats.route_counts == tuple(np.bincount(reference.subnets, minlength=method.num_routes))
    assert sr.shape[-2:] == reference.sr.shape[-2:]
    assert (sr[0] * 255 - reference.sr).abs().max() <= 1e-3  # float32 rounding of level / 255


def test_the_knob_trades_macs() -> None:
    lr = read_rgb(BUTTERFLY)[None]
    spent = []
    for knob in (0.01, 0.5, 4.0, 1000.0):
        with torch.no_grad():
            _, stats = adaptive_upscale(_method("fsrcnn", knob), lr)
        spent.append(stats.macs_spent)
        assert stats.macs_spent <= stats.macs_full
    assert spent == sorted(spent) and spent[0] < spent[-1]


def test_a_knob_out_of_range_is_one_line() -> None:
    with pytest.raises(SrlabError, match=r"eta of adaptive method ArmRouting must be a number in \[0.001, 1000.0\]"):
        _method("fsrcnn", 0.0)
