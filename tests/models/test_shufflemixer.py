import pytest
import torch
import torch.nn.functional as F

import srlab
import srlab.models.shufflemixer  # noqa: F401  (registers the models)
from srlab.models import model_info, paper_parameter_count
from srlab.models.shufflemixer import channel_layer_norm, channel_shuffle
from srlab.models.weights import save_weights
from srlab.models.complexity import macs_720p
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_shared, official_state_dicts

WEIGHTS = OFFICIAL_WEIGHTS / "shufflemixer"

# The official checkpoints (shufflemixer_base_x{2,3,4}.pth, shufflemixer_tiny_x{2,3,4}.pth) are hosted on
# Google Drive / Baidu only and are not in the shared official-weights folder.
needs_weights = needs_shared(WEIGHTS)

VARIANTS = ("shufflemixer_tiny", "shufflemixer")
SCALES = (2, 3, 4)

# Exact counts (all parameters are trainable; paper-results.md §2, official arch, and the reference
# state dicts' param_count). x4 uses two x2 pixel-shuffle stages, hence fewer parameters than x3.
EXPECTED_PARAMS = {
    ("shufflemixer_tiny", 2): 108_435, ("shufflemixer_tiny", 3): 113_715, ("shufflemixer_tiny", 4): 112_659,
    ("shufflemixer", 2): 393_939, ("shufflemixer", 3): 414_739, ("shufflemixer", 4): 410_579,
}
# Published: base 394K / 415K / 411K (paper); the tiny figures were not read from the paper.
PUBLISHED_PARAMS_K = {("shufflemixer", 2): 394, ("shufflemixer", 3): 415, ("shufflemixer", 4): 411}

# fvcore MACs at 720p output of the official arch (paper-results.md §2), in G; paper: base 91 / 43 / 28 G.
FVCORE_GMACS = {
    ("shufflemixer_tiny", 2): 25.03, ("shufflemixer_tiny", 3): 12.11, ("shufflemixer_tiny", 4): 7.81,
    ("shufflemixer", 2): 90.86, ("shufflemixer", 3): 43.40, ("shufflemixer", 4): 27.69,
}
PUBLISHED_GMACS = {("shufflemixer", 2): 91, ("shufflemixer", 3): 43, ("shufflemixer", 4): 28}


@pytest.mark.parametrize(("name", "scale"), sorted(EXPECTED_PARAMS))
def test_parameter_counts(name, scale):
    model = srlab.create_model(name, scale=scale)
    n = paper_parameter_count(model)
    assert n == EXPECTED_PARAMS[(name, scale)]
    assert n == sum(p.numel() for p in model.parameters())  # nothing frozen, nothing excluded
    if (name, scale) in PUBLISHED_PARAMS_K:
        assert round(n / 1000) == PUBLISHED_PARAMS_K[(name, scale)]


def test_parameter_count_by_hand():
    """to_feat (no bias) + 5 x (two SM layers + 3x3/1x1 conv pair) + upsampler + tail, base x4."""
    conv = lambda cin, cout, k, groups=1: cin // groups * cout * k * k + cout  # noqa: E731
    c, k, n, r = 64, 7, 5, 2
    half, hidden = c // 2, c // 2 * r
    mlp = conv(half, hidden, 1) + conv(hidden, half, 1)
    sm_layer = 2 * c + conv(c, c, k, groups=c) + 2 * mlp  # two LayerNorm weights, depth-wise conv, two MLPs
    block = 2 * sm_layer + conv(c, c + 16, 3) + conv(c + 16, c, 1)
    total = 3 * c * 9 + n * block + 2 * conv(c, 4 * c, 1) + conv(c, 3, 3)
    assert paper_parameter_count(srlab.create_model("shufflemixer", scale=4)) == total == 410_579


@needs_reference
@pytest.mark.parametrize(("name", "scale"), sorted(EXPECTED_PARAMS))
def test_state_dict_matches_official(name, scale):
    key = f"{name}_x{scale}"
    official = official_state_dicts()[key]
    model = srlab.create_model(name, scale=scale)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape, *_ in official["state_dict"]]
    assert paper_parameter_count(model) == official["param_count"] == official["param_count_trainable"]


@pytest.mark.parametrize(("name", "scale"), sorted(FVCORE_GMACS))
def test_macs_720p(name, scale):
    model = srlab.create_model(name, scale=scale)
    gmacs = macs_720p(model) / 1e9
    # srlab counts the bilinear base as fvcore does (4 per output element): the figures agree to rounding.
    assert abs(gmacs - FVCORE_GMACS[(name, scale)]) <= 0.005
    if (name, scale) in PUBLISHED_GMACS:
        assert round(gmacs) == PUBLISHED_GMACS[(name, scale)]


def test_model_info():
    for name in VARIANTS:
        info = model_info(name)
        assert info.scales == SCALES
        assert info.size_multiple == 1
        assert not info.reparameterizable
    # 1 (head) + 5 blocks x (two depth-wise KxK + one 3x3) + HR tail/bilinear + spare.
    assert model_info("shufflemixer_tiny").receptive_radius >= 1 + 5 * 3 + 2
    assert model_info("shufflemixer").receptive_radius >= 1 + 5 * 7 + 2


@pytest.mark.parametrize("scale", SCALES)
def test_without_residual_output_is_bilinear_upsampling(scale):
    """[0,1] in and out, no mean shift: a zero tail leaves the bilinear base (align_corners=False)."""
    model = srlab.create_model("shufflemixer_tiny", scale=scale).eval()
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        x = torch.rand(1, 3, 9, 13)
        y = model(x)
    expected = F.interpolate(x, size=(9 * scale, 13 * scale), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
    corner_aligned = F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True)
    assert not torch.allclose(y, corner_aligned)


def test_channel_shuffle_is_the_official_permutation():
    """einops 'b (g d) h w -> b (d g) h w' with g=8: output channel d*8+g holds input channel g*D+d."""
    x = torch.arange(32.0).view(1, 32, 1, 1).expand(2, 32, 3, 5)
    y = channel_shuffle(x, 8)
    groups, depth = 8, 4
    expected = [g * depth + d for d in range(depth) for g in range(groups)]
    assert y[0, :, 0, 0].tolist() == expected
    assert torch.equal(y[1], y[0])


def test_layer_norm_matches_official_formula():
    """Official BiasFree_LayerNorm: (x - mean) / sqrt(var + 1e-5) * weight over channels, per pixel."""
    torch.manual_seed(0)
    norm = channel_layer_norm(16)
    with torch.no_grad():
        norm.body.weight.normal_()
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64) * 3 + 1
    norm.double()
    mu = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    expected = (x - mu) / torch.sqrt(var + 1e-5) * norm.body.weight.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), expected, rtol=1e-12, atol=1e-12)
    assert [k for k, _ in norm.named_parameters()] == ["body.weight"]


def _perturbed(name, scale):
    torch.manual_seed(scale)
    model = srlab.create_model(name, scale=scale).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_round_trip(tmp_path, name):
    model = _perturbed(name, 4)
    path = tmp_path / "m.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model(name, scale=4, checkpoint=path)
    assert not loaded.training
    sd_a, sd_b = model.state_dict(), loaded.state_dict()
    assert list(sd_a) == list(sd_b)
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_basicsr_checkpoint_loads_strictly(tmp_path):
    """The official releases are BasicSR files {'params': state_dict}; the official key names load as is."""
    model = _perturbed("shufflemixer", 3)
    path = tmp_path / "shufflemixer_base_x3.pth"
    torch.save({"params": model.state_dict()}, path)
    loaded = srlab.create_model("shufflemixer", scale=3, checkpoint=path)
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


# Published PSNR/SSIM of the base model (paper-results.md §1; BasicSR Y-channel protocol).
PUBLISHED = {
    (2, "Set5"): (38.01, 0.9606),
    (3, "Set5"): (34.40, 0.9272),
    (4, "Set5"): (32.21, 0.8953),
    (4, "Set14"): (28.66, 0.7827),
}


@needs_weights
@pytest.mark.parametrize(("scale", "dataset"), sorted(PUBLISHED))
def test_official_weights_reproduce_published(scale, dataset):
    from srlab.data.datasets import discover_pairs
    from srlab.inference.evaluate import evaluate_folder

    path = WEIGHTS / f"shufflemixer_base_x{scale}.pth"
    model = srlab.create_model("shufflemixer", scale=scale, checkpoint=path)
    result = evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, scale))
    psnr, ssim = PUBLISHED[(scale, dataset)]
    assert abs(result.psnr_y - psnr) <= 0.01
    assert abs(result.ssim_y - ssim) <= 0.0005
