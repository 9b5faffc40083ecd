"""rdsr_adaptive through the adaptive engine: routing within a PSNR budget or at one rate, router training,
exactness."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import srlab
from srlab.adaptive import adaptive_upscale, blend_patches, split_patches
from srlab.adaptive.method import build_adaptive
from srlab.adaptive.rdsr import (
    DB_PER_RELATIVE_ERROR, RdsrExitRouting, RdsrRateRouting, budget_routes, calibrate_router, exit_targets,
    rdsr_adaptive, rdsr_adaptive_rate,
)
from srlab.adaptive.reference import StaticRoutes
from srlab.errors import SrlabError
from srlab.models import count_macs

SMALL = {"channels": 8, "num_blocks": 2, "ca_reduction": 4, "router_width": 4}


def _model(scale=2, **args):
    torch.manual_seed(0)
    model = srlab.create_model("rdsr_adaptive", scale=scale, args={**SMALL, **args})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _image(h=40, w=52, seed=1):
    """Flat on the left, noisy on the right: patches of clearly different content."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((1, 3, h, w), 0.5)
    image[..., w // 2:] = torch.rand(1, 3, h, w - w // 2, generator=g)
    return image


def _pairs(count=2, seed=3):
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(count):
        hr = F.avg_pool2d(torch.rand(3, 96, 96, generator=g)[None], 5, stride=1, padding=2)[0]
        hr[:, :, :48] = 0.4  # flat halves: exits agree with the full path there
        pairs.append((F.avg_pool2d(hr[None], 2)[0], hr))
    return pairs


@pytest.fixture(scope="module")
def trained():
    model = _model()
    calibrate_router(model, _pairs(), patch=12, stride=6, steps=300)
    return model


def test_the_full_route_equals_the_static_models_patchwise_output(trained):
    method = rdsr_adaptive(trained, knob=0.0)
    lr = _image()
    sr, stats = adaptive_upscale(method, lr, patch=12, stride=10)
    static, _ = adaptive_upscale(StaticRoutes(trained), lr, patch=12, stride=10)
    assert stats.route_counts == (0, 0, stats.units)
    assert torch.equal(sr, static)


def test_mixed_routes_merge_each_patchs_own_exit(trained):
    method = rdsr_adaptive(trained, knob=0.3)
    lr = _image()
    sr, stats = adaptive_upscale(method, lr, patch=12, stride=10)
    assert sum(1 for n in stats.route_counts if n) >= 2  # the image really mixes routes
    patches, grid = split_patches(lr, 12, 10)
    routes = method.route(patches)
    with torch.no_grad():
        own = torch.cat([trained.forward_exit(p[None], int(k)) for p, k in zip(patches, routes)])
    assert torch.allclose(sr, blend_patches(own, grid, 2), atol=1e-6, rtol=0)
    assert stats.router_macs == stats.units * count_macs(trained.router, (12, 12)) > 0
    assert stats.macs_spent == sum(stats.route_macs[int(k)] for k in routes) + stats.router_macs


def test_budget_routes_spend_the_fewest_macs_within_the_budget():
    costs = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    diffs = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.2, 0.0], [50.0, 10.0, 0.0]], dtype=torch.float64)
    full = torch.tensor([10.0, 10.0, 80.0], dtype=torch.float64)  # 100 in all
    assert budget_routes(diffs, full, costs, 0.0).tolist() == [2, 2, 2]  # no budget: the full path
    loss = 10 * math.log10(1 + 0.25 / 100)  # room for 0.25 of added error
    assert budget_routes(diffs, full, costs, loss).tolist() == [0, 1, 2]
    loss = 10 * math.log10(1 + 1.0 / 100)
    assert budget_routes(diffs, full, costs, loss).tolist() == [0, 0, 2]
    assert budget_routes(diffs, full, costs, 10.0).tolist() == [0, 0, 0]  # everything fits
    for loss in (0.001, 0.01, 0.03, 0.1, 0.3, 1.0):  # never over the budget, MACs fall as it grows
        routes = budget_routes(diffs, full, costs, loss)
        assert float(diffs.gather(1, routes[:, None]).sum()) <= (10 ** (loss / 10) - 1) * 100 + 1e-9


def test_the_rate_rule_minimises_the_predicted_loss_plus_the_rate_times_the_share_of_macs(trained):
    """Against every routing of five blocks: the predicted PSNR change to first order (each block's squared
    difference over the image's predicted full-path error) plus the rate times the image's MAC share."""
    g = torch.Generator().manual_seed(0)
    costs = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    method = rdsr_adaptive_rate(trained, knob=0.35)
    for rate in (0.05, 0.35, 2.0):
        diffs = torch.cat((torch.rand(5, 2, generator=g, dtype=torch.float64).sort(dim=1, descending=True).values
                           * 40, torch.zeros(5, 1, dtype=torch.float64)), dim=1)
        full = 20 * torch.rand(5, generator=g, dtype=torch.float64)

        def objective(routes):
            added = sum(float(diffs[p, k]) for p, k in enumerate(routes))
            return DB_PER_RELATIVE_ERROR * added / float(full.sum()) + rate * float(costs[list(routes)].mean())

        best = min(itertools.product(range(3), repeat=5), key=objective)
        assert method.choose_routes(diffs, full, costs, rate).tolist() == list(best)
        # the cascade's second stage: the same rule, the image's error summed over all its blocks
        assert method.choose_deep_routes(diffs, costs, errors=float(full.sum()), blocks=5, added=0.0).tolist() \
            == method.choose_routes(diffs, full, costs, method.knob).tolist()


def test_the_rate_method_is_registered_and_routes_cheaper_as_the_rate_grows(trained):
    method = build_adaptive("rdsr_adaptive_rate", trained, knob=0.5)
    assert isinstance(method, RdsrRateRouting) and (method.knob_name, method.knob) == ("rate", 0.5)
    lr = _image(64, 64)
    spent = []
    for knob in RdsrRateRouting.knob_sweep:
        method.knob = knob
        sr, stats = adaptive_upscale(method, lr, patch=12, stride=10)
        spent.append(stats.macs_spent - stats.router_macs)
    assert spent == sorted(spent) and spent[0] < spent[-1]
    full, _ = adaptive_upscale(rdsr_adaptive(trained, knob=0.0), lr, patch=12, stride=10)
    assert torch.equal(sr, full)  # rate 0: the full path everywhere
    with pytest.raises(SrlabError, match=r"rate of adaptive method RdsrRateRouting must be a number in \[0.0, 100.0\]"):
        method.knob = -1.0


def test_the_knob_sweep_runs_from_cheap_to_expensive(trained):
    lr = _image(64, 64)
    spent = []  # by the exits taken (the router's own MACs are the same at every knob but 0, where it does not run)
    for knob in RdsrExitRouting.knob_sweep:
        _, stats = adaptive_upscale(rdsr_adaptive(trained, knob=knob), lr, patch=12, stride=10)
        spent.append(stats.macs_spent - stats.router_macs)
    assert spent == sorted(spent) and spent[0] < spent[-1]


@pytest.mark.parametrize("contrast", [False, True])
def test_the_router_learns_the_exits_differences_and_is_deterministic(contrast):
    model = _model(router_contrast=contrast)
    pairs = _pairs()
    patches, diffs, errors = exit_targets(model, pairs, patch=12, stride=6)
    assert patches.shape == (2 * 7 * 7, 3, 12, 12) and diffs.shape == (98, 3) and errors.shape == (98,)
    assert (diffs[:, -1] == 0).all() and (diffs >= 0).all() and (errors >= 0).all()
    state = torch.random.get_rng_state()
    calibrate_router(model, pairs, patch=12, stride=6, steps=300)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is left alone
    assert bool(model.router_trained) and not model.training
    predicted, full = model.router.predict(patches)
    # exits that differ more are predicted to differ more (the flat patches against the busy ones)
    flat = patches.flatten(1).std(dim=1) < 1e-3
    assert predicted[flat, 0].mean() < predicted[~flat, 0].mean()
    assert full[flat].mean() < full[~flat].mean()
    again = _model(router_contrast=contrast)
    calibrate_router(again, pairs, patch=12, stride=6, steps=300)
    assert all(torch.equal(a, b) for a, b in zip(model.router.state_dict().values(), again.router.state_dict().values()))


def test_calibration_refuses_bad_pairs_and_too_few_patches():
    model = _model()
    with pytest.raises(SrlabError, match=r"calibration pair: HR \(30, 30\) is not LR \(12, 12\) times 2"):
        calibrate_router(model, [(torch.rand(3, 12, 12), torch.rand(3, 30, 30))], patch=12, stride=10)
    with pytest.raises(SrlabError, match="router calibration needs at least 2 patches of 12x12, got 1"):
        calibrate_router(model, [(torch.rand(3, 12, 12), torch.rand(3, 24, 24))], patch=12, stride=10)
    with pytest.raises(SrlabError, match="router calibration needs at least one calibration image"):
        calibrate_router(model, [], patch=12, stride=10)


def test_knob_0_is_the_full_path_without_the_router():
    model = _model()  # its router untrained: knob 0 does not need it
    sr, stats = adaptive_upscale(rdsr_adaptive(model, knob=0.0), _image(), patch=12, stride=10)
    assert stats.route_counts == (0, 0, stats.units) and stats.router_macs == 0
    assert stats.macs_spent == stats.macs_full


def test_an_untrained_router_and_another_model_are_one_line_errors():
    model = _model()
    with pytest.raises(SrlabError, match="router is not trained: run srlab.adaptive.rdsr.calibrate_router"):
        adaptive_upscale(rdsr_adaptive(model, knob=1.0), _image(), patch=12, stride=10)
    with pytest.raises(SrlabError, match="adaptive methods rdsr_adaptive and rdsr_adaptive_rate run an rdsr_adaptive model, got RDSR"):
        rdsr_adaptive(srlab.create_model("rdsr_s", scale=2), knob=1.0)
    with pytest.raises(SrlabError, match=r"loss of adaptive method RdsrExitRouting must be a number in \[0.0, 10.0\]"):
        rdsr_adaptive(model, knob=-1.0)


def test_a_larger_patch_is_predicted_as_the_mean_of_its_32x32_patches(trained):
    from srlab.adaptive.rdsr import ROUTER_PATCH, predict_per_patch

    torch.manual_seed(5)
    patches = torch.rand(3, 3, 64, 50)  # 2 x 2 router patches, the last column ending at the border
    diffs, full = predict_per_patch(trained.router, patches)
    subs = [patches[..., t : t + ROUTER_PATCH, l : l + ROUTER_PATCH] for t in (0, 32) for l in (0, 18)]
    predictions = [trained.router.predict(sub) for sub in subs]
    assert torch.allclose(diffs, torch.stack([d for d, _ in predictions]).mean(dim=0))
    assert torch.allclose(full, torch.stack([f for _, f in predictions]).mean(dim=0))
    small = torch.rand(2, 3, 20, 24)  # shorter than one router patch: predicted as it is
    assert all(torch.equal(a, b) for a, b in zip(predict_per_patch(trained.router, small), trained.router.predict(small)))
    method = rdsr_adaptive(trained, knob=1.0)
    assert method.router_macs((64, 50)) == 4 * count_macs(trained.router, (32, 32))


def test_the_region_mode_routes_64x64_blocks_and_counts_the_router_at_each_knob(trained):
    method = rdsr_adaptive(trained, knob=1.0)
    assert method.region_block == 64
    lr = torch.rand(1, 3, 70, 130)
    _, stats = method.upscale(lr)
    assert stats.grid_hw == (2, 3) and stats.router_macs == 6 * method.router_macs((64, 64)) > 0
    method.knob = 0.0  # the same method at knob 0 runs no router, and says so (not a cached count)
    _, stats = method.upscale(lr)
    assert stats.router_macs == 0


def test_a_bicubic_route_comes_first_and_the_router_predicts_it_too():
    from srlab.data.resize import bicubic_upscale
    from srlab.metrics.color import rgb_to_y

    model = _model(bicubic_route=True)
    assert (model.num_exits, model.num_routes, model.router.head.out_features) == (3, 4, 4)
    lr = _image()
    with torch.no_grad():
        assert torch.equal(model.forward_route(lr, 0), bicubic_upscale(lr, 2))
        assert all(torch.equal(model.forward_route(lr, k + 1), model.forward_exit(lr, k)) for k in range(3))
    pairs = _pairs()
    _, diffs, _ = exit_targets(model, pairs, patch=12, stride=6)
    plain = _model()  # the same network without the bicubic route
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("router.")}, strict=False)
    _, exit_diffs, _ = exit_targets(plain, pairs, patch=12, stride=6)
    assert diffs.shape == (98, 4) and torch.equal(diffs[:, 1:], exit_diffs)
    lr, hr = pairs[0]  # the first patch's bicubic column: its bicubic upscaling against the full path, Y, 8-bit levels
    with torch.no_grad():
        full = model(lr[None, :, :12, :12]).clamp(0, 1)
    bicubic = bicubic_upscale(lr[None, :, :12, :12], 2).clamp(0, 1)
    expected = (rgb_to_y(bicubic) - rgb_to_y(full)).square().mean() * 255**2
    torch.testing.assert_close(diffs[0, 0], expected, rtol=1e-5, atol=1e-4)
    method = rdsr_adaptive(model, knob=1.0)
    assert method.route_names() == ("bicubic", "exit 0", "exit 1", "exit 2")
    assert method.mac_fractions((32, 32))[0] == 0 and method.mac_fractions((32, 32))[1] > 0


@pytest.mark.parametrize("execution", ["regions", "shared"])
def test_blocks_on_the_bicubic_route_are_the_whole_images_bicubic_upscaling(execution, monkeypatch):
    from srlab.data.resize import bicubic_upscale

    model = _model(bicubic_route=True)
    method = rdsr_adaptive(model, knob=1.0)
    method.execution = execution
    routed = torch.tensor([0, 3, 0, 2, 0, 1])  # a 2x3 grid of 64x64 blocks
    monkeypatch.setattr(method, "route", lambda patches: routed.clone())
    lr = _image(100, 150)
    sr, stats = method.upscale(lr)
    assert stats.route_counts == (3, 1, 1, 1) and sr.shape == (1, 3, 200, 300)
    bicubic = bicubic_upscale(lr, 2)
    for index in (0, 2, 4):
        rows, cols = slice(index // 3 * 128, index // 3 * 128 + 128), slice(index % 3 * 128, index % 3 * 128 + 128)
        torch.testing.assert_close(sr[..., rows, cols], bicubic[..., rows, cols], rtol=0, atol=1e-6)
    with torch.no_grad():
        deepest = model.forward_exit(lr, 2)  # block 1 (row 0, col 1) runs the full path
    assert (sr[..., :128, 128:256] - deepest[..., :128, 128:256]).abs().max() < 0.05
    assert not torch.allclose(sr[..., :128, 128:256], bicubic[..., :128, 128:256], atol=1e-3)
    monkeypatch.setattr(method, "route", lambda patches: torch.zeros(6, dtype=torch.long))
    everywhere, stats = method.upscale(lr)
    torch.testing.assert_close(everywhere, bicubic, rtol=0, atol=1e-6)
    assert stats.macs_spent == stats.router_macs  # bicubic costs no MAC in count_macs's convention
