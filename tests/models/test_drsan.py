"""DRSAN against facts recorded from its official TensorFlow code and checkpoints (saturnian77/DRSAN@8841874:
``model.py``, ``ops.py``, ``build.py``, the ``ckpt/x{2,3,4}/DRSAN_*/*.index`` files, ``figures/table.png``),
which srlab does not ship."""

import hashlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import srlab
from srlab.models import paper_parameter_count
from srlab.models.complexity import lr_size_for_720p, macs_720p
from srlab.models.detect import Detected, detect_model
from srlab.models.drsan import DRAG, DynamicResidualModule, tensorflow_variable_names
from srlab.models.registry import build_model, spec_of
from srlab.models.weights import Checkpoint

# Each official checkpoint's variable listing (the ``.index`` file's tensors under ``DRAN/``, optimizer
# slots and the global step left out): number of variables, elements, and sha256 (first 16 hex digits) of
# the sorted "name d0,d1,..." lines (TensorFlow shapes: kernels (kh, kw, in, out)).
OFFICIAL_LISTINGS = {
    ("drsan_32s", 2): (132, 368_427, "e18d4a45ed6698f4"),
    ("drsan_48s", 2): (108, 647_195, "367c1106e081ef11"),
    ("drsan_32m", 2): (256, 688_851, "450b561120be57b7"),
    ("drsan_32l", 2): (318, 849_063, "3f6127856df1b404"),
    ("drsan_48m", 2): (208, 1_187_827, "95e64087ace94e12"),
    ("drsan_32s", 3): (132, 414_667, "94205868488299bd"),
    ("drsan_48s", 3): (108, 751_115, "2e3282ba12b7dc71"),
    ("drsan_32m", 3): (256, 735_091, "ae03e57ff9d15e47"),
    ("drsan_48m", 3): (208, 1_291_747, "d7d9b4a7f673c2c0"),
    ("drsan_32s", 4): (134, 405_419, "65e48d937f8d0ed7"),
    ("drsan_48s", 4): (110, 730_331, "725ce55b14104e01"),
    ("drsan_32m", 4): (258, 725_843, "040f4febf13bac16"),
    ("drsan_48m", 4): (210, 1_270_963, "0789e7c702558d69"),
}

# The published table (figures/table.png; paper-results.md §8a): Multi-Adds in G, as printed.
PUBLISHED_MULTI_ADDS = {
    ("drsan_32s", 2): 85.5, ("drsan_48s", 2): 150.0, ("drsan_32m", 2): 159.3, ("drsan_32l", 2): 196.3,
    ("drsan_48m", 2): 274.6, ("drsan_32s", 3): 43.2, ("drsan_32m", 3): 76.0, ("drsan_48s", 3): 78.0,
    ("drsan_48m", 3): 133.4, ("drsan_32s", 4): 30.5, ("drsan_32m", 4): 49.0, ("drsan_48s", 4): 57.6,
    ("drsan_48m", 4): 88.7,
}
# srlab's count (every convolution's multiply-adds, 1280x720 output).
MACS_720P = {
    ("drsan_32s", 2): 84_897_792_000, ("drsan_48s", 2): 149_332_377_600, ("drsan_32m", 2): 158_183_424_000,
    ("drsan_32l", 2): 194_826_240_000, ("drsan_48m", 2): 273_283_891_200, ("drsan_32s", 3): 42_926_822_400,
    ("drsan_32m", 3): 75_523_660_800, ("drsan_48s", 3): 77_710_993_920, ("drsan_48m", 3): 132_843_594_240,
    ("drsan_32s", 4): 30_315_110_400, ("drsan_32m", 4): 48_636_518_400, ("drsan_48s", 4): 57_339_187_200,
    ("drsan_48m", 4): 88_327_065_600,
}


def _tensorflow_listing(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    names = tensorflow_variable_names(model)
    listing = {}
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        listing[names[name]] = (shape[2], shape[3], shape[1], shape[0]) if p.dim() == 4 else shape
    return listing


@pytest.mark.parametrize(("name", "scale"), list(OFFICIAL_LISTINGS))
def test_parameters_map_one_to_one_onto_the_official_checkpoint(name, scale):
    variables, elements, digest = OFFICIAL_LISTINGS[(name, scale)]
    model = srlab.create_model(name, scale=scale)
    listing = _tensorflow_listing(model)
    assert len(listing) == len(list(model.parameters())) == variables
    text = "\n".join(f"{k} {','.join(map(str, v))}" for k, v in sorted(listing.items()))
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == digest
    assert sum(math.prod(s) for s in listing.values()) == paper_parameter_count(model) == elements


def test_parameter_count_by_hand():
    """DRSAN-32s x2: head, 4 DRAGs (DRM 32->16->10 + PReLU 16; 4 units of 2 PReLUs + 2 3x3 convs; 1x1
    fusion 160->32), body_end, x2 upsampler conv, tail."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    drag = conv(32, 16, 1) + 16 + conv(16, 10, 1) + 4 * (2 * 32 + 2 * conv(32, 32, 3)) + conv(160, 32, 1)
    total = conv(3, 32, 3) + 4 * drag + conv(32, 32, 3) + conv(32, 128, 3) + conv(32, 3, 3)
    assert total == OFFICIAL_LISTINGS[("drsan_32s", 2)][1]


@pytest.mark.parametrize(("name", "scale"), list(MACS_720P))
def test_macs_sit_just_below_the_published_multi_adds(name, scale):
    macs = macs_720p(srlab.create_model(name, scale=scale))
    assert macs == MACS_720P[(name, scale)]
    published = PUBLISHED_MULTI_ADDS[(name, scale)] * 1e9
    assert 0.991 * published < macs < published  # 0.2 - 0.8 % below (module docstring)


@pytest.mark.xfail(strict=True, reason="the table counts 0.2-0.8 % more than the convolutions; convention unknown")
def test_macs_round_to_the_published_multi_adds():
    assert all(round(MACS_720P[k] / 1e9, 1) == v for k, v in PUBLISHED_MULTI_ADDS.items())


def test_one_operation_per_bias_and_prelu_element_fits_11_of_13_figures():
    """The closest convention found (module docstring): it leaves 32l x2 (196.22) and 32m x4 (48.95) off."""
    fits = {}
    for (name, scale), published in PUBLISHED_MULTI_ADDS.items():
        elements = []
        with torch.device("meta"):
            model = build_model(name, scale=scale)
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.PReLU)):
                module.register_forward_hook(lambda m, i, out: elements.append(out.numel()))
        with torch.no_grad():
            model(torch.empty(1, 3, *lr_size_for_720p(scale), device="meta"))
        fits[(name, scale)] = round((MACS_720P[(name, scale)] + sum(elements)) / 1e9, 1) == published
    assert {k for k, fit in fits.items() if not fit} == {("drsan_32l", 2), ("drsan_32m", 4)}


def _official_drag(x, drag):
    """The official DRSAN32 block, written out as model.py does (four units, ten DRA weights)."""
    prelu = lambda t, m: F.relu(t) + m.weight.view(1, -1, 1, 1) * (t - t.abs()) * 0.5  # noqa: E731
    drm = drag.drm
    att = drm.expand(prelu(drm.reduce(x), drm.act)).mean(dim=(2, 3), keepdim=True)
    a = [att[:, i : i + 1] for i in range(10)]

    def unit(t, u):
        return u.conv2(prelu(u.conv1(prelu(t, u.act1)), u.act2))

    c0 = x
    r = unit(c0, drag.units[0])
    c1 = (r + c0 * a[0]) * torch.sigmoid(r)
    r = unit(c1, drag.units[1])
    c2 = (r + (c0 * a[1] + c1 * a[2])) * torch.sigmoid(r)
    r = unit(c2, drag.units[2])
    c3 = (r + (c0 * a[3] + c1 * a[4] + c2 * a[5])) * torch.sigmoid(r)
    r = unit(c3, drag.units[3])
    c4 = (r + (c0 * a[6] + c1 * a[7] + c2 * a[8] + c3 * a[9])) * torch.sigmoid(r)
    return drag.fusion(torch.cat([c0, c1, c2, c3, c4], dim=1))


def test_drag_computes_the_official_block():
    torch.manual_seed(0)
    drag = DRAG(32, 4).double()
    with torch.no_grad():
        for p in drag.parameters():
            p.add_(0.1 * torch.randn_like(p))  # PReLU slopes away from their zero start
        x = torch.randn(2, 32, 9, 13, dtype=torch.float64)
        assert (drag(x) - _official_drag(x, drag)).abs().max() < 1e-12


def test_dra_weights_are_per_image_and_unnormalised():
    torch.manual_seed(0)
    drm = DynamicResidualModule(32, 10)
    x = torch.randn(3, 32, 8, 8)
    with torch.no_grad():
        weights = drm(x)
        assert weights.shape == (3, 10, 1, 1)
        assert torch.allclose(weights[1:2], drm(x[1:2]), atol=1e-6)
        assert not torch.allclose(weights.sum(dim=1), torch.ones(3, 1, 1))


@pytest.mark.parametrize("name", ["drsan_32s", "drsan_48s"])
def test_receptive_radius_is_the_convolutions_reach(name, monkeypatch):
    """With the DRA held fixed (it is a mean over the whole image), an output pixel's gradient reaches
    1 + 2GU + 2 LR pixels at x2 (head, units, body_end, upsampler; the HR tail adds half a pixel)."""
    def fixed(self, x):
        return torch.full((x.shape[0], self.expand.out_channels, 1, 1), 0.3, dtype=x.dtype)

    monkeypatch.setattr(DynamicResidualModule, "forward", fixed)
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=2).double()
    info = spec_of(model).info
    size = 2 * info.receptive_radius + 9
    center = size // 2
    x = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    model(x)[0, :, 2 * center, 2 * center].sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    reach = max(center - rows.min().item(), rows.max().item() - center)
    assert info.receptive_radius - 1 <= reach <= info.receptive_radius


@pytest.mark.parametrize(("name", "args"), [("drsan_48s", {"channels": 40}), ("drsan_32l", {"units": 3})])
def test_hyper_parameters_are_read_from_the_weights(name, args):
    with torch.device("meta"):
        model = build_model(name, scale=3, args=args)
    checkpoint = Checkpoint(model.state_dict(), None, None, {}, Path("weights.pth"))
    assert detect_model(checkpoint) == Detected(name, 3, args, "train")
