"""rdsr_adaptive's shared-feature execution: exactness with one exit, MAC counting, covers, small and odd images."""

import pytest
import torch
import torch.nn.functional as F

import srlab
from srlab.adaptive.rdsr import calibrate_router, raise_lone_blocks, rdsr_adaptive
from srlab.adaptive.rdsr_shared import grown_cover, shared_upscale
from srlab.errors import SrlabError
from srlab.models import count_macs
from srlab.models.complexity import measure_macs

SMALL = {"channels": 8, "num_blocks": 3, "ca_reduction": 4, "router_width": 4}


def _network(scale=2, dtype=torch.float64):
    torch.manual_seed(0)
    network = srlab.create_model("rdsr_adaptive", scale=scale, args=SMALL)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return network.to(dtype).eval()


def _image(h, w, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 3, stride=1, padding=1).to(dtype)


def _grid(h, w, block):
    return -(-h // block), -(-w // block)


@pytest.mark.parametrize(
    ("h", "w", "block", "region"), [(37, 53, 8, 16), (40, 48, 16, 16), (37, 53, 16, 64), (5, 7, 16, 16)]
)
def test_every_block_on_one_exit_is_that_exits_whole_image_forward(h, w, block, region):
    network = _network()
    lr = _image(h, w)
    rows, cols = _grid(h, w, block)
    for k in range(network.num_exits):
        sr, _ = shared_upscale(network, lr, torch.full((rows, cols), k), block=block, region=region)
        with torch.no_grad():
            expected = network(lr) if k == network.num_exits - 1 else network.forward_exit(lr, k)
        torch.testing.assert_close(sr, expected, rtol=0, atol=1e-12)


def test_mixed_exits_compute_each_blocks_own_exit_but_at_the_tails_one_pixel_context():
    """Without ESA and the attention pools (the layers that see far) every block is its exit's whole-image
    output, but for the pixels next to a block of another exit: the tail reads the fused map there."""
    network = _network()
    network.esa = torch.nn.Identity()  # the only spatially wide layer besides the attention pools
    lr = _image(40, 56)
    routes = torch.tensor([[0, 3, 1, 2], [3, 2, 0, 3], [1, 1, 3, 0]])
    sr, _ = _shared_without_attention(network, lr, routes)
    with torch.no_grad():
        outputs = [network.forward_exit(lr, k) for k in range(network.num_exits - 1)] + [network(lr)]
    for r in range(3):
        for c in range(4):
            cell = (..., slice(r * 28 + 2, (r + 1) * 28 - 2), slice(c * 28 + 2, (c + 1) * 28 - 2))
            torch.testing.assert_close(sr[cell], outputs[int(routes[r, c])][cell], rtol=0, atol=1e-12)


class One(torch.nn.Module):
    """A channel attention whose gate is one (sigmoid(50) is 1 in float64 to 2e-22)."""

    def __init__(self, channels):
        super().__init__()
        self.squeeze = torch.nn.Conv2d(channels, 1, 1).double()
        self.excite = torch.nn.Conv2d(1, channels, 1).double()
        torch.nn.init.zeros_(self.squeeze.weight)
        torch.nn.init.zeros_(self.excite.weight)
        torch.nn.init.constant_(self.excite.bias, 50.0)

    def forward(self, x):
        return x


def _shared_without_attention(network, lr, routes):
    """shared_upscale on a network whose blocks' channel attention passes its input unchanged."""
    for block in network.blocks:
        block.attention = One(8)
    return shared_upscale(network, lr, routes, block=14, region=28)


def test_the_macs_are_those_of_what_ran():
    network = _network(dtype=torch.float32)
    lr = _image(45, 70, dtype=torch.float32)
    rows, cols = _grid(45, 70, 16)
    full = torch.full((rows, cols), network.num_exits - 1)
    _, stats = shared_upscale(network, lr, full, block=16, region=128)  # one rectangle a depth
    assert stats.macs == count_macs(network, (45, 70))
    routes = torch.tensor([[0, 3, 3, 1, 2], [3, 2, 2, 0, 0], [1, 1, 3, 0, 3]])
    (_, stats), measured = measure_macs(network, lambda: shared_upscale(network, lr, routes, block=16, region=32))
    pooled = sum(stats.area) * 8  # the attention pools (plain sums, invisible to the counter): one per element
    assert stats.macs == measured + pooled
    assert stats.area[0] > stats.area[1] > stats.area[2] and stats.macs < count_macs(network, (45, 70))


@pytest.mark.parametrize("grow", [0, 1, 3, 9])
def test_the_grown_cover_is_disjoint_exact_and_within_the_side(grow):
    g = torch.Generator().manual_seed(grow)
    mask = torch.rand(5, 7, generator=g) < 0.4
    height, width, block = 75, 100, 16
    rects = grown_cover(mask, block=block, height=height, width=width, grow=grow, max_side=40)
    covered = torch.zeros(height, width, dtype=torch.long)
    for y0, y1, x0, x1 in rects:
        assert 0 < y1 - y0 <= 40 and 0 < x1 - x0 <= 40
        covered[y0:y1, x0:x1] += 1
    expected = torch.zeros(height, width, dtype=torch.bool)
    for r, c in mask.nonzero().tolist():
        top, left = max(r * block - grow, 0), max(c * block - grow, 0)
        expected[top : (r + 1) * block + grow, left : (c + 1) * block + grow] = True
    assert torch.equal(covered, expected.long())
    assert grown_cover(torch.zeros(2, 2, dtype=torch.bool), block=8, height=16, width=16, grow=3, max_side=8) == []


def test_lone_shallow_blocks_are_raised_to_their_shallowest_neighbour():
    routes = torch.tensor([[4, 4, 1], [3, 0, 2], [4, 2, 4]])
    assert raise_lone_blocks(routes).tolist() == [[4, 4, 2], [3, 2, 2], [4, 2, 4]]  # all at once, from the old map
    assert raise_lone_blocks(torch.tensor([[0]])).tolist() == [[0]]  # no neighbours: left as it is


@pytest.fixture(scope="module")
def trained():
    network = _network(dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    hr = F.avg_pool2d(torch.rand(1, 3, 96, 96, generator=g), 5, stride=1, padding=2)
    hr[..., :48] = 0.4
    calibrate_router(network, [(F.avg_pool2d(hr, 2)[0], hr[0])], patch=12, stride=6, steps=200)
    return network


@pytest.mark.parametrize("size", [(70, 130), (9, 13)])  # the second: smaller than one routing block
def test_the_method_runs_the_shared_mode_and_counts_its_router(trained, size):
    method = rdsr_adaptive(trained, knob=0.0)
    method.execution = "shared"
    lr = _image(*size, dtype=torch.float32)
    sr, stats = method.upscale(lr)
    with torch.no_grad():
        torch.testing.assert_close(sr, trained(lr), rtol=0, atol=2e-5)
    assert stats.router_macs == 0 and stats.macs_full == count_macs(trained, size)
    method.knob = 1.0
    sr, stats = method.upscale(torch.cat([lr, lr.flip(-1)]))
    blocks = _grid(*size, 64)
    assert sr.shape == (2, 3, 2 * size[0], 2 * size[1]) and stats.units == 2 * blocks[0] * blocks[1]
    assert stats.router_macs == stats.units * method.router_macs((64, 64)) > 0
    assert stats.macs_full == 2 * count_macs(trained, size)


def test_an_unknown_execution_is_a_one_line_error(trained):
    method = rdsr_adaptive(trained, knob=0.0)
    method.execution = "tiles"
    with pytest.raises(SrlabError, match="execution must be one of regions, shared, cascade, cascade_shared, got 'tiles'"):
        method.upscale(_image(20, 20, dtype=torch.float32))


@pytest.mark.parametrize("execution", ["regions", "shared"])
def test_raised_lone_blocks_are_run_on_their_new_exit(trained, execution, monkeypatch):
    method = rdsr_adaptive(trained, knob=1.0)
    method.execution, method.raise_lone = execution, True
    routed = torch.tensor([2, 2, 2, 2, 0, 2, 2, 2, 2])  # a 3x3 grid of 64x64 blocks, a lone exit 0 in the middle
    monkeypatch.setattr(method, "route", lambda patches: routed.clone())
    lr = _image(150, 160, dtype=torch.float32)
    sr, stats = method.upscale(lr)
    assert stats.route_counts == (0, 0, 9, 0)
    method.raise_lone = False
    plain, _ = method.upscale(lr)
    monkeypatch.setattr(method, "route", lambda patches: torch.full((9,), 2))
    everywhere, _ = method.upscale(lr)
    assert torch.equal(sr, everywhere) and not torch.equal(sr, plain)
