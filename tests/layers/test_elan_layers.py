"""ELAN's layers (srlab.layers.elan) against explicit, naive computations."""

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from srlab.layers.elan import ELAB, GMSA, LFE, ShiftConv2d, window_partition, window_reverse


def _randomise(module: torch.nn.Module) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (so no projection is near identity), float64, eval."""
    torch.manual_seed(0)
    module = module.double()
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if "shift_conv.weight" in name or not tensor.is_floating_point():
                continue
            tensor.copy_(0.3 * torch.randn_like(tensor))
            if name.endswith("running_var"):
                tensor.abs_().add_(0.5)
    return module.eval()


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[..., i, j] = x[..., i + dy, j + dx], zero outside."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def test_shift_conv_is_shifted_copies_then_1x1():
    layer = _randomise(ShiftConv2d(12, 7))  # 12 channels: groups of 2, the identity keeps the last 4
    x = torch.randn(2, 12, 6, 9, dtype=torch.float64)
    core = layer.shift_conv
    shifted = torch.cat(
        [
            _shifted(x[:, 0:2], 0, 1),  # "left": reads the right neighbour
            _shifted(x[:, 2:4], 0, -1),  # "right"
            _shifted(x[:, 4:6], 1, 0),  # "up"
            _shifted(x[:, 6:8], -1, 0),  # "down"
            x[:, 8:],
        ],
        dim=1,
    )
    expected = F.conv2d(shifted, core.conv1x1.weight, core.conv1x1.bias)
    assert torch.allclose(layer(x), expected, atol=1e-12)
    # the shift kernels are a frozen parameter (the official layout): not trained, not counted
    assert not core.weight.requires_grad and core.weight.shape == (12, 1, 3, 3)
    assert core.weight.sum() == 12 and (core.weight.flatten(1).sum(1) == 1).all()
    assert sum(p.numel() for p in layer.parameters() if p.requires_grad) == 12 * 7 + 7


def test_lfe_is_shift_conv_relu_shift_conv():
    layer = _randomise(LFE(10, 10, exp_ratio=2))
    assert layer.conv0.shift_conv.conv1x1.out_channels == 20
    x = torch.randn(1, 10, 5, 7, dtype=torch.float64)
    assert torch.allclose(layer(x), layer.conv1(torch.relu(layer.conv0(x))))


def test_window_partition_round_trip_and_order():
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float64).view(2, 3, 8, 12)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(windows[1, :, 0], x[0, 0, 0:4, 4:8].flatten())  # raster order of windows and pixels
    assert torch.equal(window_reverse(windows, 4, 8, 12), x)


def _naive_gmsa(layer: GMSA, x: torch.Tensor, maps=None) -> torch.Tensor:
    """softmax(Q Q^T) V in every window, with explicit loops (ELAN's key is its query)."""
    projected = layer.project_inp(x)
    parts = torch.split(projected, layer.split_chns, dim=1)
    outputs = []
    for g, (part, size) in enumerate(zip(parts, layer.window_sizes)):
        if layer.shifts:
            part = torch.roll(part, (-(size // 2), -(size // 2)), dims=(2, 3))
        out = torch.empty(part.shape[0], part.shape[1] // (1 if maps else 2), *part.shape[2:], dtype=x.dtype)
        n = 0
        for b in range(part.shape[0]):
            for top in range(0, part.shape[2], size):
                for left in range(0, part.shape[3], size):
                    window = part[b, :, top : top + size, left : left + size].reshape(part.shape[1], -1).T
                    if maps:
                        attn, v = maps[g][n], window
                    else:
                        q, v = window[:, : window.shape[1] // 2], window[:, window.shape[1] // 2 :]
                        attn = torch.softmax(q @ q.T, dim=-1)
                    out[b, :, top : top + size, left : left + size] = (attn @ v).T.reshape(-1, size, size)
                    n += 1
        if layer.shifts:
            out = torch.roll(out, (size // 2, size // 2), dims=(2, 3))
        outputs.append(out)
    return layer.project_out(torch.cat(outputs, dim=1))


def test_gmsa_on_one_window_is_plain_softmax_attention():
    layer = _randomise(GMSA(12, window_sizes=(8, 8, 8)))
    x = torch.randn(1, 12, 8, 8, dtype=torch.float64)
    y, maps = layer(x)
    qv = layer.project_inp(x).flatten(2).transpose(1, 2)[0]  # (64 tokens, 24 channels)
    heads = []
    for g in range(3):
        q, v = qv[:, 8 * g : 8 * g + 4], qv[:, 8 * g + 4 : 8 * g + 8]
        attn = torch.softmax(q @ q.T, dim=-1)
        assert torch.allclose(maps[g][0], attn, atol=1e-12)
        heads.append(attn @ v)
    expected = layer.project_out(torch.cat(heads, dim=1).T.reshape(1, 12, 8, 8))
    assert torch.allclose(y, expected, atol=1e-10)
    # one window: the cyclic shift only permutes tokens, which attention is equivariant to
    layer.shifts = 1
    assert torch.allclose(layer(x)[0], y, atol=1e-10)


def test_gmsa_multi_scale_windows_match_naive_loops_with_and_without_shift():
    x = torch.randn(2, 12, 16, 32, dtype=torch.float64)
    for shifts in (0, 1):
        layer = _randomise(GMSA(12, shifts=shifts, window_sizes=(4, 8, 16)))
        y, maps = layer(x)
        assert [m.shape for m in maps] == [(2 * 32, 16, 16), (2 * 8, 64, 64), (2 * 2, 256, 256)]
        assert torch.allclose(y, _naive_gmsa(layer, x), atol=1e-10)
        shared = _randomise(GMSA(12, shifts=shifts, window_sizes=(4, 8, 16), calc_attn=False))
        assert shared.project_inp[0].out_channels == 12  # values only
        y2, maps2 = shared(x, maps)
        assert torch.allclose(y2, _naive_gmsa(shared, x, maps), atol=1e-10)
        assert all(a is b for a, b in zip(maps2, maps))


class _CountBmm(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.bmm, torch.ops.aten.mm, torch.ops.aten.matmul):
            self.shapes.append((tuple(args[0].shape), tuple(args[1].shape)))
        return func(*args, **(kwargs or {}))


def test_elab_shares_the_first_attention_maps():
    block = _randomise(ELAB(12, 12, exp_ratio=2, shifts=1, window_sizes=(4, 8, 16), shared_depth=2))
    assert list(block.modules_gmsa) == ["gmsa_0", "gmsa_1", "gmsa_2"]
    assert [g.calc_attn for g in block.modules_gmsa.values()] == [True, False, False]
    x = torch.randn(1, 12, 16, 16, dtype=torch.float64)

    maps_seen = {}  # per GMSA: the maps it was given and the maps it returned
    for name, gmsa in block.modules_gmsa.items():
        gmsa.register_forward_hook(lambda m, args, out, n=name: maps_seen.__setitem__(n, (args[1], out[1])))
    counter = _CountBmm()
    with torch.no_grad(), counter:
        y = block(x)

    # Query-key products (Q Q^T: (T x d) @ (d x T)) only in gmsa_0, one per group; map-value products
    # ((T x T) @ (T x d)) in every GMSA: 3 groups x 3 GMSAs.
    query_key = [(a, b) for a, b in counter.shapes if a[-1] != a[-2]]
    map_value = [(a, b) for a, b in counter.shapes if a[-1] == a[-2]]
    assert len(counter.shapes) == 12 and len(query_key) == 3 and len(map_value) == 9
    assert maps_seen["gmsa_0"][0] is None
    for name in ("gmsa_1", "gmsa_2"):
        given, returned = maps_seen[name]
        assert all(a is b for a, b in zip(given, maps_seen["gmsa_0"][1]))
        assert all(a is b for a, b in zip(returned, maps_seen["gmsa_0"][1]))

    # and the block is the residual chain of (LFE, GMSA) pairs
    with torch.no_grad():
        h = x
        maps = None
        for i in range(3):
            h = block.modules_lfe[f"lfe_{i}"](h) + h
            out, maps = block.modules_gmsa[f"gmsa_{i}"](h, maps)
            h = out + h
    assert torch.allclose(y, h, atol=1e-12)
