"""SRCNN, FSRCNN, ESPCN (paper forms and the ETDS authors' RGB retrains), EDSR-baseline and EDSR."""

import functools

import pytest
import torch

import srlab
import srlab.models.edsr  # noqa: F401  (registers the models)
import srlab.models.espcn  # noqa: F401  (registers the models)
import srlab.models.fsrcnn  # noqa: F401  (registers the models)
import srlab.models.srcnn  # noqa: F401  (registers the models)
from srlab.data.resize import bicubic_upscale
from srlab.metrics.color import rgb_to_ycbcr
from srlab.models import count_parameters
from srlab.metrics.legacy import gtmod12_pairs
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts


SMALL = ("srcnn", "fsrcnn", "fsrcnn_etds", "espcn", "espcn_etds", "edsr_baseline")
Y_CHANNEL = ("srcnn", "fsrcnn", "espcn")
ETDS_FILES = {"fsrcnn_etds": "etds-fsrcnn/FSRCNN_x{}.pth", "espcn_etds": "etds-espcn/ESPCN_x{}.pth"}

# --- 1. parameter counts ------------------------------------------------------------------------
# Exact sum(p.numel()) per (variant, scale); the reference (paper-results.md §2) lists the exact
# counts for FSRCNN (12,809 incl. PReLU; ETDS RGB 24,683), ESPCN (21,284 / 22,729 / 24,752) and
# EDSR-baseline (trainable 1,369,859 / 1,554,499 / 1,517,571); SRCNN 9-5-5 and the full EDSR were
# counted here by hand (see test_parameter_counts_by_hand).
EXPECTED_PARAMS = {
    "srcnn": (57_281, 57_281, 57_281),
    "fsrcnn": (12_809, 12_809, 12_809),
    "fsrcnn_etds": (24_683, 24_683, 24_683),
    "espcn": (21_284, 22_729, 24_752),
    "espcn_etds": (26_796, 31_131, 37_200),
    "edsr_baseline": (1_369_883, 1_554_523, 1_517_595),  # all, incl. the 24 frozen MeanShift numbers
    "edsr": (40_729_627, 43_680_027, 43_089_947),
}
# Published figures in thousands (§1/§2 "Params"; ETDS §1b), under each paper's convention.
PUBLISHED_K = {
    ("srcnn", 2): 57, ("srcnn", 3): 57, ("srcnn", 4): 57,
    ("espcn", 2): 21, ("espcn", 4): 25,
    ("espcn_etds", 2): 26.80, ("espcn_etds", 3): 31.13, ("espcn_etds", 4): 37.20,
    ("fsrcnn_etds", 2): 24.68, ("fsrcnn_etds", 3): 24.68, ("fsrcnn_etds", 4): 24.68,
}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts(name, scale):
    model = srlab.create_model(name, scale=scale)
    n = count_parameters(model)
    assert n == EXPECTED_PARAMS[name][scale - 2]
    if (name, scale) in PUBLISHED_K:
        published = PUBLISHED_K[(name, scale)]
        digits = 0 if float(published).is_integer() else 2
        assert round(n / 1000, digits) == published


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_paper_count(scale):
    """The FSRCNN paper counts convolution weights only: 12,464 -> "12K" (12,809 with biases/PReLU)."""
    model = srlab.create_model("fsrcnn", scale=scale)
    weights = sum(p.numel() for p in model.parameters() if p.dim() == 4)
    assert weights == 12_464 and round(weights / 1000) == 12


@pytest.mark.parametrize(("scale", "published_m"), [(2, 1.37), (3, 1.55), (4, 1.52)])
def test_edsr_baseline_count_excludes_mean_shift(scale, published_m):
    model = srlab.create_model("edsr_baseline", scale=scale)
    trainable = count_parameters(model, trainable_only=True)
    assert trainable == (1_369_859, 1_554_499, 1_517_571)[scale - 2]  # paper-results.md §2, exact
    assert round(trainable / 1e6, 2) == published_m
    assert count_parameters(model) - trainable == 24


def test_edsr_full_counts():
    """Full EDSR, trainable: 40,729,603 / 43,680,003 / 43,089,923. Not in paper-results.md; the EDSR
    paper's Table 1 gives "43M" (x4), which the x4 count rounds to."""
    counts = [count_parameters(srlab.create_model("edsr", scale=s), trainable_only=True) for s in (2, 3, 4)]
    assert counts == [40_729_603, 43_680_003, 43_089_923]
    assert round(counts[2] / 1e6) == 43


def test_parameter_counts_by_hand():
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    assert conv(1, 64, 9) + conv(64, 32, 5) + conv(32, 1, 5) == EXPECTED_PARAMS["srcnn"][0]
    for s in (2, 3, 4):
        c = 256
        up = 2 * conv(c, 4 * c, 3) if s == 4 else conv(c, s * s * c, 3)
        full = conv(3, c, 3) + 32 * 2 * conv(c, c, 3) + conv(c, c, 3) + up + conv(c, 3, 3) + 24
        assert full == EXPECTED_PARAMS["edsr"][s - 2]


# --- 2. state-dict keys and shapes ------------------------------------------------------------------


@needs_reference
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_baseline_state_dict_matches_official(scale):
    official = official_state_dicts()[f"edsr_baseline_x{scale}"]
    model = srlab.create_model("edsr_baseline", scale=scale)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape, *_ in official["state_dict"]]
    assert count_parameters(model) == official["param_count"]
    assert count_parameters(model, trainable_only=True) == official["param_count_trainable"]
    frozen = sorted(k for k, p in model.named_parameters() if not p.requires_grad)
    assert frozen == sorted(official["frozen_params"])


def test_edsr_full_keys_follow_the_official_layout():
    keys = list(srlab.create_model("edsr", scale=4).state_dict())
    assert keys[:6] == ["sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias",
                        "head.0.weight", "head.0.bias"]
    assert "body.31.body.2.weight" in keys and "body.32.weight" in keys and "body.33.weight" not in keys
    assert keys[-6:] == ["tail.0.0.weight", "tail.0.0.bias", "tail.0.2.weight", "tail.0.2.bias",
                         "tail.1.weight", "tail.1.bias"]


def test_mean_shift_is_the_official_div2k_mean():
    model = srlab.create_model("edsr_baseline", scale=2)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]) * 255
    assert torch.equal(model.sub_mean.weight.view(3, 3), torch.eye(3))
    assert torch.allclose(model.sub_mean.bias, -mean) and torch.allclose(model.add_mean.bias, mean)


# The paper networks have no official PyTorch release; names follow the ports named in
# paper-results.md §3 (yjn870/FSRCNN-pytorch, yjn870/ESPCN-pytorch, yjn870/SRCNN-pytorch).
PORT_KEYS = {
    "srcnn": [("conv1.weight", [64, 1, 9, 9]), ("conv1.bias", [64]), ("conv2.weight", [32, 64, 5, 5]),
              ("conv2.bias", [32]), ("conv3.weight", [1, 32, 5, 5]), ("conv3.bias", [1])],
    "espcn": [("first_part.0.weight", [64, 1, 5, 5]), ("first_part.0.bias", [64]),
              ("first_part.2.weight", [32, 64, 3, 3]), ("first_part.2.bias", [32]),
              ("last_part.0.weight", [9, 32, 3, 3]), ("last_part.0.bias", [9])],
}


@pytest.mark.parametrize("name", sorted(PORT_KEYS))
def test_port_state_dict(name):
    model = srlab.create_model(name, scale=3)
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == PORT_KEYS[name]


def test_fsrcnn_port_state_dict():
    sd = srlab.create_model("fsrcnn", scale=2).state_dict()
    assert list(sd)[:3] == ["first_part.0.weight", "first_part.0.bias", "first_part.1.weight"]
    assert [k for k in sd if k.startswith("mid_part")][-3:] == [
        "mid_part.10.weight", "mid_part.10.bias", "mid_part.11.weight"]
    assert list(sd["first_part.0.weight"].shape) == [56, 1, 5, 5]
    assert list(sd["last_part.weight"].shape) == [56, 1, 9, 9] and list(sd["last_part.bias"].shape) == [1]


@needs_weights
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(ETDS_FILES))
def test_etds_checkpoint_keys_and_shapes(name, scale):
    ckpt = torch.load(OFFICIAL_WEIGHTS / ETDS_FILES[name].format(scale), map_location="cpu", weights_only=True)
    model = srlab.create_model(name, scale=scale)
    assert [(k, v.shape) for k, v in model.state_dict().items()] == [(k, v.shape) for k, v in ckpt.items()]


@needs_weights
@pytest.mark.parametrize(("paper_form", "etds"), [("fsrcnn", "fsrcnn_etds"), ("espcn", "espcn_etds")])
def test_etds_retrains_do_not_fit_the_paper_form(paper_form, etds):
    """Why they are separate variants: RGB (3 channels) vs the paper's Y channel (and other names)."""
    with pytest.raises(srlab.SrlabError, match=f"does not fit model '{paper_form}' x2"):
        srlab.create_model(paper_form, scale=2, checkpoint=OFFICIAL_WEIGHTS / ETDS_FILES[etds].format(2))


# --- 3. forward, backward, round trip ---------------------------------------------------------------


def test_full_edsr_forward_and_backward():
    torch.manual_seed(0)
    model = srlab.create_model("edsr", scale=3)
    x = torch.rand(1, 3, 7, 9)
    y = model(x)
    assert y.shape == (1, 3, 21, 27) and torch.isfinite(y).all()
    y.abs().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", SMALL)
def test_backward_reaches_every_trainable_parameter(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=2)
    x = torch.rand(1, 3, 12, 14)
    (model(x) - torch.rand(1, 3, 24, 28)).abs().mean().backward()
    for key, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, key
        else:
            assert p.grad is None, key  # EDSR's frozen MeanShift


@pytest.mark.parametrize("name", Y_CHANNEL)
def test_y_channel_models_take_chroma_from_bicubic(name):
    """The paper networks see only Y: the output's Cb/Cr are MATLAB bicubic of the input's."""
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=3).eval()
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        got = rgb_to_ycbcr(model(x))[:, 1:]
    want = rgb_to_ycbcr(bicubic_upscale(x, 3))[:, 1:]
    assert torch.allclose(got, want, atol=1e-5)


def test_edsr_scales_the_input_inside_forward():
    """With zero convolutions the network is the two MeanShifts: the output equals the global mean."""
    model = srlab.create_model("edsr_baseline", scale=2)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if p.requires_grad:
                p.zero_()
        y = model(torch.rand(1, 3, 5, 6))
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    assert torch.allclose(y, mean.expand_as(y), atol=1e-6)


# --- 4. official weights: the ETDS authors' RGB retrains (paper-results.md §1b) ---------------------
# The ETDS protocol (configs/test/*/test_*_x{s}.yml in ECNUSR/ETDS): BasicSR's Set5/Set14 "GTmod12"
# HR (cropped to a multiple of 12, not of the scale) with MATLAB-bicubic LR made from it, Y-channel
# PSNR/SSIM with `scale` pixels shaved. Rebuilt here with the bit-exact MATLAB downscaler. Under the
# standard protocol (HR cropped to a multiple of the scale, the shared LR files) the numbers move by
# up to 0.03 dB (reported, not asserted).


@functools.lru_cache(maxsize=None)
def _etds_pairs(dataset, scale):
    return tuple(gtmod12_pairs(BENCHMARKS / dataset, scale))


def _evaluate_etds(name, scale, dataset):
    from srlab.inference.evaluate import evaluate_images

    model = srlab.create_model(name, scale=scale, checkpoint=OFFICIAL_WEIGHTS / ETDS_FILES[name].format(scale))
    means, _ = evaluate_images(model.eval(), _etds_pairs(dataset, scale))
    return means["psnr_y"], means["ssim_y"]


# (published §1b PSNR, SSIM), measured with this protocol in the comment.
ETDS_PUBLISHED = {
    ("fsrcnn_etds", 2, "Set5"): (37.00, 0.9568),  # 36.9884 / 0.95670
    ("fsrcnn_etds", 3, "Set5"): (33.01, 0.9145),  # 33.0097 / 0.91445
    ("fsrcnn_etds", 4, "Set5"): (30.76, 0.8721),  # 30.7615 / 0.87210
    ("fsrcnn_etds", 3, "Set14"): (29.52, 0.8264),  # 29.5228 / 0.82637
    ("fsrcnn_etds", 4, "Set14"): (27.74, 0.7609),  # 27.7377 / 0.76084
    ("espcn_etds", 2, "Set5"): (36.87, 0.9559),  # 36.8503 / 0.95582
    ("espcn_etds", 3, "Set5"): (32.85, 0.9115),  # 32.8477 / 0.91143
    ("espcn_etds", 4, "Set5"): (30.66, 0.8688),  # 30.6588 / 0.86876
    ("espcn_etds", 3, "Set14"): (29.41, 0.8236),  # 29.4169 / 0.82356
    ("espcn_etds", 4, "Set14"): (27.66, 0.7581),  # 27.6634 / 0.75807
}
ETDS_XFAIL = {
    ("fsrcnn_etds", 2, "Set5"): (
        "published 37.00 dB, measured 36.9884 (-0.012; SSIM 0.95670 vs 0.9568 matches)"
    ),
    ("espcn_etds", 2, "Set5"): (
        "published 36.87 dB, measured 36.8503 (-0.020; SSIM 0.95582 vs 0.9559 matches)"
    ),
}


def _etds_cases():
    for key in sorted(ETDS_PUBLISHED):
        marks = [pytest.mark.xfail(strict=True, reason=ETDS_XFAIL[key])] if key in ETDS_XFAIL else []
        yield pytest.param(*key, marks=marks)


@needs_weights
@pytest.mark.parametrize(("name", "scale", "dataset"), list(_etds_cases()))
def test_etds_weights_reproduce_published(name, scale, dataset):
    psnr, ssim = _evaluate_etds(name, scale, dataset)
    want_psnr, want_ssim = ETDS_PUBLISHED[(name, scale, dataset)]
    assert abs(ssim - want_ssim) <= 0.0005
    assert abs(psnr - want_psnr) <= 0.01


@needs_weights
@pytest.mark.parametrize("name", sorted(ETDS_FILES))
def test_etds_x2_set5_within_0p03_db(name):
    """The two x2 Set5 rows off by more than 0.01 dB are still within 0.03 dB, SSIM to 0.0002."""
    psnr, ssim = _evaluate_etds(name, 2, "Set5")
    want_psnr, want_ssim = ETDS_PUBLISHED[(name, 2, "Set5")]
    assert abs(psnr - want_psnr) <= 0.03 and abs(ssim - want_ssim) <= 0.0002
