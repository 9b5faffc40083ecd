"""DRCN (CVPR 2016): counts, MACs, structure, shapes, gradients, round trip, Y-only colour.

No official PyTorch weights exist (the authors released MATLAB test code only) and
official-state-dicts.json has no DRCN entry, so there is no PSNR check here. The model is heavy
(~19.5 M MACs per HR pixel), so the inputs are small.
"""

import pytest
import torch

import srlab
import srlab.models.drcn  # noqa: F401  (registers the models)
from srlab.data.resize import bicubic_upscale
from srlab.metrics.color import rgb_to_ycbcr
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.weights import save_weights
from srlab.models.complexity import macs_720p

SCALES = (2, 3, 4)
CONV_WEIGHTS = 9 * 256 + 3 * 9 * 256 * 256 + 9 * 256  # embedding 2, inference 1, reconstruction 2
BIASES = 256 + 3 * 256 + 1


# --- 1. parameter counts ------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
def test_parameter_counts(scale):
    """Published 1,774K (SMSR / IMDN / CARN tables) = conv weights + the 16 ensemble weights."""
    model = srlab.create_model("drcn", scale=scale)
    assert CONV_WEIGHTS == 1_774_080
    assert count_parameters(model) == 1_775_121 == CONV_WEIGHTS + BIASES + 16
    n = paper_parameter_count(model)
    assert n == 1_774_096 and round(n / 1000) == 1774
    # With biases it would be 1,775K: the tables count weights only (as for VDSR's 665K).
    assert round(count_parameters(model) / 1000) == 1775


def test_weights_are_shared_across_recursions():
    model = srlab.create_model("drcn", scale=2)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5  # embedding 2 + ONE recursive conv + reconstruction 2
    assert model.recursions == 16 and model.ensemble_weight.shape == (16,)
    assert sorted(model.state_dict()) == sorted(
        [f"embedding.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
        + ["inference.weight", "inference.bias", "ensemble_weight"]
        + [f"reconstruction.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
    )


# --- MACs ---------------------------------------------------------------------------------------
def test_macs_720p():
    """CARN's 17,974.3 G runs the reconstruction net for all 16 predictions (what forward does);
    SMSR's 9,788.7 G is the count with a single reconstruction (the last recursion only)."""
    model = srlab.create_model("drcn", scale=2)
    per_pixel_embed = 9 * 256 + 9 * 256 * 256
    per_pixel_rec = 9 * 256 * 256 + 9 * 256
    per_pixel_inf = 9 * 256 * 256
    pixels = 1280 * 720
    macs = macs_720p(model)
    assert macs == pixels * (per_pixel_embed + 16 * per_pixel_inf + 16 * per_pixel_rec)
    assert round(macs / 1e9, 1) == 17_974.3
    assert round(pixels * (per_pixel_embed + 16 * per_pixel_inf + per_pixel_rec) / 1e9, 1) == 9_788.7
    # x4 gives the same 1280x720 output; x3's 427x240 input gives 1281x720.
    assert macs_720p(srlab.create_model("drcn", scale=4)) == macs


# --- 3. shapes, gradients, round trip -------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
def test_forward_shape_odd_size(scale):
    model = srlab.create_model("drcn", scale=scale).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 5, 7))
    assert out.shape == (1, 3, 5 * scale, 7 * scale)
    assert torch.isfinite(out).all()


def test_recursive_supervision_outputs():
    model = srlab.create_model("drcn", scale=2).eval()
    y = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        preds = model.predictions(y)
        final = model.ensemble(y)
    assert len(preds) == 16 and all(p.shape == y.shape for p in preds)
    expected = sum(w * p for w, p in zip(model.ensemble_weight, preds))
    torch.testing.assert_close(final, expected, atol=1e-6, rtol=0)


def test_round_trip(tmp_path):
    model = srlab.create_model("drcn", scale=3).eval()
    with torch.no_grad():
        model.ensemble_weight.add_(torch.randn(16) * 0.01)
    path = tmp_path / "drcn_x3.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model("drcn", scale=3, checkpoint=path)
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_input_is_not_modified():
    x = torch.rand(1, 3, 5, 7)
    x0 = x.clone()
    srlab.create_model("drcn", scale=2).eval()(x)
    assert torch.equal(x, x0)


# --- Y-only design and the skip connection ----------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
def test_chroma_is_bicubic(scale):
    model = srlab.create_model("drcn", scale=scale).eval()
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        out = rgb_to_ycbcr(model(x))
    bicubic = rgb_to_ycbcr(bicubic_upscale(x, scale))
    torch.testing.assert_close(out[:, 1:], bicubic[:, 1:], atol=1e-5, rtol=0)
    assert (out[:, :1] - bicubic[:, :1]).abs().max() > 1e-4  # Y does come from the network


def test_zero_residual_gives_bicubic():
    """With the reconstruction's last conv zeroed every y_d is the bicubic input; the initial
    weights (1/16 each) sum to one, so the output is exactly bicubic."""
    model = srlab.create_model("drcn", scale=2).eval()
    with torch.no_grad():
        model.reconstruction[2].weight.zero_()
        model.reconstruction[2].bias.zero_()
        x = torch.rand(1, 3, 5, 7)
        torch.testing.assert_close(model(x), bicubic_upscale(x, 2), atol=1e-5, rtol=0)
