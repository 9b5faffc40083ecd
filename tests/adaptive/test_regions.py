import threading
from collections import defaultdict

import pytest
import torch
from torch import nn

from srlab.adaptive import PatchRoutedMethod
from srlab.adaptive.reference import StaticRoutes
from srlab.adaptive.regions import (
    Region, WindowSet, add_region_windows, adaptive_upscale_regions, merge_blocks, routes_with_seams, run_window_sets,
)
from srlab.errors import SrlabError
from srlab.models.complexity import count_macs


class Radius1(nn.Module):
    """A 3x3 conv and a pixel shuffle: each output pixel sees its LR pixel's 3x3 neighbourhood only."""

    scale = 2

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


class RoutesByMean(PatchRoutedMethod):
    """Route 1 for patches brighter than 0.5 on average, else route 0; records the patches it saw."""

    def __init__(self, light, heavy):
        super().__init__(scale=2, num_routes=2)
        self.paths = nn.ModuleList([light, heavy])
        self.seen = []

    def route(self, patches):
        self.seen.append(patches.clone())
        return (patches.mean(dim=(1, 2, 3)) > 0.5).long()

    def route_module(self, index):
        return self.paths[index]


def _half_bright(height: int, width: int) -> torch.Tensor:
    torch.manual_seed(0)
    lr = torch.rand(1, 3, height, width, dtype=torch.float64) * 0.2
    lr[..., :, width // 2:] += 0.7  # the right half (from a block border on) goes heavy
    return lr


def test_one_route_equals_the_whole_image_forward_once_the_margin_covers_the_receptive_field():
    net = Radius1(0).double().eval()
    lr = torch.rand(1, 3, 75, 90, dtype=torch.float64)
    sr, stats = adaptive_upscale_regions(StaticRoutes(net), lr, block=16, margin=1, region=32)
    with torch.no_grad():
        torch.testing.assert_close(sr, net(lr), rtol=0, atol=1e-13)
    assert stats.out_hw == (150, 180) and stats.grid_hw == (5, 6) and stats.route_counts == (30,)
    # 32x32 regions with one pixel of context; short ones at the right/bottom border
    assert {(h, w) for _, h, w, _ in stats.windows} <= {(h, w) for h in (33, 34, 12, 13) for w in (33, 34, 27, 28)}


def test_without_margin_a_3x3_network_sees_the_region_borders():
    net = Radius1(0).double().eval()
    lr = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    sr, _ = adaptive_upscale_regions(StaticRoutes(net), lr, block=32, margin=0, region=32)
    with torch.no_grad():
        whole = net(lr)
    assert not torch.allclose(sr[..., 62:66, :], whole[..., 62:66, :])
    torch.testing.assert_close(sr[..., :62, :62], whole[..., :62, :62], rtol=0, atol=1e-13)


def test_each_block_takes_its_route_s_whole_image_output():
    light, heavy = Radius1(1).double().eval(), Radius1(2).double().eval()
    method = RoutesByMean(light, heavy)
    lr = _half_bright(70, 64)
    sr, stats = adaptive_upscale_regions(method, lr, block=32, margin=1)
    with torch.no_grad():
        expected = torch.cat([light(lr)[..., :64], heavy(lr)[..., 64:]], dim=-1)
    torch.testing.assert_close(sr, expected, rtol=0, atol=1e-13)
    assert stats.route_counts == (3, 3) and stats.grid_hw == (3, 2)
    # every routing patch is a full block; the last row's is the one ending at the border (rows 38..69)
    patches = method.seen[-1]
    assert patches.shape == (6, 3, 32, 32)
    torch.testing.assert_close(patches[4], lr[0, :, 38:70, :32], rtol=0, atol=0)


class CountsThreads(nn.Module):
    """A route that records torch's thread count and the OS thread each batch of windows ran on."""

    scale = 2

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x):
        self.calls.append((torch.get_num_threads(), threading.get_ident()))
        return self.net(x)


def test_with_two_threads_windows_run_side_by_side_with_the_same_output():
    light, heavy = CountsThreads(Radius1(1).double().eval()), CountsThreads(Radius1(2).double().eval())
    method = RoutesByMean(light, heavy)
    lr = _half_bright(200, 200)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = adaptive_upscale_regions(method, lr, block=32, margin=1, region=32, batch_size=2)
        serial = light.calls + heavy.calls
        light.calls, heavy.calls = [], []
        torch.set_num_threads(2)
        two, _ = adaptive_upscale_regions(method, lr, block=32, margin=1, region=32, batch_size=2)
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(two, one, rtol=0, atol=0)
    side_by_side = light.calls + heavy.calls
    assert len(side_by_side) == len(serial) > 2
    assert {n for n, _ in side_by_side} == {1}  # each window on one thread
    workers = {ident for _, ident in side_by_side}  # a pool of two (which runs what is up to the OS)
    assert len(workers) <= 2 and threading.get_ident() not in workers


def test_the_macs_are_those_of_the_windows_run():
    light, heavy = Radius1(1).eval(), nn.Sequential(Radius1(2), nn.Conv2d(3, 3, 3, padding=1)).eval()
    heavy.scale = 2
    method = RoutesByMean(light, heavy)
    lr = _half_bright(64, 64).float()
    _, stats = adaptive_upscale_regions(method, lr, block=32, margin=2)
    # each half is one 64x32 region, with 2 columns of context on the inner side
    assert sorted(stats.windows) == [(0, 64, 34, 1), (1, 64, 34, 1)]
    assert stats.macs_spent == count_macs(light, (64, 34)) + count_macs(heavy, (64, 34))
    assert stats.macs_full == count_macs(heavy, (64, 64))


def test_blocks_of_one_route_merge_into_rectangles_of_bounded_size():
    routes = torch.tensor([[0, 0, 1, 1, 1],
                           [0, 0, 1, 1, 1],
                           [2, 0, 1, 1, 1]])
    regions = merge_blocks(routes, max_blocks=2)
    covered = torch.full_like(routes, -1)
    for r in regions:
        assert r.row1 - r.row0 <= 2 and r.col1 - r.col0 <= 2
        assert (covered[r.row0:r.row1, r.col0:r.col1] == -1).all()
        covered[r.row0:r.row1, r.col0:r.col1] = r.route
    assert torch.equal(covered, routes)
    assert Region(0, 0, 2, 0, 2) in regions and Region(1, 0, 2, 2, 4) in regions and len(regions) == 7


def test_the_batch_size_does_not_change_the_image():
    method = RoutesByMean(Radius1(1).double().eval(), Radius1(2).double().eval())
    lr = _half_bright(96, 96)
    one, _ = adaptive_upscale_regions(method, lr, block=16, region=16, batch_size=1)
    many, _ = adaptive_upscale_regions(method, lr, block=16, region=16, batch_size=64)
    torch.testing.assert_close(one, many, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"block": 0}, r"region-mode block must be an integer >= 1, got 0"),
    ({"margin": -1}, r"region-mode margin must be an integer >= 0, got -1"),
    ({"batch_size": 1.5}, r"region-mode batch size must be an integer >= 1, got 1.5"),
    ({"region": 16}, r"region-mode region \(16\) must be at least one block \(32\) LR pixels"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(SrlabError, match=message):
        adaptive_upscale_regions(StaticRoutes(Radius1(0).eval()), torch.rand(1, 3, 40, 40), **kwargs)


def test_one_region_covering_the_image_is_the_static_forward():
    net = Radius1(0).double().eval()
    lr = torch.rand(1, 3, 40, 50, dtype=torch.float64)
    sr, stats = adaptive_upscale_regions(StaticRoutes(net), lr, region=64)
    assert stats.windows == ((0, 40, 50, 1),) and stats.macs_spent == stats.macs_full
    with torch.no_grad():
        torch.testing.assert_close(sr, net(lr), rtol=0, atol=1e-13)
    plain, _ = adaptive_upscale_regions(StaticRoutes(net), lr, region=64, channels_last=False)
    torch.testing.assert_close(plain, sr, rtol=0, atol=1e-13)


def test_a_patch_routed_method_upscales_whole_images_in_region_mode_and_evaluates_under_the_protocol():
    from srlab.adaptive.reference import StaticRoutes
    from srlab.models.registry import build_model

    torch.manual_seed(0)
    net = build_model("fsrcnn_etds", scale=2, args={"d": 8, "s": 4, "m": 1}).double().eval()
    method = StaticRoutes(net)
    lr = torch.rand(1, 3, 70, 90, dtype=torch.float64)
    sr, stats = method.upscale(lr)  # whole image: region mode, every block on the one route
    with torch.no_grad():
        torch.testing.assert_close(sr, net(lr), rtol=0, atol=1e-12)
    assert stats.unit == "block" and stats.units == 3 * 3 and stats.out_hw == (140, 180)
    assert stats.macs_full == count_macs(build_model("fsrcnn_etds", scale=2, args={"d": 8, "s": 4, "m": 1}), (70, 90)) and stats.macs_spent >= stats.macs_full  # margins
    protocol, grid_stats = method.upscale(lr, whole_image=False)  # the 32/28 grid covers 60x88
    assert protocol.shape[-2:] == (120, 176) and grid_stats.unit == "patch" and grid_stats.units == 2 * 3


def test_the_region_mode_runs_with_the_method_s_margin():
    method = RoutesByMean(Radius1(1).double().eval(), Radius1(2).double().eval())
    lr = _half_bright(70, 64)
    method.region_margin = 0
    sr, _ = method.upscale(lr)
    without, _ = adaptive_upscale_regions(method, lr, block=32, margin=0)
    with_margin, _ = adaptive_upscale_regions(method, lr, block=32, margin=1)
    assert torch.equal(sr, without) and not torch.equal(sr, with_margin)


def test_window_sets_run_in_one_pass_as_each_alone_and_paste_into_a_given_output():
    method = RoutesByMean(Radius1(1).double().eval(), Radius1(2).double().eval())
    lr = _half_bright(70, 64)  # 3 x 2 blocks of 32: the left column on route 0, the right one on route 1
    expected, _ = adaptive_upscale_regions(method, lr, block=32, margin=1)
    def column_jobs(routes):  # the windows of the blocks off route -1
        jobs = defaultdict(list)
        add_region_windows(jobs, 0, torch.tensor(routes), block=32, margin=1, region=128, height=70, width=64)
        return {key: windows for key, windows in jobs.items() if key[0] >= 0}

    left, right = column_jobs([[0, -1]] * 3), column_jobs([[-1, 1]] * 3)
    both = run_window_sets([WindowSet(method, lr, left), WindowSet(method, lr, right), WindowSet(method, lr, {})],
                           batch_size=2, channels_last=False)
    assert both[2] is None  # no windows, no output given
    torch.testing.assert_close(both[0][..., :64], expected[..., :64], rtol=0, atol=1e-13)
    torch.testing.assert_close(both[1][..., 64:], expected[..., 64:], rtol=0, atol=1e-13)
    given = both[0].clone()
    pasted = run_window_sets([WindowSet(method, lr, right, out=given)], batch_size=2, channels_last=False)[0]
    assert pasted is given
    torch.testing.assert_close(given, expected, rtol=0, atol=1e-13)


def _seam_energy(unary, costs, seam, routes):
    """The objective of routes_with_seams, written out pair by pair."""
    rows, cols, _ = unary.shape
    grid = routes.view(rows, cols)
    total = sum(float(unary[y, x, grid[y, x]]) for y in range(rows) for x in range(cols))
    for y in range(rows):
        for x in range(cols):
            for ny, nx in ((y, x + 1), (y + 1, x)):
                if ny < rows and nx < cols and grid[y, x] != grid[ny, nx]:
                    total += seam * float(costs[grid[y, x]] + costs[grid[ny, nx]])
    return total


def test_routes_with_seams_start_from_each_blocks_best_route_and_never_raise_the_total():
    generator = torch.Generator().manual_seed(3)
    costs = torch.tensor([0.0, 0.33, 0.67, 1.0], dtype=torch.float64)
    unary = torch.rand(7, 9, 4, generator=generator, dtype=torch.float64) + 0.5 * costs
    alone = routes_with_seams(unary, costs, 0.0)
    assert torch.equal(alone, torch.argmin(unary, dim=-1).flatten())
    for seam in (0.05, 0.2, 1.0):
        routes = routes_with_seams(unary, costs, seam)
        assert routes.shape == (63,) and routes.dtype == torch.long
        assert _seam_energy(unary, costs, seam, routes) < _seam_energy(unary, costs, seam, alone)


def test_routes_with_seams_leave_alone_a_block_whose_saving_outweighs_its_margins():
    costs = torch.tensor([0.0, 1.0], dtype=torch.float64)
    unary = torch.tensor([0.0, 0.0], dtype=torch.float64) + costs  # every block: route 1 costs 1 more
    unary = unary.repeat(3, 3, 1)
    unary[..., 0] += 0.5  # ... and route 0 loses 0.5: route 0 everywhere
    unary[1, 1, 0] += 1.0  # the centre: route 1 is better by 0.5, and its 4 sides cost 4 x seam x 1
    assert routes_with_seams(unary, costs, 0.1).view(3, 3)[1, 1] == 1  # 0.4 < 0.5: stays apart
    assert routes_with_seams(unary, costs, 0.2).view(3, 3)[1, 1] == 0  # 0.8 > 0.5: joins its neighbours
