"""ETDS (CVPR 2023): dual-stream training form, its equivalent plain inference form, official weights."""

import functools

import pytest
import torch

import srlab
import srlab.models.etds  # noqa: F401  (registers the models)
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.etds import ETDS, ETDSForInference
from srlab.models.weights import save_weights
from srlab.models.complexity import count_macs
from srlab.metrics.legacy import gtmod12_pairs
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts


# Registry name -> official configuration tag (M = blocks, C = channels).
TAGS = {"etds_t": "M5C16", "etds_s": "M4C32", "etds_m": "M6C32", "etds_l": "M7C48"}
NAMES = tuple(TAGS)
SCALES = (2, 3, 4)

# paper-results.md §2: the papers count the inference form (read from the official checkpoints);
# published as 13.94 K etc. (ETDS-fig), these are the exact counts.
PAPER_PARAMS = {
    "etds_t": (13_944, 16_920, 21_360),
    "etds_s": (41_512, 46_792, 54_112),
    "etds_m": (60_008, 65_288, 72_608),
    "etds_l": (152_184, 159_768, 169_968),
}
# As printed in ETDS-fig (K).
PAPER_K = {
    "etds_t": (13.94, 16.92, 21.36),
    "etds_s": (41.51, 46.79, 54.11),
    "etds_m": (60.01, 65.29, 72.61),
    "etds_l": (152.18, 159.77, 169.97),
}
# The dual-stream training form is smaller (paper-results.md §2 for x2; reference json for M4C32 x3).
TRAIN_PARAMS = {
    "etds_t": (12_110, 14_300, 17_366),
    "etds_s": (38_352, 42_702, 48_792),
    "etds_m": (55_340, 59_690, 65_780),
    "etds_l": (143_850, 150_360, 159_474),
}
# ETDS-fig MACs (G) with a fixed 640x360 LR input at every scale (paper-results.md §1b/§2).
PAPER_GMACS = {
    "etds_t": (3.19, 3.86, 4.88),
    "etds_s": (9.52, 10.73, 12.41),
    "etds_m": (13.77, 14.98, 16.66),
    "etds_l": (34.97, 36.71, 39.05),
}


# --- 1. parameters and MACs ---------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts(name, scale):
    model = srlab.create_model(name, scale=scale)
    index = SCALES.index(scale)
    assert paper_parameter_count(model) == PAPER_PARAMS[name][index]
    assert round(PAPER_PARAMS[name][index] / 1000, 2) == PAPER_K[name][index]
    assert count_parameters(model) == TRAIN_PARAMS[name][index]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NAMES)
def test_macs_at_fixed_640x360_input(name, scale):
    deployed = srlab.deploy(srlab.create_model(name, scale=scale)).eval()
    macs = count_macs(deployed, (360, 640))
    assert round(macs / 1e9, 2) == PAPER_GMACS[name][SCALES.index(scale)]


# --- 2. state-dict keys and shapes -----------------------------------------------------------------


def _reference_shapes(key):
    entries = official_state_dicts()[key]["state_dict"]
    return {entry[0]: list(entry[1]) for entry in entries}


def _shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@needs_reference
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_matches_official(name, scale):
    model = srlab.create_model(name, scale=scale)
    tag = TAGS[name].lower()
    assert _shapes(srlab.deploy(model)) == _reference_shapes(f"etds_{tag}_x{scale}")
    # The reference lists the training form for M4C32 and M5C16 only.
    if tag in ("m4c32", "m5c16"):
        assert _shapes(model) == _reference_shapes(f"etds_train_{tag}_x{scale}")


# --- 3. forward, backward, round trip ----------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
def test_initialised_residual_stream_is_nearest_upscaling(scale):
    """The official init: residual stream = input repeated scale^2 times, stream-to-backbone convs = 0."""
    model = srlab.create_model("etds_t", scale=scale).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        _, r = model.forward_streams(x)
    nearest = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    assert torch.allclose(r, nearest, atol=1e-6)


def test_backward_reaches_every_parameter():
    model = srlab.create_model("etds_s", scale=3).train()
    model(torch.rand(2, 3, 12, 13)).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    deployed = srlab.deploy(srlab.create_model("etds_t", scale=2)).train()
    deployed(torch.rand(1, 3, 8, 9)).mean().backward()
    assert all(p.grad is not None for p in deployed.parameters())


def _perturbed(name, scale, dtype=torch.float64):
    model = srlab.create_model(name, scale=scale).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NAMES)
def test_deploy_is_equivalent(name, scale):
    """Float64: with randn*0.1 on every weight the activations of ETDS-L grow large enough that float32
    rounding alone differs by up to ~4e-5 (the fusion is exact; float64 agrees to ~1e-13)."""
    torch.manual_seed(scale)
    model = _perturbed(name, scale)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64)
    deployed = srlab.deploy(model)
    assert isinstance(deployed, ETDSForInference) and not hasattr(deployed, "deploy")
    assert deployed.scale == scale and not deployed.training
    assert deployed.srlab_spec.form == "deploy"
    with torch.no_grad():
        y, yd = model(x), deployed(x)
        model.train()
        unclamped = model(x)
    assert torch.allclose(yd, y, rtol=0, atol=1e-5)
    # The inference form embeds the clip to [0, 1] (official converter); the training form is
    # unclamped in train mode, and the perturbed outputs do leave [0, 1].
    assert torch.allclose(yd, unclamped.clamp(0, 1), rtol=0, atol=1e-5)
    assert ((unclamped < 0) | (unclamped > 1)).any() and ((unclamped > 0) & (unclamped < 1)).any()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_deploy_float32_close():
    torch.manual_seed(0)
    model = _perturbed("etds_t", 3, torch.float32)
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        assert torch.allclose(srlab.deploy(model)(x), model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("form", ["train", "deploy"])
def test_state_dict_round_trip(tmp_path, form):
    torch.manual_seed(1)
    model = _perturbed("etds_t", 3, torch.float32)
    if form == "deploy":
        model = srlab.deploy(model)
    path = tmp_path / "etds.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model(checkpoint=path)
    assert type(loaded) is type(model)
    assert loaded.srlab_spec.form == form
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_invalid_channels():
    with pytest.raises(ValueError, match="need num_feat > num_residual_feat >= 3, got 3 and 3"):
        ETDS(scale=2, num_in_ch=3, num_block=2, num_feat=3, num_residual_feat=3)


# --- 4. official weights (inference form) ---------------------------------------------------------


def _official(name, scale):
    path = OFFICIAL_WEIGHTS / "etds" / f"ETDS_{TAGS[name]}_x{scale}.pth"
    return srlab.create_model(name, scale=scale, checkpoint=path)


@needs_weights
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NAMES)
def test_official_weights_load_as_inference_form(name, scale):
    model = _official(name, scale)
    assert isinstance(model, ETDSForInference) and not model.training
    assert model.srlab_spec.form == "deploy" and model.srlab_spec.name == name
    assert paper_parameter_count(model) == PAPER_PARAMS[name][SCALES.index(scale)]
    # The converter's last layers: conv_clip is -I with bias 1 (relu(1 - relu(1 - y)) = clamp(y, 0, 1)).
    n = model.conv_clip.out_channels
    assert torch.equal(model.conv_clip.weight.flatten(1), -torch.eye(n))
    assert torch.equal(model.conv_clip.bias, torch.ones(n))


# The ETDS protocol (configs/test in ECNUSR/ETDS), as for the ETDS authors' ESPCN/FSRCNN retrains in
# test_classic_cnns.py: BasicSR's "GTmod12" HR (cropped to a multiple of 12) with MATLAB-bicubic LR
# made from it (bit-exact MATLAB downscaler), Y-channel PSNR/SSIM with `scale` pixels shaved. Under
# the standard protocol (shared LR files) the numbers are 0.00-0.03 dB higher (not asserted).


@functools.lru_cache(maxsize=None)
def _etds_pairs(dataset, scale):
    return tuple(gtmod12_pairs(BENCHMARKS / dataset, scale))


@functools.lru_cache(maxsize=None)
def _evaluate(name, scale, dataset):
    from srlab.inference.evaluate import evaluate_images

    means, _ = evaluate_images(_official(name, scale), _etds_pairs(dataset, scale))
    return means["psnr_y"], means["ssim_y"]


# (published §1b PSNR, SSIM), measured with this protocol in the comment.
PUBLISHED = {
    ("etds_t", 2, "Set5"): (37.18, 0.9578),  # 37.1746 / 0.95771
    ("etds_t", 3, "Set5"): (33.14, 0.9160),  # 33.1357 / 0.91590
    ("etds_t", 4, "Set5"): (30.87, 0.8738),  # 30.8727 / 0.87377
    ("etds_t", 4, "Set14"): (27.75, 0.7618),  # 27.7573 / 0.76176
    ("etds_s", 2, "Set5"): (37.38, 0.9587),  # 37.3690 / 0.95861
    ("etds_s", 3, "Set5"): (33.49, 0.9194),  # 33.4827 / 0.91938
    ("etds_s", 4, "Set5"): (31.19, 0.8806),  # 31.1926 / 0.88061
    ("etds_s", 4, "Set14"): (28.01, 0.7678),  # 28.0164 / 0.76775
    ("etds_m", 2, "Set5"): (37.54, 0.9593),  # 37.5346 / 0.95915
    ("etds_m", 3, "Set5"): (33.65, 0.9214),  # 33.6439 / 0.92132
    ("etds_m", 4, "Set5"): (31.41, 0.8843),  # 31.4086 / 0.88428
    ("etds_m", 4, "Set14"): (28.13, 0.7705),  # 28.1345 / 0.77050
    ("etds_l", 2, "Set5"): (37.64, 0.9597),  # 37.6296 / 0.95958
    ("etds_l", 3, "Set5"): (33.88, 0.9235),  # 33.8774 / 0.92344
    ("etds_l", 4, "Set5"): (31.69, 0.8889),  # 31.6932 / 0.88891
    ("etds_l", 4, "Set14"): (28.31, 0.7751),  # 28.3182 / 0.77500
}
XFAIL = {
    ("etds_s", 2, "Set5"): "published 37.38 dB, measured 37.3690 (-0.011; SSIM 0.95861 vs 0.9587 matches)",
    ("etds_l", 2, "Set5"): "published 37.64 dB, measured 37.6296 (-0.0104; SSIM 0.95958 vs 0.9597 matches)",
}


def _cases():
    for key in sorted(PUBLISHED):
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[key])] if key in XFAIL else []
        yield pytest.param(*key, marks=marks)


@needs_weights
@pytest.mark.parametrize(("name", "scale", "dataset"), list(_cases()))
def test_official_weights_reproduce_published(name, scale, dataset):
    psnr, ssim = _evaluate(name, scale, dataset)
    want_psnr, want_ssim = PUBLISHED[(name, scale, dataset)]
    assert abs(ssim - want_ssim) <= 0.0005
    assert abs(psnr - want_psnr) <= 0.01


@needs_weights
@pytest.mark.parametrize("name", NAMES)
def test_x2_set5_within_0p02_db(name):
    """The x2 Set5 rows are all slightly low (-0.005 to -0.011 dB, like the ESPCN/FSRCNN retrains);
    every one is within 0.02 dB, SSIM within 0.0002."""
    psnr, ssim = _evaluate(name, 2, "Set5")
    want_psnr, want_ssim = PUBLISHED[(name, 2, "Set5")]
    assert -0.02 <= psnr - want_psnr <= 0.0 and abs(ssim - want_ssim) <= 0.0002
