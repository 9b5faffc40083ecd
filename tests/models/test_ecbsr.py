"""ECBSR: the paper's Y-channel network (``ecbsr``) and the ETDS authors' RGB retrain (``ecbsr_etds``)."""

import functools

import pytest
import torch

import srlab
import srlab.models.ecbsr  # noqa: F401  (registers the models)
from srlab.data.resize import bicubic_upscale
from srlab.metrics.color import rgb_to_ycbcr
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.ecbsr import ECBSR, ECBSRET, PlainSR
from srlab.models.weights import save_weights
from srlab.metrics.legacy import gtmod12_pairs
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts


# The ETDS releases: variant -> (num_modules, channels).
ETDS_VARIANTS = {"M4C16": (4, 16), "M4C32": (4, 32), "M6C40": (6, 40)}


def _etds_args(variant):
    m, c = ETDS_VARIANTS[variant]
    return {"num_modules": m, "channels": c}


def _etds_file(variant, scale):
    return OFFICIAL_WEIGHTS / "etds-ecbsr" / f"ECBSR_ET_{variant}_x{scale}.pth"


# --- 1. parameter counts ------------------------------------------------------------------------
# paper_parameter_count = the trainable parameters of the deploy form.


@pytest.mark.parametrize(("scale", "count"), [(2, 594_884), (3, 597_769), (4, 601_808)])
def test_ecbsr_m16c64_paper_count(scale, count):
    """Deploy form (PlainSR, PReLU slopes included) = the formula of paper-results.md §2."""
    model = srlab.create_model("ecbsr", scale=scale)
    assert paper_parameter_count(model) == count
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    assert count == conv(1, 64) + 64 + 16 * (conv(64, 64) + 64) + conv(64, scale * scale)


@pytest.mark.xfail(
    strict=True,
    reason="published 596K / 603K (SAFMN-eff); the PlainSR deploy form has 594,884 / 601,808 (595K / 602K), "
    "~1.1K fewer; neither the PlainSR nor the ECB training form (2.22M) of the official code gives it",
)
@pytest.mark.parametrize(("scale", "published_k"), [(2, 596), (4, 603)])
def test_ecbsr_m16c64_rounds_to_published(scale, published_k):
    assert round(paper_parameter_count(srlab.create_model("ecbsr", scale=scale)) / 1000) == published_k


@pytest.mark.parametrize(("scale", "published_k"), [(2, 596), (4, 603)])
def test_ecbsr_m16c64_count_within_0p2_percent_of_published(scale, published_k):
    n = paper_parameter_count(srlab.create_model("ecbsr", scale=scale))
    assert abs(n - published_k * 1000) / (published_k * 1000) < 0.002


@pytest.mark.parametrize(("scale", "count"), [(2, 2_220_416), (4, 2_235_968)])
def test_ecbsr_m16c64_training_form_count(scale, count):
    """All parameters of the training form incl. the frozen masks (paper-results.md §2, 'arch')."""
    assert count_parameters(srlab.create_model("ecbsr", scale=scale)) == count


# The ETDS table (§1b) counts ECBSR as the plain network before the ETDS transformation (PlainSR,
# RGB); the released ET form that `deploy()` returns adds 4 carried channels and the 1x1 clip conv.
ETDS_PLAIN = {  # exact PlainSR count, published (K)
    ("M4C16", 2): (11_548, 11.55), ("M4C16", 3): (13_723, 13.72), ("M4C16", 4): (16_768, 16.77),
    ("M4C32", 2): (41_516, 41.52), ("M4C32", 3): (45_851, 45.85), ("M4C32", 4): (51_920, 51.92),
    ("M6C40", 2): (92_372, 92.37), ("M6C40", 3): (97_787, 97.79), ("M6C40", 4): (105_368, 105.37),
}
ETDS_ET_COUNT = {
    ("M4C16", 2): 17_468, ("M4C16", 3): 21_020, ("M4C16", 4): 26_180,
    ("M4C32", 2): 52_044, ("M4C32", 3): 57_900, ("M4C32", 4): 65_940,
    ("M6C40", 2): 111_268, ("M6C40", 3): 118_276, ("M6C40", 4): 127_756,
}


@pytest.mark.parametrize(("variant", "scale"), sorted(ETDS_PLAIN))
def test_ecbsr_etds_counts(variant, scale):
    model = srlab.create_model("ecbsr_etds", scale=scale, args=_etds_args(variant))
    exact, published_k = ETDS_PLAIN[(variant, scale)]
    plain = model.plain()
    assert isinstance(plain, PlainSR) and count_parameters(plain) == exact
    assert round(exact / 1000, 2) == published_k
    assert paper_parameter_count(model) == ETDS_ET_COUNT[(variant, scale)]


# --- 2. state-dict keys and shapes ------------------------------------------------------------------
# official-state-dicts.json holds the official *training* form (xindongzhang/ECBSR `ECBSR`, colors=1).
OFFICIAL_KEYS = {
    "ecbsr_m4c16_x2": 16, "ecbsr_m4c16_x3": 16, "ecbsr_m4c16_x4": 16, "ecbsr_m4c8_x2": 8, "ecbsr_m4c8_x4": 8,
}


@needs_reference
@pytest.mark.parametrize("key", sorted(OFFICIAL_KEYS))
def test_training_form_state_dict_matches_official(key):
    official = official_state_dicts()[key]
    model = srlab.create_model("ecbsr", scale=int(key[-1]), args={"num_modules": 4, "channels": OFFICIAL_KEYS[key]})
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == [
        (k, shape) for k, shape, *_ in official["state_dict"]
    ]
    assert count_parameters(model) == official["param_count"]
    assert count_parameters(model, trainable_only=True) == official["param_count_trainable"]
    frozen = sorted(k for k, p in model.named_parameters() if not p.requires_grad)
    assert frozen == sorted(official["frozen_params"])


def test_ecbsr_deploy_form_has_official_plainsr_names():
    fused = srlab.deploy(srlab.create_model("ecbsr", scale=2, args={"num_modules": 2, "channels": 8}))
    assert isinstance(fused, PlainSR) and not hasattr(fused, "deploy")
    assert [(k, list(v.shape)) for k, v in fused.state_dict().items()] == [
        ("backbone.0.conv3x3.weight", [8, 1, 3, 3]), ("backbone.0.conv3x3.bias", [8]), ("backbone.0.act.weight", [8]),
        ("backbone.1.conv3x3.weight", [8, 8, 3, 3]), ("backbone.1.conv3x3.bias", [8]), ("backbone.1.act.weight", [8]),
        ("backbone.2.conv3x3.weight", [8, 8, 3, 3]), ("backbone.2.conv3x3.bias", [8]), ("backbone.2.act.weight", [8]),
        ("backbone.3.conv3x3.weight", [4, 8, 3, 3]), ("backbone.3.conv3x3.bias", [4]),
    ]


@needs_weights
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("variant", sorted(ETDS_VARIANTS))
def test_etds_checkpoint_is_the_deploy_form(variant, scale):
    ckpt = torch.load(_etds_file(variant, scale), map_location="cpu", weights_only=True)
    fused = srlab.deploy(srlab.create_model("ecbsr_etds", scale=scale, args=_etds_args(variant)))
    assert isinstance(fused, ECBSRET) and not hasattr(fused, "deploy")
    assert [(k, v.shape) for k, v in fused.state_dict().items()] == [(k, v.shape) for k, v in ckpt.items()]


@needs_weights
@pytest.mark.parametrize("scale", [2, 3])
def test_et_layout_matches_the_released_weights(scale):
    """Every entry that the transformation fixes (carried channels, zero channel, negated residual
    taps, clip) is the same in our deploy form as in the released checkpoint."""
    m, c = ETDS_VARIANTS["M4C16"]
    ckpt = torch.load(_etds_file("M4C16", scale), map_location="cpu", weights_only=True)
    ours = srlab.deploy(srlab.create_model("ecbsr_etds", scale=scale)).state_dict()
    out_ch = 3 * scale * scale
    fixed = {"backbone.0.0.weight": (slice(c, None),), "backbone.0.0.bias": (slice(c, None),)}
    for i in range(m + 1):
        fixed[f"backbone.{i}.1.weight"] = (slice(c, None),)
    for i in range(1, m + 1):
        fixed[f"backbone.{i}.0.weight"] = (slice(c, None),)
        fixed[f"backbone.{i}.0.bias"] = (slice(c, None),)
    fixed[f"backbone.{m + 1}.0.weight"] = (slice(None), slice(c, None))
    fixed[f"backbone.{m + 1}.0.bias"] = (slice(out_ch, None),)
    fixed[f"backbone.{m + 2}.0.weight"] = (slice(None),)
    fixed[f"backbone.{m + 2}.0.bias"] = (slice(None),)
    for key, index in fixed.items():
        assert torch.equal(ours[key][index], ckpt[key][index]), key
    for i in range(1, m + 1):  # no path from the carried channels into the features
        assert not ckpt[f"backbone.{i}.0.weight"][:c, c:].any()


# --- 3. forward, backward, round trip, re-parameterisation -----------------------------------------


@pytest.mark.parametrize(("name", "args"), [("ecbsr", {"num_modules": 4, "channels": 16}), ("ecbsr_etds", {})])
def test_backward_reaches_every_trainable_parameter(name, args):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=2, args=args).train()
    x = torch.rand(1, 3, 12, 14)
    model(x).mean().backward()
    for key, p in model.named_parameters():
        if not p.requires_grad:
            assert key.endswith(".mask") and p.grad is None, key  # the fixed Sobel / Laplacian filters
            continue
        assert p.grad is not None, key
        if key.endswith(("conv1x1_sbx.b0", "conv1x1_sby.b0", "conv1x1_lpl.b0")):
            # The bias of a 1x1 conv before a zero-sum edge filter is a constant map (also at the
            # border, padded with it): the filter removes it, so its gradient is zero (up to rounding).
            assert p.grad.abs().max() < 1e-8, key
        else:
            assert p.grad.abs().sum() > 0, key


@pytest.mark.parametrize(("name", "args"), [("ecbsr", {"num_modules": 4, "channels": 8}), ("ecbsr_etds", {})])
def test_state_dict_round_trip(tmp_path, name, args):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=3, args=args).eval()
    x = torch.rand(1, 3, 9, 11)
    for form, m in (("train", model), ("deploy", srlab.deploy(model))):
        path = tmp_path / f"{form}.safetensors"
        save_weights(path, m)
        loaded = srlab.create_model(checkpoint=path)
        assert type(loaded) is type(m)
        with torch.no_grad():
            assert torch.equal(loaded(x), m(x))


def _perturbed(name, scale, args, dtype=torch.float64):
    torch.manual_seed(scale)
    model = srlab.create_model(name, scale=scale, args=args).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                # Relative noise on the initialised weights (so 16 layers do not blow up); the
                # near-zero edge scales/biases and the constant PReLU slopes get absolute noise.
                spread = p.std().item() if p.numel() > 1 else 0.0
                p.add_(torch.randn_like(p) * 0.1 * (spread if spread > 0.01 else 1.0))
    return model.eval()


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("ecbsr", {}),  # M16C64
        ("ecbsr", {"num_modules": 2, "channels": 8, "with_idt": True}),
        ("ecbsr_etds", {}),
        ("ecbsr_etds", {"num_modules": 6, "channels": 40}),
    ],
)
def test_deploy_equals_training_form(name, args, scale):
    """Fused = unfused to 1e-5 in float64 (measured ~1e-14; float32 rounding alone gives ~2e-5 after
    the 0.1-randn perturbation, so float32 is checked to 1e-4)."""
    x = torch.rand(1, 3, 17, 23, dtype=torch.float64)
    model = _perturbed(name, scale, args)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = srlab.deploy(model)
    assert type(fused) is (ECBSRET if name == "ecbsr_etds" else PlainSR) and fused.scale == scale
    # deploy leaves the training form as it was
    assert isinstance(model, ECBSR) and not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(fused(x), want, rtol=0, atol=1e-5)
        model32 = model.float()
        assert torch.allclose(srlab.deploy(model32)(x.float()), want.float(), rtol=0, atol=1e-4)
    if name == "ecbsr_etds":  # not trivially equal by clamping: most outputs lie inside (0, 1)
        assert ((want > 0) & (want < 1)).double().mean() > 0.3


@pytest.mark.parametrize("scale", [2, 3])
def test_etds_plain_form_is_the_unclamped_training_form(scale):
    x = torch.rand(1, 3, 9, 13, dtype=torch.float64)
    model = _perturbed("ecbsr_etds", scale, {})
    with torch.no_grad():
        plain = model.plain()(x)
        unclamped = model.train()(x)
        assert torch.allclose(plain, unclamped, rtol=0, atol=1e-10)
        assert torch.equal(model.eval()(x), unclamped.clamp(0, 1))


def _zeroed(name, scale):
    model = srlab.create_model(name, scale=scale, args={"num_modules": 2, "channels": 8} if name == "ecbsr" else {})
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.zero_()
    return model.eval()


def test_ecbsr_is_a_residual_over_nearest_luma_with_bicubic_chroma():
    """With all branches zero the Y network returns its input repeated s^2 times (the global
    residual): the output's Y is the nearest-neighbour upscaled Y, its Cb/Cr MATLAB bicubic."""
    x = torch.rand(1, 3, 11, 13)
    for model in (_zeroed("ecbsr", 3), srlab.deploy(_zeroed("ecbsr", 3))):
        with torch.no_grad():
            got = rgb_to_ycbcr(model(x))
        ycbcr = rgb_to_ycbcr(x)
        nearest = ycbcr[:, :1].repeat_interleave(3, dim=2).repeat_interleave(3, dim=3)
        assert torch.allclose(got[:, :1], nearest, atol=1e-5)
        assert torch.allclose(got[:, 1:], rgb_to_ycbcr(bicubic_upscale(x, 3))[:, 1:], atol=1e-5)


def test_ecbsr_network_sees_luma_in_0_255():
    """A bias of b on the last conv adds b / 255 to Y (the official pipeline feeds Y in [0, 255])."""
    model = _zeroed("ecbsr", 2)
    with torch.no_grad():
        model.backbone[-1].conv3x3.bias.fill_(25.5)
        x = torch.rand(1, 3, 6, 7)
        y = rgb_to_ycbcr(model(x))[:, :1]
        ref = rgb_to_ycbcr(x)[:, :1].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.allclose(y - ref, torch.full_like(y, 0.1), atol=1e-5)


def test_ecbsr_etds_zeroed_is_nearest_rgb():
    x = torch.rand(1, 3, 7, 9)
    for model in (_zeroed("ecbsr_etds", 2), srlab.deploy(_zeroed("ecbsr_etds", 2))):
        with torch.no_grad():
            y = model(x)
        assert torch.allclose(y, x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3), atol=1e-6)


@needs_weights
def test_etds_weights_do_not_fit_the_y_channel_form():
    with pytest.raises(srlab.SrlabError, match="does not fit model 'ecbsr' x2: 131 missing"):
        srlab.create_model("ecbsr", scale=2, checkpoint=_etds_file("M4C16", 2), args={"num_modules": 4, "channels": 16})


# --- 4. official weights: the ETDS authors' RGB retrains (paper-results.md §1b) ---------------------
# The ETDS protocol (ECNUSR/ETDS configs/test/ECBSR/test_ECBSR_ET_*.yml): BasicSR's Set5/Set14
# "GTmod12" HR with MATLAB-bicubic LR made from it, Y PSNR/SSIM with `scale` pixels shaved; rebuilt
# as in tests/models/test_classic_cnns.py.


@functools.lru_cache(maxsize=None)
def _etds_pairs(dataset, scale):
    return tuple(gtmod12_pairs(BENCHMARKS / dataset, scale))


def _evaluate_etds(variant, scale, dataset):
    from srlab.inference.evaluate import evaluate_images

    path = _etds_file(variant, scale)
    model = srlab.create_model("ecbsr_etds", scale=scale, checkpoint=path, args=_etds_args(variant))
    assert isinstance(model, ECBSRET)
    means, _ = evaluate_images(model, _etds_pairs(dataset, scale))
    return means["psnr_y"], means["ssim_y"]


# (published §1b PSNR, SSIM), measured with this protocol in the comment.
ETDS_PUBLISHED = {
    ("M4C16", 2, "Set5"): (37.18, 0.9577),  # 37.1676 / 0.95761
    ("M4C16", 3, "Set5"): (33.07, 0.9149),  # 33.0659 / 0.91486
    ("M4C16", 4, "Set5"): (30.87, 0.8741),  # 30.8701 / 0.87406
    ("M4C16", 2, "Set14"): (32.79, 0.9105),  # 32.7868 / 0.91040
    ("M4C16", 3, "Set14"): (29.53, 0.8269),  # 29.5371 / 0.82687
    ("M4C16", 4, "Set14"): (27.80, 0.7626),  # 27.8016 / 0.76254
    ("M4C32", 2, "Set5"): (37.39, 0.9587),  # 37.3851 / 0.95855
    ("M4C32", 3, "Set5"): (33.56, 0.9205),  # 33.5597 / 0.92048
    ("M4C32", 4, "Set5"): (31.24, 0.8815),  # 31.2370 / 0.88149
    ("M4C32", 2, "Set14"): (33.03, 0.9126),  # 33.0299 / 0.91253
    ("M4C32", 3, "Set14"): (29.78, 0.8319),  # 29.7907 / 0.83185
    ("M4C32", 4, "Set14"): (28.04, 0.7686),  # 28.0468 / 0.76853
    ("M6C40", 2, "Set5"): (37.61, 0.9596),  # 37.6058 / 0.95946
    ("M6C40", 3, "Set5"): (33.67, 0.9211),  # 33.6698 / 0.92097
    ("M6C40", 4, "Set5"): (31.41, 0.8831),  # 31.4104 / 0.88313
    ("M6C40", 2, "Set14"): (33.18, 0.9139),  # 33.1779 / 0.91380
    ("M6C40", 3, "Set14"): (29.92, 0.8339),  # 29.9193 / 0.83387
    ("M6C40", 4, "Set14"): (28.20, 0.7716),  # 28.1997 / 0.77157
}
ETDS_XFAIL = {
    ("M4C16", 2, "Set5"): "published 37.18 dB, measured 37.1676 (-0.012; SSIM 0.95761 vs 0.9577 matches)",
    ("M4C32", 3, "Set14"): "published 29.78 dB, measured 29.7907 (+0.011; SSIM 0.83185 vs 0.8319 matches)",
}
# Run by default: every Set5 row and Set14 x4 (the file stays well under 30 s on two shared cores);
# the Set14 x2/x3 rows are `slow` (`make test-slow`).
ETDS_FAST = {key for key in ETDS_PUBLISHED if key[2] == "Set5" or key[1] == 4}


def _etds_cases():
    for key in sorted(ETDS_PUBLISHED):
        marks = [pytest.mark.xfail(strict=True, reason=ETDS_XFAIL[key])] if key in ETDS_XFAIL else []
        if key not in ETDS_FAST:
            marks.append(pytest.mark.slow)
        yield pytest.param(*key, marks=marks)


@needs_weights
@pytest.mark.parametrize(("variant", "scale", "dataset"), list(_etds_cases()))
def test_etds_weights_reproduce_published(variant, scale, dataset):
    psnr, ssim = _evaluate_etds(variant, scale, dataset)
    want_psnr, want_ssim = ETDS_PUBLISHED[(variant, scale, dataset)]
    assert abs(ssim - want_ssim) <= 0.0005
    assert abs(psnr - want_psnr) <= 0.01


def _off_rows():
    for key in sorted(ETDS_XFAIL):
        marks = [] if key in ETDS_FAST else [pytest.mark.slow]
        yield pytest.param(key, marks=marks, id="-".join(map(str, key)))


@needs_weights
@pytest.mark.parametrize("key", list(_off_rows()))
def test_etds_off_rows_within_0p015_db(key):
    """The two rows off by more than 0.01 dB are within 0.015 dB, SSIM to 0.0002."""
    psnr, ssim = _evaluate_etds(*key)
    want_psnr, want_ssim = ETDS_PUBLISHED[key]
    assert abs(psnr - want_psnr) <= 0.015 and abs(ssim - want_ssim) <= 0.0002
