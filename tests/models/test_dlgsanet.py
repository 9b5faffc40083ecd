import pytest
import torch

import srlab
import srlab.models.dlgsanet  # noqa: F401  (registers the models)
from srlab.layers.dynamic_conv import dynamic_conv_macs
from srlab.models.dlgsanet import SparseAttention, channel_layer_norm
from srlab.models.registry import model_info
from srlab.models.weights import save_weights
from srlab.models.complexity import lr_size_for_720p, macs_720p
from conftest import OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts


VARIANTS = {"dlgsanet_tiny": 3, "dlgsanet_light": 4}  # name -> groups (BuildBlocks)
# sum(p.numel()) of the official DLGSANet (paper-results.md §2, "(arch)"); published (DLGSANet README
# table, rounded): Tiny 566K / 572K / 581K, Light 745K / 752K / 761K.
EXPECTED_PARAMS = {
    ("dlgsanet_tiny", 2): 565_710,
    ("dlgsanet_tiny", 3): 572_205,
    ("dlgsanet_tiny", 4): 581_298,
    ("dlgsanet_light", 2): 745_188,
    ("dlgsanet_light", 3): 751_683,
    ("dlgsanet_light", 4): 760_776,
}


@pytest.fixture(scope="module")
def tiny():
    return {s: srlab.create_model("dlgsanet_tiny", scale=s) for s in (2, 3, 4)}


def _perturbed(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_parameter_count_by_hand():
    c, hidden, k, groups_per_pixel, s = 48, 96, 7, 8, 2
    ffn = c * 2 * hidden + 2 * hidden * 9 + hidden * c
    kernels = groups_per_pixel * k * k
    hyper = (c * c // 4 + c // 4) + (c // 4 * k * k + c // 4) + (c // 4 * kernels + kernels)
    idynamic = 2 * c + 2 * c * c + hyper + 2 * c + ffn
    sparse = 2 * c + 6 + 3 * c * c + 3 * c * 9 + c * c + 2 * c + ffn
    block = 3 * (idynamic + sparse) + 9 * c * c + c
    for name, g in VARIANTS.items():
        total = 27 * c + g * block + 9 * c * c + c + 9 * c * 3 * s * s + 3 * s * s
        assert total == EXPECTED_PARAMS[(name, s)]


def _official_keys(groups, scale):
    """The official state dict's names and shapes (basicsr/archs/dlgsanet_arch.py, 'sparseedge', dim 48),
    written out from its module structure: the reference JSON has no DLGSANet entry."""
    c, hidden, k = 48, 96, 7
    keys = [("overlap_embed.0.proj.weight", (c, 3, 3, 3))]
    for g in range(groups):
        for j in range(3):
            p = f"deep_feature_extraction.{g}.body.{2 * j}."
            keys += [
                (p + "norm1.body.weight", (c,)),
                (p + "norm1.body.bias", (c,)),
                (p + "IDynamicDWConv.conv0.weight", (c, c, 1, 1)),
                (p + "IDynamicDWConv.conv1.weight", (c, c, 1, 1)),
                (p + "IDynamicDWConv.conv.conv1.0.weight", (c // 4, c, 1, 1)),
                (p + "IDynamicDWConv.conv.conv1.0.bias", (c // 4,)),
                (p + "IDynamicDWConv.conv.conv1.1.weight", (c // 4, 1, k, k)),
                (p + "IDynamicDWConv.conv.conv1.1.bias", (c // 4,)),
                (p + "IDynamicDWConv.conv.conv2.0.weight", (8 * k * k, c // 4, 1, 1)),
                (p + "IDynamicDWConv.conv.conv2.0.bias", (8 * k * k,)),
                (p + "norm2.body.weight", (c,)),
                (p + "norm2.body.bias", (c,)),
                (p + "IDynamic_ffn.project_in.weight", (2 * hidden, c, 1, 1)),
                (p + "IDynamic_ffn.dwconv.weight", (2 * hidden, 1, 3, 3)),
                (p + "IDynamic_ffn.project_out.weight", (c, hidden, 1, 1)),
            ]
            p = f"deep_feature_extraction.{g}.body.{2 * j + 1}."
            keys += [
                (p + "norm3.body.weight", (c,)),
                (p + "norm3.body.bias", (c,)),
                (p + "restormer_attn.temperature", (6, 1, 1)),
                (p + "restormer_attn.qkv.weight", (3 * c, c, 1, 1)),
                (p + "restormer_attn.qkv_dwconv.weight", (3 * c, 1, 3, 3)),
                (p + "restormer_attn.project_out.weight", (c, c, 1, 1)),
                (p + "norm4.body.weight", (c,)),
                (p + "norm4.body.bias", (c,)),
                (p + "restormer_ffn.project_in.weight", (2 * hidden, c, 1, 1)),
                (p + "restormer_ffn.dwconv.weight", (2 * hidden, 1, 3, 3)),
                (p + "restormer_ffn.project_out.weight", (c, hidden, 1, 1)),
            ]
        p = f"deep_feature_extraction.{g}.body.6."
        keys += [(p + "weight", (c, c, 3, 3)), (p + "bias", (c,))]
    keys += [
        (f"deep_feature_extraction.{groups}.weight", (c, c, 3, 3)),
        (f"deep_feature_extraction.{groups}.bias", (c,)),
        ("upsample.0.weight", (3 * scale * scale, c, 3, 3)),
        ("upsample.0.bias", (3 * scale * scale,)),
    ]
    return keys


@pytest.mark.parametrize(("name", "scale"), list(EXPECTED_PARAMS))
def test_state_dict_matches_official_names(name, scale):
    model = srlab.create_model(name, scale=scale)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == _official_keys(VARIANTS[name], scale)
    assert len(ours) == {"dlgsanet_tiny": 245, "dlgsanet_light": 325}[name]  # paper-results.md §3
    assert "mean" not in model.state_dict()  # the official mean is a plain attribute


@needs_reference
def test_reference_has_no_dlgsanet_listing():
    """If the reference ever lists DLGSANet, this test must be extended to compare with it."""
    assert not [k for k in official_state_dicts() if "dlgsa" in k.lower()]


def test_model_info():
    for name, groups in VARIANTS.items():
        info = model_info(name)
        assert info.size_multiple == 1 and info.scales == (2, 3, 4)
        assert info.receptive_radius == groups * 28 + 3


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_forward_at_odd_sizes(tiny, scale):
    model = tiny[scale].eval()
    for h, w in ((17, 23), (5, 9)):
        x = torch.rand(1, 3, h, w)
        before = x.clone()
        with torch.no_grad():
            y = model(x)
        assert y.shape == (1, 3, h * scale, w * scale)
        assert torch.isfinite(y).all()
        assert torch.equal(x, before)  # input not mutated


def test_light_forward_and_batch():
    model = srlab.create_model("dlgsanet_light", scale=4).eval()
    x = torch.rand(2, 3, 13, 11)
    with torch.no_grad():
        y = model(x)
        single = model(x[1:])
    assert y.shape == (2, 3, 52, 44)
    assert torch.allclose(y[1:], single, atol=1e-5)


def test_untrained_model_returns_the_mean_shift_consistently():
    """With the deep branch and the embedding zeroed, the output is the (upsampled) mean: the shift is
    undone on the way out, as in the official forward."""
    model = srlab.create_model("dlgsanet_tiny", scale=2).eval()
    with torch.no_grad():
        for p in model.upsample.parameters():
            p.zero_()
        y = model(torch.rand(1, 3, 6, 7))
    assert torch.allclose(y, model.mean.expand_as(y))


def test_eval_equals_train_mode_no_tlc():
    """srlab never applies the official test-time local converter: eval output = global attention."""
    model = _perturbed(srlab.create_model("dlgsanet_tiny", scale=2))
    x = torch.rand(1, 3, 52, 50)  # larger than the TLC kernel (48)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
    assert torch.equal(train_out, eval_out)


def test_sparse_attention_by_hand_and_global():
    torch.manual_seed(3)
    attn = SparseAttention(12, num_heads=3)
    with torch.no_grad():
        attn.temperature.copy_(torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1))
    x = torch.randn(1, 12, 6, 7)
    q, k, v = attn.qkv_dwconv(attn.qkv(x)).flatten(2).chunk(3, dim=1)  # (1, 12, 42)
    heads = []
    for h in range(3):
        qh, kh, vh = (t[:, 4 * h:4 * h + 4] for t in (q, k, v))
        qh, kh = qh / qh.norm(dim=-1, keepdim=True), kh / kh.norm(dim=-1, keepdim=True)
        weights = torch.relu(attn.temperature[h] * qh @ kh.transpose(1, 2))  # ReLU, not softmax
        heads.append(weights @ vh)
    expected = attn.project_out(torch.cat(heads, dim=1).view(1, 12, 6, 7))
    assert torch.allclose(attn(x), expected, atol=1e-5)
    # global: a change in one corner reaches the opposite corner (beyond any 3x3 reach)
    y = x.clone()
    y[..., 0, 0] += 5
    with torch.no_grad():
        assert not torch.allclose(attn(x)[..., -1, -1], attn(y)[..., -1, -1])


def test_layer_norm_matches_the_official_formula():
    torch.manual_seed(4)
    norm = channel_layer_norm(8)
    with torch.no_grad():
        norm.body.weight.normal_()
        norm.body.bias.normal_()
    x = torch.randn(2, 8, 5, 6) * 3 + 1
    t = x.flatten(2).transpose(1, 2)  # official to_3d
    mu, var = t.mean(-1, keepdim=True), t.var(-1, keepdim=True, unbiased=False)
    expected = ((t - mu) / torch.sqrt(var + 1e-5) * norm.body.weight + norm.body.bias).transpose(1, 2).view_as(x)
    assert torch.allclose(norm(x), expected, atol=1e-5)


def test_state_dict_round_trip(tmp_path):
    model = _perturbed(srlab.create_model("dlgsanet_light", scale=2)).eval()
    path = tmp_path / "dlgsanet.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model("dlgsanet_light", scale=2, checkpoint=path).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_official_format_checkpoint_loads(tmp_path):
    """BasicSR's {'params': ...} (and 'params_ema'); no derived tensors are stored by the official model."""
    model = _perturbed(srlab.create_model("dlgsanet_tiny", scale=4)).eval()
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params": model.state_dict(), "params_ema": model.state_dict()}, path)
    loaded = srlab.create_model("dlgsanet_tiny", scale=4, checkpoint=path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


@needs_weights
def test_no_official_lightweight_weights_stored():
    """The official README says the lightweight models' weights were lost; none are in srlab's store."""
    assert not [p for p in OFFICIAL_WEIGHTS.rglob("*") if "dlgsa" in p.name.lower()]


def _analytic_macs(groups, scale):
    """Convs, attention products and the dynamic conv's hyper-network; the per-pixel dynamic
    aggregation (element-wise multiply-adds) is not a conv or matrix product, so it is not counted."""
    h, w = lr_size_for_720p(scale)
    n, c, hidden, k, heads = h * w, 48, 96, 7, 6
    ffn = c * 2 * hidden + 2 * hidden * 9 + hidden * c
    hyper = c * c // 4 + c // 4 * k * k + c // 4 * 8 * k * k
    idynamic = 2 * c * c + hyper + ffn
    sparse = 3 * c * c + 3 * c * 9 + c * c + 2 * c * (c // heads) + ffn  # q@k^T and attn@v: c * c/h each
    block = 3 * (idynamic + sparse) + 9 * c * c
    return n * (27 * c + groups * block + 9 * c * c + 9 * c * 3 * scale * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_macs_720p(tiny, scale):
    assert macs_720p(tiny[scale]) == _analytic_macs(3, scale)
    light = srlab.create_model("dlgsanet_light", scale=scale)
    assert macs_720p(light) == _analytic_macs(4, scale)
    # what is left out: 9 (Tiny) / 12 (Light) dynamic 7x7 aggregations, C*k*k per pixel each
    h, w = lr_size_for_720p(scale)
    assert dynamic_conv_macs(48, 7, h, w) == 48 * 49 * h * w
