import pytest
import torch
import torch.nn.functional as F

from srlab.layers.omni import (
    MBConv,
    OmniESA,
    OSABlock,
    TransposedChannelAttention,
    WindowAttention,
    merge,
    partition,
    relative_position_index,
)


@pytest.mark.parametrize("grid", [False, True])
def test_rotation_then_inverse_is_identity(grid):
    x = torch.randn(2, 5, 16, 24)
    windows = partition(x, 8, grid=grid)
    assert windows.shape == (2, 2, 3, 8, 8, 5)
    assert torch.equal(merge(windows, grid=grid), x)
    # and the other way round: R(R^-1(w)) = w
    assert torch.equal(partition(merge(windows, grid=grid), 8, grid=grid), windows)


def test_partition_positions():
    b, c, h, w, ws = 1, 3, 8, 12, 4
    x = torch.randn(b, c, h, w)
    block = partition(x, ws, grid=False)
    grid = partition(x, ws, grid=True)
    for i in range(h // ws):
        for j in range(w // ws):
            for p in range(ws):
                for q in range(ws):
                    assert torch.equal(block[0, i, j, p, q], x[0, :, i * ws + p, j * ws + q])
                    # grid window (i, j) = pixels dilated by H/ws, W/ws over the whole image
                    assert torch.equal(grid[0, i, j, p, q], x[0, :, p * (h // ws) + i, q * (w // ws) + j])


def test_partition_needs_window_multiples():
    with pytest.raises(ValueError, match="multiples"):
        partition(torch.randn(1, 2, 12, 16), 8, grid=True)


def test_relative_position_index_by_hand():
    ws = 3
    idx = relative_position_index(ws)
    assert idx.shape == (9, 9)
    for a in range(9):
        for b in range(9):
            (ra, ca), (rb, cb) = divmod(a, ws), divmod(b, ws)
            assert idx[a, b] == (ra - rb + ws - 1) * (2 * ws - 1) + (ca - cb + ws - 1)
    assert idx.max() == (2 * ws - 1) ** 2 - 1


def _naive_window_attention(attn: WindowAttention, tokens, positions, ws):
    """Multi-head attention over a list of tokens (n, C) written out: positions are (row, col) in
    the window, for the relative-position bias."""
    c = tokens.shape[1]
    heads, dh = attn.heads, c // attn.heads
    qkv = tokens @ attn.to_qkv.weight.t()
    q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
    table = attn.rel_pos_bias.weight
    outs = []
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        logits = torch.empty(len(positions), len(positions), dtype=tokens.dtype)
        for a, (ra, ca) in enumerate(positions):
            for b, (rb, cb) in enumerate(positions):
                bias = table[(ra - rb + ws - 1) * (2 * ws - 1) + (ca - cb + ws - 1), h]
                logits[a, b] = (q[a, sl] @ k[b, sl]) * dh**-0.5 + bias
        outs.append(logits.softmax(-1) @ v[:, sl])
    return torch.cat(outs, dim=1) @ attn.to_out[0].weight.t()


@pytest.mark.parametrize("grid", [True, False])
def test_grid_attention_equals_naive_attention_over_dilated_positions(grid):
    torch.manual_seed(0)
    ws, c, h, w = 4, 8, 8, 12
    attn = WindowAttention(c, dim_head=4, window_size=ws, with_pe=True).double()
    torch.nn.init.normal_(attn.rel_pos_bias.weight)
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    with torch.no_grad():
        y = merge(attn(partition(x, ws, grid=grid)), grid=grid)
        positions = [(p, q) for p in range(ws) for q in range(ws)]
        for i in range(h // ws):
            for j in range(w // ws):
                if grid:  # window (i, j): every (h/ws)-th row and (w/ws)-th column
                    pixels = [(p * (h // ws) + i, q * (w // ws) + j) for p, q in positions]
                else:
                    pixels = [(i * ws + p, j * ws + q) for p, q in positions]
                tokens = torch.stack([x[0, :, r, s] for r, s in pixels])
                expected = _naive_window_attention(attn, tokens, positions, ws)
                got = torch.stack([y[0, :, r, s] for r, s in pixels])
                torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_window_attention_fused_kernel_in_float32_matches_the_explicit_form_and_trains():
    torch.manual_seed(0)
    attn = WindowAttention(16, dim_head=4, window_size=4, with_pe=True)
    torch.nn.init.normal_(attn.rel_pos_bias.weight)
    windows = partition(torch.randn(2, 16, 8, 12), 4, grid=False)
    got = attn(windows)
    with torch.no_grad():
        tokens = windows.reshape(-1, 16, 16)
        q, k, v = (t.reshape(t.shape[0], 16, attn.heads, -1).transpose(1, 2) for t in attn.to_qkv(tokens).chunk(3, -1))
        logits = (q * attn.scale) @ k.transpose(-2, -1) + attn.position_bias()
        expected = attn.to_out((logits.softmax(-1) @ v).transpose(1, 2).reshape(-1, 16, 16)).view_as(windows)
    assert (got - expected).abs().max().item() < 1e-6
    got.square().sum().backward()
    assert attn.rel_pos_bias.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("grid", [False, True])
def test_channel_attention_equals_hand_computation(grid):
    torch.manual_seed(1)
    c, heads, ws, h, w = 8, 2, 4, 8, 12
    ca = TransposedChannelAttention(c, heads=heads, window_size=ws, grid=grid).double()
    with torch.no_grad():
        ca.temperature.copy_(torch.tensor([0.7, 2.5]).view(2, 1, 1))
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    with torch.no_grad():
        y = ca(x)
        q, k, v = ca.qkv_dwconv(ca.qkv(x))[0].chunk(3, dim=0)  # (C, H, W) each
        mixed = torch.zeros(c, h, w, dtype=torch.float64)
        d = c // heads
        if grid:  # one group per position inside the window, spread over all windows
            groups = [[(p + ws * r, s + ws * t) for r in range(h // ws) for t in range(w // ws)]
                      for p in range(ws) for s in range(ws)]
        else:  # one group per window
            groups = [[(ws * r + p, ws * t + s) for p in range(ws) for s in range(ws)]
                      for r in range(h // ws) for t in range(w // ws)]
        for pixels in groups:
            rows = torch.tensor([r for r, _ in pixels])
            cols = torch.tensor([s for _, s in pixels])
            for hd in range(heads):
                ch = slice(hd * d, (hd + 1) * d)
                qm, km, vm = q[ch][:, rows, cols], k[ch][:, rows, cols], v[ch][:, rows, cols]  # (d, P)
                qm = qm / qm.norm(dim=1, keepdim=True)
                km = km / km.norm(dim=1, keepdim=True)
                a = torch.softmax(ca.temperature[hd, 0, 0] * (qm @ km.t()), dim=1)  # (d, d)
                mixed[ch.start : ch.stop, rows, cols] = a @ vm
        expected = ca.project_out(mixed[None])
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)


def test_mbconv_squeeze_excitation_and_residual():
    m = MBConv(8, 8, expansion_rate=1, shrinkage_rate=0.25)
    x = torch.randn(2, 8, 5, 5)
    f = m.fn
    t = F.gelu(f[2](F.gelu(f[0](x))))
    gate = torch.sigmoid(f[4].gate[3].weight @ F.silu(f[4].gate[1].weight @ t.mean((2, 3)).t())).t()
    torch.testing.assert_close(m(x), f[5](t * gate[:, :, None, None]) + x)
    assert [k for k, _ in m.named_parameters()] == [
        "fn.0.weight", "fn.0.bias", "fn.2.weight", "fn.2.bias", "fn.4.gate.1.weight", "fn.4.gate.3.weight",
        "fn.5.weight", "fn.5.bias",
    ]


def test_osa_block_layout_and_shapes():
    block = OSABlock(16, window_size=4, with_pe=True)
    names = {k.split(".")[1] for k, _ in block.named_parameters()}
    assert names == {"0", "2", "4", "5", "6", "8", "10", "11", "12"}  # 1, 3, 7, 9 are R / R^-1
    x = torch.randn(1, 16, 8, 12)
    assert block(x).shape == x.shape
    assert "layer.2.fn.rel_pos_indices" not in block.state_dict()  # rebuilt, never stored


def test_omni_esa_shape_and_minimum_size():
    esa = OmniESA(4, 8)
    x = torch.randn(1, 8, 16, 17)
    assert esa(x).shape == x.shape
    assert [k.split(".")[0] for k in esa.state_dict()][::2] == ["conv1", "conv_f", "conv2", "conv3", "conv4"]
    with pytest.raises(RuntimeError, match="Output size is too small"):
        esa(torch.randn(1, 8, 8, 8))  # the official ESA needs >= 15 px (the model pads to 16)
