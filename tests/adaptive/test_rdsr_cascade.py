"""rdsr_adaptive's cascade: exact where one window holds the image, bicubic blocks are the whole image's
bicubic, MACs counted for what ran, the budget kept, the feature router calibrated, saved and chosen."""

import pytest
import torch
import torch.nn.functional as F

import srlab
import srlab.adaptive.rdsr as rdsr_module
from srlab.adaptive.rdsr import calibrate_feature_router, rdsr_adaptive, with_router
from srlab.adaptive.rdsr_cascade import FIRST_RADIUS, FirstBlock, feature_targets
from srlab.data.resize import bicubic_upscale
from srlab.errors import SrlabError
from srlab.models.complexity import measure_macs
from srlab.models.weights import save_weights

SMALL = {"channels": 8, "num_blocks": 3, "ca_reduction": 4, "router_width": 4, "bicubic_route": True,
         "feature_router": True}
BLOCK = 16


def _network(dtype=torch.float64, **args):
    torch.manual_seed(0)
    network = srlab.create_model("rdsr_adaptive", scale=2, args={**SMALL, **args})
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.05 * torch.randn_like(p))
        network.router_trained.fill_(True)
        if network.feature_router is not None:
            network.feature_router_trained.fill_(True)
    return network.to(dtype).eval()


def _image(h, w, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 3, stride=1, padding=1).to(dtype)


def _method(network, *, knob=0.05, side=64, execution="cascade"):
    method = rdsr_adaptive(network, knob=knob)
    method.region_block, method.execution = BLOCK, execution
    method.region_side = method.first_block_side = method.shared_region = side
    return method


def _force(monkeypatch, first, second):
    """Route every block to ``first`` in the first stage (a (P,) tensor or one route) and the deep blocks to
    ``second`` in the second, whatever the routers predict."""
    def routes(count, chosen):
        return chosen[:count].clone() if torch.is_tensor(chosen) else torch.full((count,), chosen)
    monkeypatch.setattr(rdsr_module, "budget_routes", lambda diffs, *_: routes(len(diffs), first))
    monkeypatch.setattr(rdsr_module, "routes_within", lambda diffs, *_: routes(len(diffs), second))


def test_the_method_runs_the_cascade_where_the_feature_router_is_trained():
    assert rdsr_adaptive(_network(), knob=0.1).execution == "cascade"
    assert rdsr_adaptive(_network(feature_router=False), knob=0.1).execution == "regions"
    untrained = _network()
    untrained.feature_router_trained.fill_(False)
    assert rdsr_adaptive(untrained, knob=0.1).execution == "regions"
    method = _method(untrained)
    with pytest.raises(SrlabError, match="trained feature router") as error:
        method.upscale(_image(32, 32))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("execution", ["cascade", "cascade_shared"])
@pytest.mark.parametrize("route", range(5))
def test_every_block_on_one_route_in_one_window_is_that_routes_whole_image_forward(monkeypatch, route, execution):
    network = _network()
    lr = _image(40, 56)  # 3 x 4 blocks: one rectangle, one window at side 64
    _force(monkeypatch, network.num_routes - 1 if route > 1 else route, route)
    sr, stats = _method(network, execution=execution).upscale(lr)
    with torch.no_grad():
        expected = network.forward_route(lr, route)
    torch.testing.assert_close(sr, expected, rtol=0, atol=1e-12)
    assert stats.route_counts[route] == 12


@pytest.mark.parametrize(("execution", "margin"), [("cascade", 2), ("cascade", 4), ("cascade_shared", 2)])
def test_bicubic_blocks_are_the_whole_images_bicubic_and_macs_are_counted_for_what_ran(monkeypatch, execution, margin):
    network = _network(dtype=torch.float32)
    lr = _image(45, 70, dtype=torch.float32)  # 3 x 5 blocks, the last row and column short
    first = torch.tensor([0, 4, 4, 1, 4, 4, 0, 4, 4, 0, 1, 4, 4, 0, 4])
    second = torch.tensor([2, 3, 4, 0, 1, 2, 3, 2, 4])  # the deep blocks' routes (in the method's order)
    _force(monkeypatch, first, second)
    method = _method(network, side=32, execution=execution)
    method.region_margin = margin  # the windows' context (the shared execution computes exact context instead)
    method.upscale(lr)  # counts the MACs of each size once: the measured call runs the network only
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # run_windows' side-by-side threads would hide the work from the counter
    try:
        (sr, stats), measured = measure_macs(network, lambda: method.upscale(lr))
    finally:
        torch.set_num_threads(threads)
    taken = torch.cat((first[first != 4], second))
    assert stats.route_counts == tuple(torch.bincount(taken, minlength=5).tolist())
    if execution == "cascade":  # (the shared execution's attention pools are sums the counter does not see)
        assert stats.measured[0] == measured  # both routers, the first block's windows, every route's windows
    bicubic = first.view(3, 5).eq(0).repeat_interleave(2 * BLOCK, 0).repeat_interleave(2 * BLOCK, 1)[:90, :140]
    with torch.no_grad():
        expected = bicubic_upscale(lr, 2)
    torch.testing.assert_close(sr[..., bicubic], expected[..., bicubic], rtol=0, atol=1e-6)
    assert bool(sr.isfinite().all())


def test_the_cascade_s_windows_run_with_the_method_s_margin(monkeypatch):
    network = _network(dtype=torch.float32)
    lr = _image(45, 70, dtype=torch.float32)
    _force(monkeypatch, torch.tensor([0, 4, 4, 1, 4, 4, 0, 4, 4, 0, 1, 4, 4, 0, 4]), torch.tensor([2, 3, 4, 0, 1, 2, 3, 2, 4]))
    method = _method(network, side=32)
    assert method.region_margin == 2  # rdsr_adaptive's default (the README's "Two pixels of context")
    spent = {}
    for margin in (2, 4):
        method.region_margin = margin
        spent[margin] = method.upscale(lr)[1].measured[0]
    assert spent[4] > spent[2]


def test_the_first_block_map_is_exact_with_its_full_context_cheaper_by_default_and_takes_its_side(monkeypatch):
    network = _network()
    lr = _image(45, 70)
    first = torch.tensor([0, 4, 4, 1, 4, 4, 0, 4, 4, 0, 1, 4, 4, 0, 4])
    _force(monkeypatch, first, torch.tensor([2, 3, 4, 0, 1, 2, 3, 2, 4]))
    maps = []
    real = rdsr_module.deep_block_inputs

    def inputs(lr, first_map, *args, **kwargs):
        maps.append(first_map)  # the first block's map, as the feature router gets it
        return real(lr, first_map, *args, **kwargs)

    monkeypatch.setattr(rdsr_module, "deep_block_inputs", inputs)
    method = _method(network, side=32)  # several rectangles: their borders inside the image
    assert method.first_block_context == 2  # rdsr_adaptive's default
    deep = (first > 1).view(3, 5).repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:45, :70]  # past exit 0
    with torch.no_grad():
        whole = network.first_block(lr)[1]
    spent, error = {}, {}
    for context in (2, FIRST_RADIUS):
        method.first_block_context = context
        maps.clear()
        spent[context] = method.upscale(lr)[1].measured[0]
        error[context] = float((maps[0] - whole)[..., deep].abs().max())
    assert error[FIRST_RADIUS] < 1e-12 < error[2]
    assert spent[2] < spent[FIRST_RADIUS]
    jobs = []
    real_jobs = rdsr_module.first_block_jobs

    def first_jobs(*args, **kwargs):
        jobs.append(real_jobs(*args, **kwargs))  # (route, window height, width) -> windows
        return jobs[-1]

    monkeypatch.setattr(rdsr_module, "first_block_jobs", first_jobs)
    for side in (32, 128):  # the map's rectangles take first_block_side, not the route windows' region_side (32)
        method.first_block_side = side
        method.upscale(lr)
    widest = [max(max(h, w) for _, h, w in found) for found in jobs]
    assert widest[0] <= 32 + 2 * (method.region_margin + FIRST_RADIUS) < widest[1]


def test_the_deep_blocks_are_routed_within_what_the_first_stage_left_of_the_budget(monkeypatch):
    network = _network(dtype=torch.float32)
    lr = _image(48, 64, dtype=torch.float32)
    seen = []
    real = rdsr_module.routes_within

    def within(diffs, costs, budget):
        routes = real(diffs, costs, budget)
        seen.append((float(diffs.gather(1, routes[:, None]).sum()), costs, budget))
        return routes

    monkeypatch.setattr(rdsr_module, "routes_within", within)
    method = _method(network, knob=0.2)
    for knob in (0.2, 0.5):
        method.knob = knob
        method.upscale(lr)
    if len(seen) < 4:  # budget_routes calls routes_within too: the first stage, then the second, per image
        pytest.skip("the first stage kept every block")
    for added, _, budget in seen[1::2]:
        assert added <= budget
    costs = seen[1][1]
    assert costs[0] == 0 and torch.isclose(costs[1], costs[2])  # exit 0 and exit 1 cost the same from here
    assert bool((costs[2:].diff() > 0).all()) and costs[-1] < 1


def test_the_feature_router_calibrates_saves_and_keeps_the_first_router(tmp_path):
    network = _network(dtype=torch.float32, feature_router=False)
    path = tmp_path / "plain.safetensors"
    save_weights(path, network)
    model = with_router(path, feature_router=True)
    assert bool(model.router_trained) and not bool(model.feature_router_trained)
    torch.testing.assert_close(model.router.head.weight, network.router.head.weight)
    g = torch.Generator().manual_seed(3)
    pairs = []
    for _ in range(2):
        hr = F.avg_pool2d(torch.rand(3, 128, 128, generator=g)[None], 5, stride=1, padding=2)[0]
        pairs.append((F.avg_pool2d(hr[None], 2)[0], hr))
    inputs, diffs, errors = feature_targets(model, pairs, patch=16, stride=16, flips=True)
    assert inputs.shape == (2 * 4 * 16, 3 + 8, 16, 16) and diffs.shape == (128, model.num_routes - 1)
    assert errors.shape == (128,) and bool((diffs >= 0).all())
    before = model.feature_router.head.weight.clone()
    calibrate_feature_router(model, pairs, patch=16, stride=16, steps=20)
    assert bool(model.feature_router_trained) and not torch.equal(before, model.feature_router.head.weight)
    saved = tmp_path / "cascade.safetensors"
    save_weights(saved, model)
    loaded = srlab.create_model(checkpoint=saved)
    assert loaded.feature_router is not None and bool(loaded.feature_router_trained)
    assert rdsr_adaptive(loaded, knob=0.1).execution == "cascade"
    with pytest.raises(SrlabError, match="no feature router"):
        calibrate_feature_router(network, pairs, patch=16, stride=16, steps=2)


def test_the_first_block_module_continues_into_every_exit():
    network = _network()
    lr = _image(24, 20)
    with torch.no_grad():
        maps = FirstBlock(network)(lr)
        assert torch.equal(maps[:, :3], lr)
        shallow = F.relu(network.head(lr))
        for k in range(1, network.num_exits):
            after = network.forward_exit_after_first(shallow, maps[:, 3:], k)
            torch.testing.assert_close(after, network.forward_exit(lr, k), rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        network.forward_exit_after_first(shallow, maps[:, 3:], 0)


@pytest.mark.parametrize("size", [(7, 9), (16, 40), (33, 17)])
def test_small_and_odd_images_run(size):
    network = _network(dtype=torch.float32)
    sr, stats = _method(network, knob=0.3).upscale(_image(*size, dtype=torch.float32))
    assert sr.shape == (1, 3, 2 * size[0], 2 * size[1]) and bool(sr.isfinite().all())
    assert 0 < stats.measured[0]


def test_the_rate_rule_prices_the_first_stage_by_its_share_and_the_deep_blocks_by_all_blocks(monkeypatch):
    """The rate method's cascade: the first stage at the knob times ``first_stage_share`` over the LR router's
    predictions of all blocks; the deep blocks at the knob itself, with the full-path error of the image's
    blocks (the kept ones as the LR router predicts it, the deep ones as the feature router does) over all
    of its blocks, not only the deep ones."""
    network = _network(dtype=torch.float32)
    lr = _image(48, 64, dtype=torch.float32)
    calls = []
    real_first, real_deep = rdsr_module.RdsrRateRouting.choose_routes, rdsr_module.RdsrRateRouting.choose_deep_routes

    def first(self, diffs, full, costs, knob):
        calls.append(("first", knob, full))
        routes = real_first(self, diffs, full, costs, knob)
        routes[::2] = 0  # every other block kept on the bicubic route: the deep blocks are not all blocks
        return routes

    def deep(self, diffs, costs, *, errors, blocks, added):
        calls.append(("deep", errors, blocks))
        return real_deep(self, diffs, costs, errors=errors, blocks=blocks, added=added)

    monkeypatch.setattr(rdsr_module.RdsrRateRouting, "choose_routes", first)
    monkeypatch.setattr(rdsr_module.RdsrRateRouting, "choose_deep_routes", deep)
    method = rdsr_module.rdsr_adaptive_rate(network, knob=0.8)
    method.region_block, method.first_stage_share = BLOCK, 0.25
    method.region_side = method.first_block_side = 64
    sr, stats = method.upscale(lr)
    (_, knob, lr_full), (_, errors, blocks) = calls
    assert knob == pytest.approx(0.8 * 0.25) and blocks == len(lr_full) == (48 // BLOCK) * (64 // BLOCK)
    assert errors > 0 and sr.shape[-2:] == (96, 128) and sum(stats.route_counts) == blocks
