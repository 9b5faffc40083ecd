"""CARN / CARN-M (Ahn et al., ECCV 2018): parameters, Mult-Adds, official keys, multi-scale forward and
the released multi-scale CARN-M weights."""

import functools

import pytest
import torch

import srlab
import srlab.models.carn  # noqa: F401  (registers the models)
from srlab.data.datasets import discover_pairs
from srlab.inference.evaluate import evaluate_folder
from srlab.layers.mean_shift import DIV2K_RGB_MEAN
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.weights import save_weights
from srlab.models.complexity import macs_720p
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts

CARN_M_WEIGHTS = OFFICIAL_WEIGHTS / "carn" / "carn_m.pth"

VARIANTS = ("carn", "carn_m")
SCALES = (2, 3, 4)

# One multi-scale network per variant (three upsampling branches), so the count is the same at every
# scale. Trainable = paper convention (the 24 frozen MeanShift values are not counted); "all" equals the
# official arch / released checkpoint (paper-results.md §2).
TRAINABLE = {"carn": 1_591_939, "carn_m": 414_787}
ALL = {"carn": 1_591_963, "carn_m": 414_811}
PAPER_PARAMS_K = {"carn": 1592, "carn_m": 412}

# Paper (camera-ready table) Mult-Adds at 1280x720 output, in G.
PAPER_MACS_G = {
    ("carn", 2): 222.8, ("carn", 3): 118.8, ("carn", 4): 90.9,
    ("carn_m", 2): 91.2, ("carn_m", 3): 46.1, ("carn_m", 4): 32.5,
}


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("scale", SCALES)
def test_parameter_count(name, scale):
    model = srlab.create_model(name, scale=scale)
    assert paper_parameter_count(model) == count_parameters(model, trainable_only=True) == TRAINABLE[name]
    assert count_parameters(model) == ALL[name]


def test_carn_parameter_count_matches_the_paper():
    assert round(paper_parameter_count(srlab.create_model("carn", scale=4)) / 1000) == PAPER_PARAMS_K["carn"]


@pytest.mark.xfail(
    strict=True,
    reason="paper says 412K for CARN-M; the released multi-scale network (= its checkpoint) has 414,787 "
    "trainable parameters (414.8K, +2.8K). The 412K was carried over unchanged from the pre-camera-ready "
    "table, where CARN-M had 1x1 upsampling convs (that model, also released earlier, has 307,267) — "
    "it matches neither network; see the carn module docstring.",
)
def test_carn_m_parameter_count_matches_the_paper():
    n = paper_parameter_count(srlab.create_model("carn_m", scale=4))
    assert round(n / 1000) == PAPER_PARAMS_K["carn_m"]


def test_parameter_count_by_hand():
    conv = lambda cin, cout, k, g=1: cin // g * cout * k * k + cout  # noqa: E731
    c = 64
    fusions = conv(2 * c, c, 1) + conv(3 * c, c, 1) + conv(4 * c, c, 1)
    carn_block = 3 * 2 * conv(c, c, 3) + fusions
    carn_m_block = 2 * conv(c, c, 3, 4) + conv(c, c, 1) + fusions  # one shared residual-E unit
    ups = lambda g: conv(c, 4 * c, 3, g) + conv(c, 9 * c, 3, g) + 2 * conv(c, 4 * c, 3, g)  # noqa: E731
    rest = conv(3, c, 3) + fusions + conv(c, 3, 3)
    assert 3 * carn_block + rest + ups(1) == TRAINABLE["carn"]
    assert 3 * carn_m_block + rest + ups(4) == TRAINABLE["carn_m"]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("scale", SCALES)
def test_macs_match_the_paper(name, scale):
    macs = macs_720p(srlab.create_model(name, scale=scale))
    assert macs / 1e9 == pytest.approx(PAPER_MACS_G[(name, scale)], abs=0.1)


@needs_reference
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("scale", SCALES)
def test_state_dict_matches_the_official_keys_and_shapes(name, scale):
    official = official_state_dicts()[f"{name}_x{scale}"]
    expected = {key: list(shape) for key, shape, *_ in official["state_dict"]}
    ours = {key: list(t.shape) for key, t in srlab.create_model(name, scale=scale).state_dict().items()}
    assert list(ours) == list(expected)  # same keys, same order
    assert ours == expected
    assert (official["param_count"], official["param_count_trainable"]) == (ALL[name], TRAINABLE[name])
    frozen = {key for key, *_, kind in official["state_dict"] if kind == "frozen_param"}
    model = srlab.create_model(name, scale=scale)
    assert {k for k, p in model.named_parameters() if not p.requires_grad} == frozen


def test_mean_shift_is_frozen_and_hidden():
    model = srlab.create_model("carn_m", scale=2)
    mean = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1)
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        assert torch.allclose(model.sub_mean(x), x - mean, atol=1e-7)
        assert torch.allclose(model.add_mean(x), x + mean, atol=1e-7)
    for module in (model.sub_mean, model.add_mean):
        assert all(not p.requires_grad for p in module.parameters())


def test_carn_m_shares_one_residual_unit_per_block():
    model = srlab.create_model("carn_m", scale=2)
    calls = []
    model.b2.b1.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        model(torch.rand(1, 3, 6, 7))
    assert len(calls) == 3
    assert not hasattr(model.b2, "b2")


@pytest.mark.parametrize("name", VARIANTS)
def test_one_model_serves_every_scale(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=3).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        outputs = {s: model(x, s) for s in SCALES}
        default = model(x)
        explicit = model(x, model.scale)
        with pytest.raises(ValueError, match="scales 2, 3 and 4, not 5"):
            model(x, 5)
    for s, y in outputs.items():
        assert y.shape == (1, 3, 9 * s, 11 * s)
    assert torch.equal(default, explicit)
    assert torch.equal(default, outputs[3])
    # the x2 / x4 outputs of this model equal those of models built for x2 / x4 with the same weights
    other = srlab.create_model(name, scale=4).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(other(x), outputs[4])
        assert torch.equal(other(x, 2), outputs[2])


@pytest.mark.parametrize("name", VARIANTS)
def test_backward_reaches_the_parameters(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4)
    loss = model(torch.rand(2, 3, 10, 12)).mean()
    loss.backward()
    # Only the x4 branch runs; the x2 / x3 branches get no gradient from an x4 loss, by design.
    idle = ("upsample.up2.", "upsample.up3.")
    missing = [
        n for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith(idle) and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    assert not missing
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(idle))
    assert model.entry.weight.grad.abs().sum() > 0
    # and every branch is reached by a loss at its own scale
    for s in (2, 3):
        model(torch.rand(1, 3, 6, 6), s).mean().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=3).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / f"{name}.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model(checkpoint=path)
    assert loaded.scale == 3
    x = torch.rand(1, 3, 8, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded(x, 2), model(x, 2))
    assert not any(p.requires_grad for p in loaded.sub_mean.parameters())


# --- the released multi-scale CARN-M ------------------------------------------------------------

# Published CARN-M (paper table, MATLAB Y-channel evaluation).
PUBLISHED = {
    (2, "Set5"): (37.53, 0.9583),
    (3, "Set5"): (33.99, 0.9236),
    (4, "Set5"): (31.92, 0.8903),
    (4, "Set14"): (28.42, 0.7762),
}
# Measured here with the standard protocol (output rounded to 8 bit). For reference, truncating to
# uint8 as the official sample.py does gives 37.507/0.95939, 34.009/0.92466, 31.843/0.89089, 28.403/0.77715.
MEASURED = {
    (2, "Set5"): (37.6817, 0.95949),
    (3, "Set5"): (34.0612, 0.92478),
    (4, "Set5"): (31.8847, 0.89098),
    (4, "Set14"): (28.4220, 0.77720),
}


@functools.cache
def _evaluate(scale, dataset):
    model = srlab.create_model("carn_m", scale=scale, checkpoint=CARN_M_WEIGHTS)  # raw state dict, strict
    result = evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, scale))
    return result.psnr_y, result.ssim_y


@needs_weights
@pytest.mark.parametrize(("scale", "dataset"), sorted(MEASURED))
def test_official_carn_m_weights_reproduce_the_measured_scores(scale, dataset):
    psnr, ssim = _evaluate(scale, dataset)
    assert psnr == pytest.approx(MEASURED[(scale, dataset)][0], abs=0.001)
    assert ssim == pytest.approx(MEASURED[(scale, dataset)][1], abs=0.00002)
    # within 0.16 dB / 0.0013 of the table (see the exact comparison below)
    assert psnr == pytest.approx(PUBLISHED[(scale, dataset)][0], abs=0.16)
    assert ssim == pytest.approx(PUBLISHED[(scale, dataset)][1], abs=0.0013)


# The released carn_m.pth (updated the day of the camera-ready, with grouped 3x3 upsampling) is not the
# network the CARN-M PSNR rows were measured on: those rows are identical in the pre-camera-ready table,
# which described CARN-M with 1x1 upsampling (60.0/32.3/24.7 G); the camera-ready only changed its
# Mult-Adds. The earlier released 1x1-upsampling checkpoint does not match either (Set5 37.62/33.90/31.70).
PAPER_GAPS = {
    (2, "Set5"): "+0.152 dB / +0.0012 SSIM",
    (3, "Set5"): "+0.071 dB / +0.0012 SSIM",
    (4, "Set5"): "-0.035 dB / +0.0007 SSIM",
    (4, "Set14"): "+0.002 dB / +0.0010 SSIM (the SSIM misses)",
}


@needs_weights
@pytest.mark.parametrize(
    ("scale", "dataset"),
    [
        pytest.param(
            *key,
            marks=pytest.mark.xfail(
                strict=True,
                reason=f"released CARN-M vs paper x{key[0]} {key[1]}: {gap} (measured {MEASURED[key]})",
            ),
        )
        for key, gap in sorted(PAPER_GAPS.items())
    ],
)
def test_official_carn_m_weights_match_the_paper(scale, dataset):
    psnr, ssim = _evaluate(scale, dataset)
    assert psnr == pytest.approx(PUBLISHED[(scale, dataset)][0], abs=0.01)
    assert ssim == pytest.approx(PUBLISHED[(scale, dataset)][1], abs=0.0005)
