"""ClassSR through the adaptive engine: the official routing and merge, one-route outputs, the cost knob
and the MACs it spends (fresh weights: no ClassSR checkpoint is released under a licence here)."""

import numpy as np
import pytest
import torch

import srlab
from srlab.adaptive import adaptive_upscale, blend_patches, split_patches
from srlab.adaptive.classsr import ClassSRRouting, classsr
from srlab.errors import SrlabError
from srlab.models.complexity import count_macs


def _image(height: int = 75, width: int = 90) -> torch.Tensor:
    """Flat on the left, a smooth ramp in the middle, noise on the right: patches of every difficulty."""
    g = torch.Generator().manual_seed(0)
    image = torch.full((3, height, width), 0.4)
    image[:, :, width // 3:] = torch.linspace(0, 1, width - width // 3)
    image[:, :, 2 * width // 3:] = torch.rand(3, height, width - 2 * width // 3, generator=g)
    return image


def _model(name: str = "classsr_fsrcnn") -> torch.nn.Module:
    torch.manual_seed(0)
    return srlab.create_model(name, scale=4).eval()


def _force_logits(model: torch.nn.Module, logits: list[float]) -> None:
    """Make the classifier output ``logits`` for every patch."""
    with torch.no_grad():
        model.classifier.lastOut.weight.zero_()
        model.classifier.lastOut.bias.copy_(torch.tensor(logits))


def _spread_classifier(model: torch.nn.Module, lr: torch.Tensor) -> None:
    """A classifier that tells the patches of ``lr`` apart (fresh weights give every patch the same
    class): logits ``(-t, 1, t)``, ``t`` the patch's standardised CondNet feature along the direction
    from the flat corner's patch to the noisy corner's, so roughly a third goes to each branch."""
    patches, _ = split_patches(lr[None], 32, 28)
    with torch.no_grad():
        for conv in model.classifier.CondNet:
            if isinstance(conv, torch.nn.Conv2d):
                conv.weight.mul_(10)  # features of order 0.1 instead of 1e-6
        features = model.classifier.CondNet(patches).mean(dim=(2, 3))
        direction = features[-1] - features[0]
        projection = features @ direction
        gain = 1.5 / projection.std()
        model.classifier.lastOut.weight.copy_(torch.outer(torch.tensor([-1.0, 0.0, 1.0]), direction * gain))
        centre = float(projection.median() * gain)
        model.classifier.lastOut.bias.copy_(torch.tensor([centre, 1.0, -centre]))


def _official_loop(model: torch.nn.Module, lr: torch.Tensor, patch: int = 32, step: int = 28) -> tuple[np.ndarray, list[int]]:
    """ClassSR_model.test transcribed: per patch, classifier argmax and its branch, clamp and round to
    8 bits; then combine: sum on a float32 canvas of 0..255 values, halve the overlap strips."""
    scale = model.scale
    _, h, w = lr.shape
    tops, lefts = range(0, h - patch + 1, step), range(0, w - patch + 1, step)
    out_h, out_w = (tops[-1] + patch) * scale, (lefts[-1] + patch) * scale
    canvas = np.zeros((out_h, out_w, 3), np.float32)
    flags = []
    with torch.no_grad():
        for top in tops:
            for left in lefts:
                x = lr[None, :, top:top + patch, left:left + patch]
                flag = int(torch.max(model.classifier(x), 1)[1])
                flags.append(flag)
                sr = model.branches[flag](x)[0].clamp(0, 1)
                sr8 = (sr.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
                canvas[top * scale:(top + patch) * scale, left * scale:(left + patch) * scale] += sr8
    for j in range(1, len(lefts)):
        canvas[:, j * step * scale:j * step * scale + (patch - step) * scale] /= 2
    for i in range(1, len(tops)):
        canvas[i * step * scale:i * step * scale + (patch - step) * scale] /= 2
    return canvas, flags


@pytest.mark.parametrize("name", ["classsr_fsrcnn", "classsr_carn"])
def test_the_engine_routes_and_merges_as_the_official_test(name):
    model = _model(name)
    lr = _image()
    _spread_classifier(model, lr)
    sr, stats = adaptive_upscale(classsr(model), lr[None])
    official, flags = _official_loop(model, lr)
    assert stats.route_counts == tuple(np.bincount(flags, minlength=3))
    assert sum(count > 0 for count in stats.route_counts) >= 2  # the routing is exercised
    assert stats.grid_hw == (2, 3) and stats.out_hw == official.shape[:2] == (240, 352)
    assert (sr[0].permute(1, 2, 0).numpy() * 255 - official).__abs__().max() <= 1e-3


@pytest.mark.parametrize("route", [0, 1, 2])
def test_every_patch_on_one_route_is_that_branchs_static_patchwise_output(route):
    model = _model()
    _force_logits(model, [10.0 * (i == route) for i in range(3)])
    lr = _image()[None]
    method = classsr(model)
    sr, stats = adaptive_upscale(method, lr)
    assert stats.route_counts == tuple(6 * (i == route) for i in range(3))
    patches, grid = split_patches(lr, 32, 28)
    with torch.no_grad():
        static = blend_patches(torch.round(model.branches[route](patches).clamp(0, 1) * 255) / 255, grid, 4)
    assert torch.equal(sr, static)
    assert stats.macs_spent == 6 * (count_macs(model.branches[route], (32, 32)) + method.router_macs((32, 32)))


def test_routing_is_deterministic_and_k0_is_the_classifiers_argmax():
    model = _model()
    method = classsr(model)
    patches, _ = split_patches(_image(120, 150)[None], 32, 28)
    with torch.no_grad():
        first, second = method.route(patches), method.route(patches)
        assert torch.equal(first, second) and first.dtype == torch.long
        assert torch.equal(first, model.classifier(patches).argmax(dim=1))


def test_the_cost_exponent_moves_patches_to_lighter_branches():
    model = _model()
    _force_logits(model, [0.0, 0.1, 0.2])  # the classifier barely prefers the heavy branch
    lr = _image()[None]
    counts = {}
    for k in (0.0, 0.5, 4.0):
        counts[k] = adaptive_upscale(ClassSRRouting(model, knob=k), lr)[1].route_counts
    assert counts[0.0] == (0, 0, 6)  # official: argmax
    # log costs of FSRCNN 16 / 36 / 56 on a 32x32 patch: log(141.3/467.9) = -1.197, log(304.6/467.9) = -0.429;
    # k = 0.5: scores 0.599, 0.315, 0.2 -> net1
    assert counts[0.5] == counts[4.0] == (6, 0, 0)


def test_the_knob_sweep_trades_macs():
    model = _model()
    lr = _image(150, 180)[None]
    _spread_classifier(model, lr[0])
    spent, full = [], None
    for k in ClassSRRouting.knob_sweep:
        _, stats = adaptive_upscale(classsr(model, knob=k), lr)
        spent.append(stats.macs_spent)
        full = stats.macs_full
        assert stats.macs_spent <= stats.macs_full + stats.router_macs
    assert spent == sorted(spent)  # cheap to expensive
    assert spent[0] < full  # light routes taken at the cheap end
    assert ClassSRRouting.knob_sweep[-1] == 0.0


def test_route_costs_are_the_branches_macs():
    model = _model("classsr_carn")
    method = classsr(model)
    macs = [method.route_macs(i, (32, 32)) for i in range(3)]
    assert macs == [count_macs(net, (32, 32)) for net in model.branches]
    assert macs[0] < macs[1] < macs[2]
    assert method.route_names() == ("net1 (simple)", "net2 (medium)", "net3 (hard)")
    assert method.router_macs((32, 32)) == 8 * 8 * 128 * 3 * 16 + 3 * 64 * 128 * 128 + 64 * 128 * 32 + 32 * 3


def test_a_model_that_is_not_classsr_is_a_one_line_error():
    with pytest.raises(SrlabError, match="adaptive method classsr runs a ClassSR model .* got FSRCNN"):
        classsr(srlab.create_model("fsrcnn_etds", scale=4))


def test_a_knob_out_of_range_is_one_line():
    with pytest.raises(SrlabError, match=r"k of adaptive method ClassSRRouting must be a number in \[0.0, 16.0\]"):
        classsr(_model(), knob=-1.0)


def test_whole_image_upscaling_covers_every_pixel():
    model = _model()
    lr = _image()[None]
    sr, stats = adaptive_upscale(classsr(model), lr, whole_image=True)
    assert sr.shape == (1, 3, 300, 360) and stats.out_hw == (300, 360)
    assert torch.isfinite(sr).all() and 0 <= sr.min() and sr.max() <= 1
