"""rdsr_adaptive through the adaptive engine: routing by edge score and price, calibration, exactness."""

import pytest
import torch
import torch.nn.functional as F

import srlab
from srlab.adaptive import adaptive_upscale, blend_patches, split_patches
from srlab.adaptive.rdsr import LEVELS2, RdsrExitRouting, calibrate_router, exit_errors, rdsr_adaptive
from srlab.adaptive.reference import StaticRoutes, mean_gradient_magnitude
from srlab.errors import SrlabError
from srlab.models import count_macs

SMALL = {"channels": 8, "num_blocks": 2, "ca_reduction": 4, "router_bins": 3}


def _model(scale=2):
    torch.manual_seed(0)
    model = srlab.create_model("rdsr_adaptive", scale=scale, args=SMALL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _image(h=40, w=52, seed=1):
    """Flat on the left, noisy on the right: patches of clearly different edge scores."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((1, 3, h, w), 0.5)
    image[..., w // 2:] = torch.rand(1, 3, h, w - w // 2, generator=g)
    return image


def _set_table(model, edges, error):
    with torch.no_grad():
        model.router_edges.copy_(torch.tensor(edges))
        model.router_error.copy_(torch.tensor(error) / LEVELS2)


def test_the_full_route_equals_the_static_models_patchwise_output():
    model = _model()
    _set_table(model, [0.01, 0.1], [[5.0, 3.0, 0.0]] * 3)  # every early exit adds error
    method = rdsr_adaptive(model, knob=0.0)
    lr = _image()
    sr, stats = adaptive_upscale(method, lr, patch=12, stride=10)
    static, _ = adaptive_upscale(StaticRoutes(model), lr, patch=12, stride=10)
    assert stats.route_counts == (0, 0, stats.units)
    assert torch.equal(sr, static)


def test_mixed_routes_merge_each_patchs_own_exit():
    model = _model()
    _set_table(model, [0.01, 0.1], [[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [9.0, 4.0, 0.0]])
    method = rdsr_adaptive(model, knob=8.0)
    lr = _image()
    sr, stats = adaptive_upscale(method, lr, patch=12, stride=10)
    assert sum(1 for n in stats.route_counts if n) >= 2  # the image really mixes routes
    patches, grid = split_patches(lr, 12, 10)
    routes = method.route(patches)
    with torch.no_grad():
        own = torch.cat([model.forward_exit(p[None], int(k)) for p, k in zip(patches, routes)])
    assert torch.allclose(sr, blend_patches(own, grid, 2), atol=1e-6, rtol=0)
    assert stats.macs_spent == sum(stats.route_macs[int(k)] for k in routes)


def test_a_patch_takes_the_exit_of_least_added_error_plus_price():
    model = _model()
    _set_table(model, [0.01, 0.1], [[0.0, 0.0, 0.0], [4.0, 1.0, 0.0], [30.0, 10.0, 0.0]])
    method = rdsr_adaptive(model, knob=0.0)
    fractions = method.mac_fractions((12, 12))
    assert fractions[-1] == 1 and all(a < b for a, b in zip(fractions, fractions[1:]))
    assert method.route_macs(2, (12, 12)) == count_macs(model, (12, 12))  # the last exit is the whole network
    flat, busy = torch.full((1, 3, 12, 12), 0.3), torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    assert mean_gradient_magnitude(flat) < 0.01 and mean_gradient_magnitude(busy) > 0.1
    patches = torch.cat([flat, busy])
    for knob in (0.0, 1.0, 5.0, 20.0, 100.0, 1e4):
        method.knob = knob
        rows = ([0.0, 0.0, 0.0], [30.0, 10.0, 0.0])  # the flat patch's bin, the busy patch's
        expected = [int(torch.argmin(torch.tensor(row) + knob * fractions)) for row in rows]
        assert method.route(patches).tolist() == expected
    method.knob = 0.0
    assert method.route(patches).tolist() == [0, 2]  # a free exit is taken; the busy patch stays on the full path
    method.knob = 1e4
    assert method.route(patches).tolist() == [0, 0]


def test_the_knob_sweep_runs_from_cheap_to_expensive():
    model = _model()
    _set_table(model, [0.01, 0.1], [[0.5, 0.2, 0.0], [4.0, 1.0, 0.0], [30.0, 10.0, 0.0]])
    lr = _image(64, 64)
    spent = []
    for knob in RdsrExitRouting.knob_sweep:
        _, stats = adaptive_upscale(rdsr_adaptive(model, knob=knob), lr, patch=12, stride=10)
        spent.append(stats.macs_spent)
    assert spent == sorted(spent) and spent[0] < spent[-1]


def test_calibration_bins_the_edge_scores_and_averages_the_added_error():
    model = _model()
    g = torch.Generator().manual_seed(3)
    pairs = []
    for _ in range(2):
        hr = F.avg_pool2d(torch.rand(3, 96, 96, generator=g)[None], 5, stride=1, padding=2)[0]
        hr[:, :, :48] = 0.4  # flat halves: low scores, small errors
        pairs.append((F.avg_pool2d(hr[None], 2)[0], hr))
    calibrate_router(model, pairs, patch=12, stride=10)
    scores, errors = exit_errors(model, pairs, patch=12, stride=10)
    assert scores.shape == (2 * 4 * 4,) and errors.shape == (32, 3)
    edges = model.router_edges
    assert edges[0] <= edges[1]
    bins = torch.bucketize(scores, edges)
    # the bins share the error exit 0 adds: none holds more than its share plus one patch's
    weight = (errors[:, 0] - errors[:, -1]).clamp(min=0)
    for b in range(3):
        assert weight[bins == b].sum() <= weight.sum() / 3 + weight.max() + 1e-9
    for b in range(3):
        expected = (errors[bins == b] - errors[bins == b][:, -1:]).mean(dim=0)
        assert torch.allclose(model.router_error[b], expected, atol=1e-7, rtol=1e-4)
    assert (model.router_error[:, -1] == 0).all()
    assert not model.training


def test_calibration_refuses_bad_pairs_and_too_few_patches():
    model = _model()
    with pytest.raises(SrlabError, match=r"calibration pair: HR \(30, 30\) is not LR \(12, 12\) times 2"):
        calibrate_router(model, [(torch.rand(3, 12, 12), torch.rand(3, 30, 30))], patch=12, stride=10)
    with pytest.raises(SrlabError, match="router calibration needs at least 3 patches, got 1"):
        calibrate_router(model, [(torch.rand(3, 12, 12), torch.rand(3, 24, 24))], patch=12, stride=10)
    with pytest.raises(SrlabError, match="router calibration needs at least one validation image"):
        calibrate_router(model, [], patch=12, stride=10)


def test_an_uncalibrated_router_and_another_model_are_one_line_errors():
    model = _model()
    with pytest.raises(SrlabError, match="router is not calibrated: run srlab.adaptive.rdsr.calibrate_router"):
        adaptive_upscale(rdsr_adaptive(model, knob=1.0), _image(), patch=12, stride=10)
    with pytest.raises(SrlabError, match="adaptive method rdsr_adaptive runs an rdsr_adaptive model, got RDSR"):
        rdsr_adaptive(srlab.create_model("rdsr_s", scale=2), knob=1.0)
    with pytest.raises(SrlabError, match=r"price of adaptive method RdsrExitRouting must be a number in \[0.0, 10000"):
        rdsr_adaptive(model, knob=-1.0)
