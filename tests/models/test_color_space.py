"""Colour spaces (srlab.models.color_space, srlab.metrics.lab): the conversions against scikit-image (an
independent implementation), exact round trips, and the wrapper that makes a model work in a space."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import srlab
from srlab.data.resize import imresize
from srlab.errors import SrlabError
from srlab.metrics.lab import lab_to_rgb, rgb_to_lab
from srlab.models.color_space import (
    ColorSpaceModel, build_in_color_space, color_space_names, color_transform, in_color_space,
)
from srlab.models.registry import build_model, spec_of
from srlab.models.weights import save_weights

skcolor = pytest.importorskip("skimage.color")

SPACES = ("rgb", "ycbcr", "y", "lab", "learned")


def _test_colours(dtype: torch.dtype) -> torch.Tensor:
    """(3, 1, N): the 8 corners of the RGB cube, every combination of 0, 0.04045 (the sRGB seam), 0.5 and
    1, dark colours near the Lab threshold, then random colours."""
    levels = (0.0, 0.04045, 0.5, 1.0)
    grid = torch.tensor(list(itertools.product(levels, repeat=3)), dtype=torch.float64)
    dark = torch.rand(200, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.02
    rand = torch.rand(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.cat((grid, dark, rand)).T.unsqueeze(1).to(dtype)


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


def test_the_registry_holds_the_five_spaces_of_the_contract():
    assert color_space_names() == SPACES


def test_lab_agrees_with_scikit_image_both_ways():
    rgb = _test_colours(torch.float64)
    lab = rgb_to_lab(rgb)
    # skimage rounds the CIE constants (0.008856, 7.787): up to 500 * 3.3e-7 apart where X, Y or Z / white
    # lies below the threshold (0.008856), 1e-10 elsewhere.
    np.testing.assert_allclose(_hwc(lab), skcolor.rgb2lab(_hwc(rgb)), rtol=0, atol=2e-4)
    bright = rgb[:, :, (rgb > 0.25).all(dim=0)[0]]
    np.testing.assert_allclose(_hwc(rgb_to_lab(bright)), skcolor.rgb2lab(_hwc(bright)), rtol=0, atol=1e-10)
    np.testing.assert_allclose(_hwc(lab_to_rgb(lab)), skcolor.lab2rgb(_hwc(lab)), rtol=0, atol=2e-4)


def test_ycbcr_agrees_with_scikit_image():
    rgb = _test_colours(torch.float64)
    coords = color_transform("ycbcr").to_space(rgb)
    np.testing.assert_allclose(_hwc(coords) * 255, skcolor.rgb2ycbcr(_hwc(rgb)), rtol=0, atol=1e-10)


def test_lab_coordinates_are_scaled_into_the_unit_range():
    coords = color_transform("lab").to_space(_test_colours(torch.float64))
    assert coords.min() >= 0 and coords.max() <= 1
    white = color_transform("lab").to_space(torch.ones(3, 1, 1, dtype=torch.float64))
    assert white[0].item() == pytest.approx(1.0, abs=1e-12)


def _perturbed_learned():
    space = color_transform("learned")
    with torch.no_grad():
        space.matrix.copy_(torch.tensor([[0.9, 0.3, -0.1], [0.2, 1.1, 0.05], [-0.3, 0.1, 0.7]]))
        space.bias.copy_(torch.tensor([0.1, -0.2, 0.05]))
    return space


@pytest.mark.parametrize("name", SPACES)
# float32: Lab's cube roots and powers round differently per CPU's vector maths (4.02e-6 on an AMD Zen 4,
# under 4e-6 on an Intel Xeon): 1e-5 is about 80 float32 steps at 1.0.
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_round_trips_are_exact(name, dtype, tolerance):
    rgb = _test_colours(dtype)
    space = _perturbed_learned() if name == "learned" else color_transform(name)
    back = space.to_rgb(space.to_space(rgb))
    assert back.dtype == dtype
    assert (back - rgb).abs().max().item() < tolerance


@pytest.mark.parametrize("name", SPACES)
def test_the_conversions_are_finite_and_differentiable_out_of_range(name):
    coords = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5], dtype=torch.float64)
    x = torch.stack(torch.meshgrid(coords, coords, coords, indexing="ij")).reshape(3, 1, -1).requires_grad_()
    space = color_transform(name).double()
    out = space.to_rgb(x) + space.to_space(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def _model(color_space: str = "rgb"):
    return build_in_color_space("rdsr_s", scale=2, args={"channels": 8, "num_blocks": 1, "color_space": color_space})


def test_rgb_is_the_bare_model_and_a_wrapper_with_the_identity_computes_the_same():
    torch.manual_seed(0)
    bare = build_model("rdsr_s", scale=2, args={"channels": 8, "num_blocks": 1})
    assert in_color_space(bare, "rgb") is bare
    assert "color_space" not in spec_of(_model("rgb")).args
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(ColorSpaceModel(bare, color_transform("rgb"))(x), bare(x))
        # the learned space starts at the identity, exactly
        assert torch.equal(ColorSpaceModel(bare, color_transform("learned"))(x), bare(x))


def test_the_wrapper_runs_the_network_in_the_space():
    torch.manual_seed(0)
    bare = build_model("rdsr_s", scale=2, args={"channels": 8, "num_blocks": 1}).eval()
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    bare = bare.double()
    lab = color_transform("lab")
    with torch.no_grad():
        expected = lab.to_rgb(bare(lab.to_space(x)))
        assert torch.equal(ColorSpaceModel(bare, lab)(x), expected)


def test_y_predicts_luma_with_the_network_and_takes_bicubic_chroma():
    torch.manual_seed(0)
    bare = build_model("rdsr_s", scale=2, args={"channels": 8, "num_blocks": 1}).eval().double()
    model = ColorSpaceModel(bare, color_transform("y"))
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        sr_ycbcr = color_transform("ycbcr").to_space(model(x))
        ycbcr = color_transform("ycbcr").to_space(x)
        luma = bare(ycbcr[:, :1].expand(-1, 3, -1, -1)).mean(dim=1)
    torch.testing.assert_close(sr_ycbcr[:, 0], luma, rtol=0, atol=1e-12)
    torch.testing.assert_close(sr_ycbcr[:, 1:], imresize(ycbcr[:, 1:], scale=2), rtol=0, atol=1e-12)


def test_y_declares_the_reach_of_its_bicubic_chroma():
    bare = build_model("espcn", scale=2)
    radius = spec_of(bare).info.receptive_radius
    wrapped = in_color_space(bare, "y")
    assert spec_of(wrapped).info.receptive_radius >= max(radius, 2)
    assert spec_of(wrapped).info.receptive_radius % spec_of(wrapped).info.size_multiple == 0


@pytest.mark.parametrize("name", SPACES)
def test_a_checkpoint_records_the_space_and_reloads_into_the_same_wrapper(name, tmp_path):
    torch.manual_seed(0)
    model = _model(name)
    if name == "learned":
        model.space.load_state_dict(_perturbed_learned().state_dict())
    save_weights(tmp_path / "w.safetensors", model)
    loaded = srlab.create_model(checkpoint=tmp_path / "w.safetensors")
    assert type(loaded) is type(model) and spec_of(loaded).args == spec_of(model).args
    if name != "rgb":
        assert spec_of(loaded).args["color_space"] == name
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_a_bad_space_is_a_one_line_error_listing_the_choices():
    with pytest.raises(SrlabError, match=r"unknown color_space 'hsv': use one of rgb\|ycbcr\|y\|lab\|learned"):
        _model("hsv")
