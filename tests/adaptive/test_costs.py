import torch

from srlab.adaptive import adaptive_upscale
from srlab.adaptive.costs import route_macs
from srlab.adaptive.reference import StaticRoutes
from srlab.models.complexity import count_macs
from srlab.models.registry import build_model


def test_route_macs_are_counted_once_and_right_under_inference_mode():
    net = build_model("fsrcnn_etds", scale=2, args={"d": 8, "s": 4, "m": 1}).eval()
    method = StaticRoutes(net)
    expected = count_macs(net, (32, 32))
    with torch.inference_mode():
        _, stats = adaptive_upscale(method, torch.rand(1, 3, 60, 60))
        assert stats.route_macs == (expected,)
    calls = []
    method.route_macs = lambda index, hw: calls.append(hw) or 0  # a second count would be seen here
    assert route_macs(method, 0, (32, 32)) == expected and calls == []
    assert route_macs(method, 0, (16, 8)) == 0 and calls == [(16, 8)]
