import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlab.adaptive import PatchRoutedMethod, adaptive_upscale, build_adaptive
from srlab.adaptive.reference import GradientRoutes, StaticRoutes, mean_gradient_magnitude
from srlab.errors import SrlabError
from srlab.models.complexity import count_macs
from srlab.models.registry import build_model

from .test_patches import official_merge, official_tops

SMALL_FSRCNN = {"d": 12, "s": 6, "m": 1}


def small_net(scale: int = 2, args=SMALL_FSRCNN) -> nn.Module:
    torch.manual_seed(0)
    return build_model("fsrcnn_etds", scale=scale, args=args).double().eval()


def official_patchwise(model, lr, patch, step, scale, route_of=None):
    """The official test loop: every patch through the network on its own, then the official merge."""
    tops, lefts = official_tops(lr.shape[2], patch, step), official_tops(lr.shape[3], patch, step)
    outputs = []
    with torch.no_grad():
        for k, (top, left) in enumerate((t, s) for t in tops for s in lefts):
            net = model if route_of is None else route_of(k)
            outputs.append(net(lr[:, :, top:top + patch, left:left + patch])[0])
    return official_merge(outputs, tops, lefts, patch, step, scale)[None]


class FixedRoutes(PatchRoutedMethod):
    """Routes given by a list, for tests: route k runs ``paths[k]``."""

    def __init__(self, paths, routes):
        super().__init__(scale=paths[0].scale, num_routes=len(paths))
        self.paths = nn.ModuleList(paths)
        self.fixed = torch.tensor(routes)

    def route(self, patches):
        return self.fixed.clone()

    def route_module(self, index):
        return self.paths[index]


def test_one_route_for_every_patch_is_the_official_patchwise_output():
    net = small_net()
    lr = torch.rand(1, 3, 75, 90, dtype=torch.float64)
    sr, stats = adaptive_upscale(StaticRoutes(net), lr, patch=32, stride=28, batch_size=4)
    official = official_patchwise(net, lr, 32, 28, scale=2)
    assert sr.shape == official.shape == (1, 3, 2 * 60, 2 * 88)
    # batched convolutions may sum in another order than one patch at a time: float64 rounding only
    torch.testing.assert_close(sr, official, rtol=0, atol=1e-13)
    assert stats.route_counts == (6,) and stats.out_hw == (120, 176)


class Pointwise(nn.Module):
    """1x1 convolutions and a pixel shuffle: receptive radius 0, so patches cannot see their borders."""

    scale = 2

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 1), nn.PReLU(8), nn.Conv2d(8, 12, 1), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


def test_a_network_that_sees_no_neighbours_equals_its_whole_image_forward():
    torch.manual_seed(0)
    net = Pointwise().double().eval()
    lr = torch.rand(1, 3, 64, 61, dtype=torch.float64)
    sr, stats = adaptive_upscale(StaticRoutes(net), lr)
    h, w = stats.out_hw
    with torch.no_grad():
        torch.testing.assert_close(sr, net(lr)[:, :, :h, :w], rtol=0, atol=1e-14)


def test_away_from_the_seams_a_3x3_network_equals_its_whole_image_forward():
    # Radius 1: LR rows/columns 0..27 are seen only by the first patch row/column and 32..55 only by the
    # second, each at least one pixel from that patch's inner border; the overlap strips (28..31) differ.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)).double().eval()
    net.scale = 2
    lr = torch.rand(1, 3, 60, 60, dtype=torch.float64)
    sr, _ = adaptive_upscale(StaticRoutes(net), lr)
    with torch.no_grad():
        whole = net(lr)
    for rows in (slice(0, 56), slice(64, 112)):
        for cols in (slice(0, 56), slice(64, 112)):
            torch.testing.assert_close(sr[..., rows, cols], whole[..., rows, cols], rtol=0, atol=1e-14)
    assert not torch.allclose(sr[..., 56:64, :], whole[..., 56:64, :])


def test_two_routes_with_the_same_network_give_the_single_route_image():
    net = small_net()
    lr = torch.rand(1, 3, 90, 90, dtype=torch.float64)
    single, _ = adaptive_upscale(StaticRoutes(net), lr)
    split, stats = adaptive_upscale(FixedRoutes([net, net], [0, 1, 1, 0, 1, 0, 0, 0, 1]), lr, batch_size=2)
    torch.testing.assert_close(split, single, rtol=0, atol=1e-13)
    assert stats.route_counts == (5, 4)


def test_each_patch_runs_its_route_and_the_macs_add_up():
    light_args, heavy_args = {"d": 8, "s": 4, "m": 1}, {"d": 16, "s": 8, "m": 2}
    light, heavy = small_net(args=light_args), small_net(args=heavy_args)
    routes = [1, 0, 0, 1, 1, 0]
    lr = torch.rand(1, 3, 60, 88, dtype=torch.float64)
    sr, stats = adaptive_upscale(FixedRoutes([light, heavy], routes), lr)
    official = official_patchwise(None, lr, 32, 28, scale=2, route_of=lambda k: [light, heavy][routes[k]])
    torch.testing.assert_close(sr, official, rtol=0, atol=1e-13)
    light_macs = count_macs(build_model("fsrcnn_etds", scale=2, args=light_args), (32, 32))
    heavy_macs = count_macs(build_model("fsrcnn_etds", scale=2, args=heavy_args), (32, 32))
    assert light_macs < heavy_macs
    assert stats.route_counts == (3, 3) and stats.route_macs == (light_macs, heavy_macs)
    assert stats.macs_spent == 3 * light_macs + 3 * heavy_macs
    assert stats.macs_full == 6 * heavy_macs and stats.route_fractions == (0.5, 0.5)
    assert (stats.patch_hw, stats.grid_hw, stats.out_hw) == ((32, 32), (2, 3), (120, 176))


def test_gradient_routes_send_busy_patches_to_the_heavy_path_deterministically():
    torch.manual_seed(0)
    lr = torch.zeros(1, 3, 60, 60, dtype=torch.float64)
    lr[..., 30:, 30:] = torch.rand(3, 30, 30, dtype=torch.float64)  # only the bottom-right patch has texture
    method = GradientRoutes(small_net(args={"d": 8, "s": 4, "m": 1}), small_net(), threshold=0.05)
    first, stats = adaptive_upscale(method, lr)
    again, stats_again = adaptive_upscale(method, lr)
    assert torch.equal(first, again) and stats == stats_again
    assert stats.route_counts == (3, 1) and stats.macs_spent < stats.macs_full
    method.knob = 0.0
    assert adaptive_upscale(method, lr)[1].route_counts == (0, 4)
    assert mean_gradient_magnitude(torch.ones(2, 3, 1, 1)).tolist() == [0.0, 0.0]


def test_the_batch_size_does_not_change_the_image():
    net = small_net()
    lr = torch.rand(1, 3, 88, 88, dtype=torch.float64)
    one, _ = adaptive_upscale(StaticRoutes(net), lr, batch_size=1)
    many, _ = adaptive_upscale(StaticRoutes(net), lr, batch_size=64)
    torch.testing.assert_close(one, many, rtol=0, atol=1e-13)


def test_a_small_image_is_one_patch():
    net = small_net()
    lr = torch.rand(1, 3, 17, 23, dtype=torch.float64)
    sr, stats = adaptive_upscale(StaticRoutes(net), lr)
    with torch.no_grad():
        assert torch.equal(sr, net(lr))
    assert stats.patch_hw == (17, 23) and stats.route_counts == (1,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"patch": 0}, "patch size must be a positive integer"),
     ({"stride": 40}, "patch stride must be an integer from 1 to the patch size 32"),
     ({"batch_size": 0}, "adaptive batch size must be a positive integer")],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(SrlabError, match=message):
        adaptive_upscale(StaticRoutes(small_net()), torch.rand(1, 3, 40, 40), **kwargs)


@pytest.mark.parametrize("shape", [(3, 40, 40), (40,)])
def test_a_single_image_without_batch_dimension_is_refused(shape):
    with pytest.raises(SrlabError, match=rf"\(N, C, H, W\) image batch, got shape {re.escape(str(shape))}"):
        adaptive_upscale(StaticRoutes(small_net()), torch.rand(*shape), whole_image=True)


@pytest.mark.parametrize("knob", [-0.1, 2.5, "high", True])
def test_a_knob_out_of_range_is_a_one_line_error(knob):
    with pytest.raises(SrlabError, match=r"threshold of adaptive method GradientRoutes must be a number in \[0.0, 2.0\]"):
        GradientRoutes(small_net(), small_net(), threshold=knob)


def test_registry_errors_are_one_line():
    with pytest.raises(SrlabError, match="unknown adaptive method 'arm9': choose one of .*arm.*static"):
        build_adaptive("arm9", small_net())
    with pytest.raises(SrlabError, match="adaptive method static has no knob"):
        build_adaptive("static", small_net(), knob=0.5)
    with pytest.raises(SrlabError, match="StaticRoutes has no knob"):
        StaticRoutes(small_net()).knob = 0.5


def test_an_empty_image_is_refused():
    with pytest.raises(SrlabError, match="at least 1x1 pixels, got 0x40"):
        adaptive_upscale(StaticRoutes(small_net()), torch.rand(1, 3, 0, 40))


@pytest.mark.parametrize(("routes", "message"), [([0, 2, 1, 0], r"returned a route outside 0\.\.1"),
                                                  ([0, -1, 1, 0], r"returned a route outside 0\.\.1"),
                                                  ([0, 1, 1], "must return 4 int64 routes")])
def test_a_method_routing_outside_its_routes_is_a_bug_not_a_user_error(routes, message):
    net = small_net()
    with pytest.raises(ValueError, match=message):
        adaptive_upscale(FixedRoutes([net, net], routes), torch.rand(1, 3, 60, 60, dtype=torch.float64))


def test_whole_image_mode_pads_to_the_grid_and_crops_to_the_image():
    net = small_net()
    lr = torch.rand(1, 3, 75, 90, dtype=torch.float64)  # grid covers 60x88 of it
    sr, stats = adaptive_upscale(StaticRoutes(net), lr, whole_image=True)
    padded = F.pad(lr, (0, 88 + 28 - 90, 0, 88 - 75), mode="reflect")  # 88x116: grids of 3x4 patches
    official = official_patchwise(net, padded, 32, 28, scale=2)
    assert sr.shape == (1, 3, 150, 180) and stats.out_hw == (150, 180) and stats.grid_hw == (3, 4) and stats.route_counts == (12,)
    torch.testing.assert_close(sr, official[..., :150, :180], rtol=0, atol=1e-13)
    # where the grid already reaches the border nothing changes
    fits = lr[..., :60, :88]
    assert torch.equal(adaptive_upscale(StaticRoutes(net), fits, whole_image=True)[0],
                       adaptive_upscale(StaticRoutes(net), fits)[0])
