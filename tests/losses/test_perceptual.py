"""VGG19 features (torchvision layout), the content loss and the texture loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective
from srlab.losses.features import IMAGENET_MEAN, IMAGENET_STD, VGG19_LAYERS, VGG19Features
from srlab.losses.perceptual import gram_matrix

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def _inputs(sr, hr) -> LossInputs:
    return LossInputs(sr=sr, hr=hr, lr=hr[..., ::2, ::2], scale=2)


def _normalise(x):
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_layer_names_follow_torchvision_indices():
    assert len(VGG19_LAYERS) == 16 * 2 + 5
    assert VGG19_LAYERS["conv1_1"] == 0 and VGG19_LAYERS["relu1_1"] == 1 and VGG19_LAYERS["pool1"] == 4
    assert VGG19_LAYERS["conv3_4"] == 16 and VGG19_LAYERS["conv4_1"] == 19
    assert VGG19_LAYERS["conv5_4"] == 34 and VGG19_LAYERS["relu5_4"] == 35 and VGG19_LAYERS["pool5"] == 36
    assert tuple(VGG19_LAYERS[f"conv{b}_{c}"] for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
                 for c in range(1, n + 1)) == CONV_INDICES


def test_parameter_names_and_shapes_are_torchvision_vgg19():
    model = VGG19Features(layers=["pool5"], random_init=True)
    state = model.state_dict()
    assert set(state) == {f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.34.weight"].shape == (512, 512, 3, 3)
    assert not any(p.requires_grad for p in model.parameters())


def test_torchvision_checkpoint_loads_strictly(tmp_path):
    source = VGG19Features(layers=["pool5"], random_init=True, seed=1)
    state = dict(source.state_dict())
    state["classifier.6.weight"] = torch.zeros(2, 2)  # torchvision's head: dropped
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    model = VGG19Features(layers=["conv2_2"], weights=path)
    assert len(model.features) == VGG19_LAYERS["conv2_2"] + 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key

    broken = dict(state)
    del broken["features.34.bias"]
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(SrlabError, match=r"not torchvision's VGG19 checkpoint \(missing \['features.34.bias'\]"):
        VGG19Features(layers=["conv2_2"], weights=tmp_path / "missing.pth")
    extra = dict(state)
    extra["features.99.weight"] = torch.zeros(1)
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(SrlabError, match="unexpected"):
        VGG19Features(layers=["conv2_2"], weights=tmp_path / "extra.pth")


def test_missing_weights_say_which_file_to_get(tmp_path):
    with pytest.raises(SrlabError, match=r"vgg19-dcbb9e9d\.pth .* feature_weights=PATH"):
        build_objective("content")
    with pytest.raises(SrlabError, match="texture loss needs VGG19"):
        build_objective("texture")
    with pytest.raises(SrlabError, match=r"not found at .*nothere\.pth.*vgg19-dcbb9e9d\.pth"):
        build_objective("content", params={"feature_weights": str(tmp_path / "nothere.pth")})
    with pytest.raises(SrlabError, match="not both"):
        build_objective("content", params={"feature_weights": str(tmp_path / "x.pth"), "random_init": True})
    with pytest.raises(SrlabError, match="unknown VGG19 layer 'conv6_1'"):
        build_objective("content", params={"random_init": True, "layers": ["conv6_1"]})
    with pytest.raises(SrlabError, match="criterion"):
        build_objective("content", params={"random_init": True, "criterion": "l3"})
    with pytest.raises(SrlabError, match="layer_weights must be a list of 1"):
        build_objective("content", params={"random_init": True, "layer_weights": [1.0, 2.0]})


def test_features_use_imagenet_normalisation():
    model = VGG19Features(layers=["conv1_1", "relu1_1"], random_init=True)
    x = torch.rand(1, 3, 8, 8)
    conv, relu = model(x)
    expected = F.conv2d(_normalise(x), model.features[0].weight, model.features[0].bias, padding=1)
    torch.testing.assert_close(conv, expected)
    torch.testing.assert_close(relu, expected.clamp_min(0))


def test_content_loss_values():
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    l1 = build_objective("content", params={"random_init": True, "layers": ["conv1_1"]})
    w, b = l1.extractor.features[0].weight, l1.extractor.features[0].bias
    f_sr = F.conv2d(_normalise(sr), w, b, padding=1)
    f_hr = F.conv2d(_normalise(hr), w, b, padding=1)
    assert l1(_inputs(sr, hr)).item() == pytest.approx((f_sr - f_hr).abs().mean().item(), rel=1e-5)
    assert l1(_inputs(hr, hr)).item() == 0.0
    l2 = build_objective("content", params={"random_init": True, "layers": ["conv1_1"], "criterion": "l2"})
    assert l2(_inputs(sr, hr)).item() == pytest.approx((f_sr - f_hr).square().mean().item(), rel=1e-5)
    two = build_objective("content", params={"random_init": True, "layers": ["conv1_1", "relu1_1"],
                                             "layer_weights": [2.0, 0.5]})
    expected = 2.0 * (f_sr - f_hr).abs().mean() + 0.5 * (f_sr.relu() - f_hr.relu()).abs().mean()
    assert two(_inputs(sr, hr)).item() == pytest.approx(expected.item(), rel=1e-5)


def test_content_default_layer_runs_and_trains_only_sr():
    loss = build_objective("content", params={"random_init": True})  # conv5_4, before the ReLU
    assert loss.extractor.indices == (34,) and len(loss.extractor.features) == 35
    sr = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(_inputs(sr, torch.rand(1, 3, 16, 16))).backward()
    assert sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_gram_matrix_hand_computed():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C = 2, H * W = 2
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram_matrix(f)[0], expected)


def test_texture_loss_value():
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    loss = build_objective("texture", params={"random_init": True, "layers": ["relu1_1"]})
    w, b = loss.extractor.features[0].weight, loss.extractor.features[0].bias
    g_sr = gram_matrix(F.conv2d(_normalise(sr), w, b, padding=1).relu())
    g_hr = gram_matrix(F.conv2d(_normalise(hr), w, b, padding=1).relu())
    assert loss(_inputs(sr, hr)).item() == pytest.approx((g_sr - g_hr).square().mean().item(), rel=1e-5)
    # the Gram matrix forgets where things are: a shifted copy of a periodic texture costs ~nothing
    stripes = (torch.arange(16) % 4 < 2).float().view(1, 1, 1, 16).expand(1, 3, 16, 16).contiguous()
    shifted = torch.roll(stripes, 2, dims=-1)
    assert loss(_inputs(shifted, stripes)).item() < 0.05 * loss(_inputs(torch.rand(1, 3, 16, 16), stripes)).item()


@pytest.mark.parametrize("name,layers", [("content", ["conv2_2"]), ("texture", ["conv1_1", "conv2_1"])])
def test_adam_on_a_learnable_image_reduces_the_loss(name, layers):
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 16, 16)
    sr = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss = build_objective(name, params={"random_init": True, "layers": layers})
    optimizer = torch.optim.Adam([sr], lr=2e-2)
    values = []
    for _ in range(25):
        value = loss(_inputs(sr, hr))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < 0.7 * values[0]
