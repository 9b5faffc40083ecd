"""The arbitrary-scale models (Meta-RDN, EDSR-baseline-LIIF, EDSR-baseline-LTE): any real scale >= 1.

Equality with the official code was checked once by loading srlab's state dicts into yinboc/liif,
jaewon-lee-b/lte and XuecaiHu/Meta-SR-Pytorch (random weights, CPU): LIIF and LTE are bit-identical
at every size tried, Meta-RDN equal within 2.4e-6 (float32 summation order). Here: the official
parameter names and counts, sizes, gradients, determinism and the scale/size consistency.
"""

import math

import pytest
import torch

import srlab
from srlab.errors import SrlabError
from srlab.layers.upsamplers.liif import grid_cells, grid_coords
from srlab.models import count_parameters
from srlab.models.weights import save_weights

NAMES = ["liif_edsr_baseline", "lte_edsr_baseline", "metasr_rdn"]
SMALL = {
    "liif_edsr_baseline": {"channels": 8, "num_blocks": 1, "hidden": 16, "depth": 2},
    "lte_edsr_baseline": {"channels": 8, "num_blocks": 1, "hidden_dim": 16, "hidden": 16, "depth": 2},
    "metasr_rdn": {"channels": 8, "num_blocks": 2, "num_convs": 2, "growth": 8},
}
# Trainable parameters of the official structures (the two frozen MeanShift layers add 24 more).
OFFICIAL_COUNTS = {"liif_edsr_baseline": 1_567_299, "lte_edsr_baseline": 1_714_243, "metasr_rdn": 22_419_072}
# A few names from each official state dict (released checkpoints' ``sd`` / ``model_1000.pt``).
OFFICIAL_KEYS = {
    "liif_edsr_baseline": ["encoder.sub_mean.weight", "encoder.head.0.weight", "encoder.body.15.body.2.bias",
                           "encoder.body.16.weight", "imnet.layers.0.weight", "imnet.layers.8.bias"],
    "lte_edsr_baseline": ["encoder.add_mean.bias", "coef.weight", "freq.bias", "phase.weight",
                          "imnet.layers.6.weight"],
    "metasr_rdn": ["sub_mean.weight", "SFENet1.weight", "SFENet2.bias", "RDBs.15.convs.7.conv.0.weight",
                   "RDBs.0.LFF.weight", "GFF.0.weight", "GFF.1.bias", "P2W.meta_block.0.weight",
                   "P2W.meta_block.2.bias"],
}


def small(name, scale):
    torch.manual_seed(0)
    return srlab.create_model(name, scale=scale, args=SMALL[name]).eval()


@pytest.mark.parametrize("name", NAMES)
def test_the_official_parameter_names_and_counts(name):
    model = srlab.create_model(name, scale=2.5)
    assert count_parameters(model, trainable_only=True) == OFFICIAL_COUNTS[name]
    assert count_parameters(model) == OFFICIAL_COUNTS[name] + 24
    keys = model.state_dict().keys()
    assert set(OFFICIAL_KEYS[name]) <= set(keys)
    assert sum(k.endswith("phase.bias") for k in keys) == 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1.5, 2.7, 4, 6])
def test_output_has_matlabs_size_for_any_scale(name, scale):
    model = small(name, scale)
    lr = torch.rand(2, 3, 7, 10)
    with torch.no_grad():
        out = model(lr)
    assert out.shape == (2, 3, math.ceil(scale * 7), math.ceil(scale * 10))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_an_explicit_size_wins_and_the_scale_can_be_changed(name):
    model = small(name, 2)
    lr = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        assert model(lr, size=(13, 11)).shape == (1, 3, 13, 11)
        model.scale = 2.7  # 2.7 * 5 is 13.5 -> 14 columns; 2.7 * 6 is 16.2 -> 17 rows
        assert model(lr).shape == (1, 3, 17, 14)


@pytest.mark.parametrize("name", NAMES)
def test_integer_scale_equals_the_explicit_integer_size_and_is_deterministic(name):
    model = small(name, 3)
    lr = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        first = model(lr)
        assert torch.equal(first, model(lr, size=(15, 18)))
        assert torch.equal(first, model(lr))


@pytest.mark.parametrize("name", ["liif_edsr_baseline", "lte_edsr_baseline"])
def test_queries_at_sampled_pixels_equal_the_rendered_image(name):
    # Training reads sampled HR pixels (coordinates + cells); they must be the rendered image's pixels,
    # whatever the query chunk.
    model = small(name, 2.5)
    lr = torch.rand(1, 3, 6, 8)
    height, width = 15, 20
    with torch.no_grad():
        full = model(lr)
        model.query_chunk = 7
        chunked = model(lr)
        coord = grid_coords(height, width).unsqueeze(0)
        picked = torch.tensor([0, 17, 150, 299])
        rgb = model.query(lr, coord[:, picked], grid_cells(coord, height, width)[:, picked])
    torch.testing.assert_close(chunked, full, rtol=0, atol=1e-6)
    expected = full.flatten(2)[:, :, picked].permute(0, 2, 1)
    torch.testing.assert_close(rgb, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_trainable_parameter_at_a_non_integer_scale(name):
    model = small(name, 1.7).train()
    model(torch.rand(1, 3, 6, 6)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert missing == []


def test_integer_only_models_refuse_a_non_integer_scale():
    with pytest.raises(SrlabError, match=r"model 'edsr_baseline' does not support scale 2.5: use one of \[2, 3, 4\]"):
        srlab.create_model("edsr_baseline", scale=2.5)


@pytest.mark.parametrize("scale", [0.5, float("nan"), float("inf"), True])
def test_arbitrary_scale_models_refuse_scales_below_one(scale):
    with pytest.raises(SrlabError, match=r"model 'liif_edsr_baseline' takes any real scale >= 1"):
        srlab.create_model("liif_edsr_baseline", scale=scale)


def test_an_integral_real_scale_is_recorded_as_an_int():
    assert srlab.models.spec_of(srlab.create_model("liif_edsr_baseline", scale=4.0, args=SMALL["liif_edsr_baseline"])).scale == 4


def test_a_checkpoint_saved_at_a_real_scale_records_it(tmp_path):
    save_weights(tmp_path / "m.safetensors", small("lte_edsr_baseline", 2.5))
    model = srlab.create_model(checkpoint=tmp_path / "m.safetensors")
    assert srlab.models.spec_of(model).scale == 2.5 and model.scale == 2.5
    rescaled = srlab.create_model(checkpoint=tmp_path / "m.safetensors", scale=3)
    assert srlab.models.spec_of(rescaled).scale == 3 and rescaled(torch.rand(1, 3, 4, 5)).shape == (1, 3, 12, 15)
