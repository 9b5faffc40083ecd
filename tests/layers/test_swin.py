import math

import pytest
import torch
import torch.nn.functional as F

from srlab.layers import swin
from srlab.layers.swin import (
    LOGIT_SCALE_MAX,
    MASK_VALUE,
    RSTB,
    SwinTransformerBlock,
    WindowAttention,
    WindowAttentionV2,
    log_spaced_coords_table,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


def test_partition_reverse_round_trip_and_window_order():
    x = torch.randn(2, 16, 24, 5)
    windows = window_partition(x, 8)
    assert windows.shape == (2 * 2 * 3, 8, 8, 5)
    # row-major windows, image by image
    assert torch.equal(windows[4], x[0, 8:16, 8:16])
    assert torch.equal(windows[6 + 2], x[1, 0:8, 16:24])
    assert torch.equal(window_reverse(windows, 8, 16, 24), x)


def test_relative_position_index_by_hand_for_a_2x2_window():
    # tokens (0,0), (0,1), (1,0), (1,1); (dy, dx) = pos(i) - pos(j) -> (dy + 1) * 3 + (dx + 1)
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index(2), expected)
    index = relative_position_index(8)
    assert index.shape == (64, 64) and index.dtype == torch.int64
    assert index.min() == 0 and index.max() == 15 * 15 - 1 and torch.all(index.diagonal() == 7 * 15 + 7)


@pytest.mark.parametrize("size", [(16, 16), (8, 24), (24, 16)])
def test_shifted_mask_allows_exactly_the_tokens_that_were_neighbours_before_the_shift(size):
    h, w = size
    ws, shift = 8, 4
    mask = shifted_window_mask(h, w, ws, shift)
    assert mask.shape == (h * w // ws**2, ws**2, ws**2)
    assert set(mask.unique().tolist()) <= {0.0, MASK_VALUE}
    # Which tokens the cyclic shift wrapped around (per axis): their original coordinate is now smaller
    # than their position. Attention is allowed exactly between tokens wrapped alike on both axes.
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack((ys, xs), dim=-1)[None]
    rolled = torch.roll(coords, shifts=(-shift, -shift), dims=(1, 2))
    wrapped = window_partition((rolled < coords).long(), ws).reshape(-1, ws * ws, 2)
    same = (wrapped[:, :, None] == wrapped[:, None, :]).all(dim=-1)
    assert torch.equal(mask == 0, same)
    # the last window holds four regions when both axes wrap
    if h > ws and w > ws:
        assert (mask[-1] == 0).sum() == 4 * 16 * 16


def test_shifted_block_does_not_attend_across_wrapped_regions():
    torch.manual_seed(0)
    block = SwinTransformerBlock(12, 3, window_size=8, shift_size=4, mlp_ratio=2.0, version=1).eval()
    x = torch.randn(1, 16 * 16, 12)
    y = x.clone()
    y[0, 0] += 3 * torch.randn(12)  # token (0, 0): after the shift it sits in the last window, wrapped on both axes
    with torch.no_grad():
        a, b = block(x, (16, 16)), block(y, (16, 16))
        # token (12, 12) shares that shifted window but comes from another region: unaffected
        assert torch.allclose(a[0, 12 * 16 + 12], b[0, 12 * 16 + 12], atol=1e-6)
        # without the mask it would see the change
        unmasked = torch.zeros(4, 64, 64)
        a0, b0 = block(x, (16, 16), unmasked), block(y, (16, 16), unmasked)
        assert not torch.allclose(a0[0, 12 * 16 + 12], b0[0, 12 * 16 + 12], atol=1e-3)


def _bias_from_table_by_loops(table: torch.Tensor, ws: int) -> torch.Tensor:
    heads = table.shape[1]
    bias = table.new_empty(heads, ws * ws, ws * ws)
    for i in range(ws * ws):
        for j in range(ws * ws):
            dy, dx = i // ws - j // ws, i % ws - j % ws
            bias[:, i, j] = table[(dy + ws - 1) * (2 * ws - 1) + (dx + ws - 1)]
    return bias


def _naive_attention(q, k, v, logits_fn, bias, mask):
    """One window, head by head, with explicit softmax."""
    heads, n, d = q.shape
    out = q.new_empty(n, heads * d)
    for h in range(heads):
        logits = logits_fn(q[h], k[h], h) + bias[h] + (0 if mask is None else mask)
        weights = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out[:, h * d:(h + 1) * d] = weights @ v[h]
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_window_attention_equals_a_naive_computation_on_one_window(masked):
    torch.manual_seed(0)
    dim, heads, ws = 12, 3, 4
    attn = WindowAttention(dim, ws, heads).double()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
        attn.qkv.bias.normal_()
    x = torch.randn(1, ws * ws, dim, dtype=torch.float64)
    mask = shifted_window_mask(ws, ws, ws, ws // 2).double() if masked else None
    with torch.no_grad():
        got = attn(x, mask)[0]
        w, b = attn.qkv.weight, attn.qkv.bias
        d = dim // heads
        q, k, v = ((x[0] @ w[i * dim:(i + 1) * dim].T + b[i * dim:(i + 1) * dim]).view(-1, heads, d).transpose(0, 1)
                   for i in range(3))
        bias = _bias_from_table_by_loops(attn.relative_position_bias_table, ws)
        window_mask = None if mask is None else mask[0]
        out = _naive_attention(q, k, v, lambda qh, kh, h: qh @ kh.T / math.sqrt(d), bias, window_mask)
        expected = out @ attn.proj.weight.T + attn.proj.bias
    assert torch.allclose(got, expected, atol=1e-10)


@pytest.mark.parametrize("amx", [False, True])
def test_bfloat16_window_attention_takes_the_form_fast_on_the_cpu(amx, monkeypatch):
    """bf16 on a CPU without AMX: explicit_attention (CPU SDPA's bf16 kernel is slow there); with AMX and in
    float32: SDPA. Both forms compute the same attention (float64 here)."""
    monkeypatch.setattr(swin, "_CPU_HAS_AMX", amx)
    calls = []
    real = swin.explicit_attention
    monkeypatch.setattr(swin, "explicit_attention", lambda *a: calls.append(a[0].dtype) or real(*a))
    torch.manual_seed(0)
    attn = WindowAttention(12, 4, 3)
    mask = shifted_window_mask(8, 8, 4, 2)
    x = torch.randn(4, 16, 12)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
        full = attn(x, mask)
        half = attn.bfloat16()(x.bfloat16(), mask)
    assert calls == ([] if amx else [torch.bfloat16])
    assert (half.float() - full).abs().max().item() < 0.05
    # Against SDPA in float64: two images of four shifted windows, three windows a step (so that steps
    # cross the images' ends), and the same eight windows unmasked.
    monkeypatch.setattr(swin, "ATTENTION_STEP_BYTES", 3 * 3 * 16 * 16 * 8)  # 3 windows of 3 heads, float64
    q, k, v = torch.randn(3, 8, 3, 16, 4, dtype=torch.float64).unbind(0)
    position = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    window_mask = mask.double()
    masked = (position + window_mask[:, None]).repeat(2, 1, 1, 1)
    torch.testing.assert_close(real(q, k, v, position, window_mask, 0.5),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=masked, scale=0.5))
    torch.testing.assert_close(real(q, k, v, position, None, 0.5),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=position, scale=0.5))


def test_window_attention_repeats_the_window_masks_for_each_image_and_trains():
    """Two images of four shifted windows each: the fused kernel against the explicit float32 form
    (q k^T scale + bias + mask, softmax, times v), and gradients reach the relative position bias table."""
    torch.manual_seed(0)
    dim, heads, ws = 12, 3, 4
    attn = WindowAttention(dim, ws, heads)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    mask = shifted_window_mask(2 * ws, 2 * ws, ws, ws // 2)  # 4 windows
    x = torch.randn(2 * 4, ws * ws, dim)
    got = attn(x, mask)
    with torch.no_grad():
        q, k, v = attn.qkv(x).reshape(8, ws * ws, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        logits = (q * attn.scale) @ k.transpose(-2, -1) + attn.position_bias()[None]
        logits = (logits.view(2, 4, heads, ws * ws, ws * ws) + mask[None, :, None]).view_as(logits)
        expected = attn.proj((logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(8, ws * ws, dim))
    assert (got - expected).abs().max().item() < 1e-6
    got.square().sum().backward()
    assert attn.relative_position_bias_table.grad.abs().sum() > 0


def test_cosine_window_attention_equals_a_naive_computation_on_one_window():
    torch.manual_seed(0)
    dim, heads, ws = 12, 3, 4
    attn = WindowAttentionV2(dim, ws, heads).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.randn(1, ws * ws, dim, dtype=torch.float64)
    with torch.no_grad():
        got = attn(x)[0]
        w, d = attn.qkv.weight, dim // heads
        biases = (attn.q_bias, torch.zeros(dim, dtype=torch.float64), attn.v_bias)  # k has no bias
        q, k, v = ((x[0] @ w[i * dim:(i + 1) * dim].T + biases[i]).view(-1, heads, d).transpose(0, 1) for i in range(3))
        # continuous position bias: the MLP on log-spaced (dy, dx), squashed to (0, 16)
        coords = []
        for dy in range(-(ws - 1), ws):
            for dx in range(-(ws - 1), ws):
                t = torch.tensor([dy, dx], dtype=torch.float64) / (ws - 1) * 8
                coords.append(torch.sign(t) * torch.log2(t.abs() + 1) / 3)
        table = attn.cpb_mlp(torch.stack(coords))
        bias = 16 * torch.sigmoid(_bias_from_table_by_loops(table, ws))
        scale = attn.logit_scale.clamp(max=math.log(100)).exp().view(-1)

        def cosine(qh, kh, h):
            return (qh / qh.norm(dim=-1, keepdim=True)) @ (kh / kh.norm(dim=-1, keepdim=True)).T * scale[h]

        expected = _naive_attention(q, k, v, cosine, bias, None) @ attn.proj.weight.T + attn.proj.bias
    assert torch.allclose(got, expected, atol=1e-10)


def test_cosine_attention_logit_scale_is_clamped_at_log_100():
    torch.manual_seed(0)
    attn = WindowAttentionV2(12, 4, 3)
    x = torch.randn(2, 16, 12)
    assert LOGIT_SCALE_MAX == pytest.approx(math.log(100))
    with torch.no_grad():
        attn.logit_scale.copy_(torch.tensor([1.0, 10.0, math.log(100)]).view(3, 1, 1))
        scale = attn.clamped_logit_scale().view(-1)
        assert scale.tolist() == pytest.approx([math.e, 100.0, 100.0], rel=1e-6)
        attn.logit_scale.fill_(20.0)
        big = attn(x)
        attn.logit_scale.fill_(math.log(100))
        assert torch.allclose(big, attn(x), atol=1e-6)
    # the initial scale is 10
    assert WindowAttentionV2(12, 4, 3).clamped_logit_scale().view(-1).tolist() == pytest.approx([10.0] * 3)


def test_log_spaced_coords_table():
    table = log_spaced_coords_table(8)
    assert table.shape == (1, 15, 15, 2)
    assert torch.equal(table[0, 7, 7], torch.zeros(2))
    assert table[0, 0, 0].tolist() == pytest.approx([-math.log2(9) / 3] * 2)  # (dy, dx) = (-7, -7) -> -8
    assert table[0, 14, 7].tolist() == pytest.approx([math.log2(9) / 3, 0.0])
    # with a pre-training window the coordinates are normalised by it instead
    assert log_spaced_coords_table(8, 4)[0, 14, 7, 0].item() == pytest.approx(math.log2(1 + 7 / 3 * 8) / 3)


def test_post_norm_block_with_zero_norms_is_the_identity():
    torch.manual_seed(0)
    x = torch.randn(1, 64, 12)
    for version in (1, 2):
        block = SwinTransformerBlock(12, 3, window_size=8, shift_size=4, mlp_ratio=2.0, version=version)
        with torch.no_grad():
            for norm in (block.norm1, block.norm2):
                norm.weight.zero_()
                norm.bias.zero_()
            y = block(x, (8, 8))
        # v2 normalises the branch outputs (residual post-norm): zero norms silence both branches;
        # v1 normalises the branch inputs, so the biases still pass
        assert torch.equal(y, x) == (version == 2)


def test_rstb_parameter_names_and_shapes():
    v1 = RSTB(12, 2, 3, window_size=8, mlp_ratio=2.0, version=1)
    v2 = RSTB(12, 2, 3, window_size=8, mlp_ratio=2.0, version=2)
    k1, k2 = set(v1.state_dict()), set(v2.state_dict())
    assert "residual_group.blocks.1.attn.relative_position_bias_table" in k1
    assert "conv.weight" in k1 and not any(k.startswith("patch_embed") for k in k1)
    assert {"patch_embed.proj.weight", "residual_group.blocks.0.attn.logit_scale",
            "residual_group.blocks.0.attn.cpb_mlp.2.weight", "residual_group.blocks.0.attn.relative_coords_table",
            "residual_group.blocks.0.attn.q_bias"} <= k2
    assert "residual_group.blocks.0.attn.qkv.bias" not in k2 and "residual_group.blocks.0.attn.cpb_mlp.2.bias" not in k2
    # no input-size-dependent tensor is stored
    assert not any("attn_mask" in k for k in k1 | k2)
    x = torch.randn(2, 16 * 24, 12)
    for layer in (v1, v2):
        y = layer(x, (16, 24))
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_mask_is_built_on_the_requested_device_and_size():
    mask = shifted_window_mask(16, 24, 8, 4, device="meta")
    assert mask.device.type == "meta" and mask.shape == (6, 64, 64)
    with pytest.raises(ValueError, match="12x16 is not a multiple of the window size 8"):
        shifted_window_mask(12, 16, 8, 4)
    # cached: the same tensor for the same size (callers must not modify it)
    assert shifted_window_mask(16, 24, 8, 4) is shifted_window_mask(16, 24, 8, 4)
    assert F.softmax(shifted_window_mask(16, 24, 8, 4)[-1], dim=-1).isfinite().all()


def test_an_export_at_a_new_size_leaves_the_eager_forward_at_that_size_intact():
    """torch.export (srlab's compiled paths, ONNX) at a size no eager forward has seen traces the mask
    without caching the tracer's tensor (once cached, the next eager forward at that size failed); a size
    an eager forward has seen exports its mask as one constant of the graph."""

    class Shifted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = SwinTransformerBlock(12, 3, window_size=4, shift_size=2, mlp_ratio=2.0, version=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(x, (12, 20))

    torch.manual_seed(0)
    model = Shifted().eval()
    x = torch.randn(1, 12 * 20, 12)
    swin._MASKS.clear()
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        eager = model(x)
        torch.testing.assert_close(exported.module()(x), eager)
        swin._MASKS.clear()
        torch.testing.assert_close(model(x), eager, rtol=0, atol=0)
    warm = torch.export.export(model, (x,))
    assert [tuple(c.shape) for c in warm.constants.values()] == [(15, 16, 16)]


def test_bfloat16_attention_steps_are_bounded_in_an_exported_graph(monkeypatch):
    """explicit_attention's steps: as many as the byte budget asks in eager, at most ATTENTION_TRACED_STEPS
    under torch.export (each step is code of its own in a package); the same outputs either way."""
    monkeypatch.setattr(swin, "_CPU_HAS_AMX", False)
    monkeypatch.setattr(swin, "ATTENTION_STEP_BYTES", 3 * 16 * 16 * 2)  # one window of 3 heads a step
    torch.manual_seed(0)
    attn = WindowAttention(12, 4, 3).bfloat16().eval()
    x = torch.randn(64, 16, 12).bfloat16()
    eager_steps = []
    real = torch.baddbmm
    monkeypatch.setattr(torch, "baddbmm", lambda *a, **k: eager_steps.append(1) or real(*a, **k))
    with torch.no_grad():
        expected = attn(x)
    monkeypatch.setattr(torch, "baddbmm", real)
    exported = torch.export.export(attn, (x,))
    traced_steps = [node for node in exported.graph.nodes if node.target == torch.ops.aten.baddbmm.default]
    assert len(eager_steps) == 64
    assert len(traced_steps) == swin.ATTENTION_TRACED_STEPS
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), expected)
