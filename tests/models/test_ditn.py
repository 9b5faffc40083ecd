import pytest
import torch

import srlab
import srlab.models.ditn  # noqa: F401  (registers the models)
from srlab.models.ditn import ISA, UFONE
from srlab.models.registry import model_info
from srlab.models.weights import save_weights
from srlab.models.complexity import macs_720p
from conftest import OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts


# sum(p.numel()) of the official DITN_Real(upscale=s) (paper-results.md §2 and the reference's
# param_count for x2 / x4); all trainable. The paper's bicubic DITN / DITN-Tiny were not released as code,
# so there is no published figure for this architecture to compare with.
EXPECTED_PARAMS = {2: 424_636, 3: 432_751, 4: 444_112}
# fvcore on the official architecture, 1280x720 output (paper-results.md §2); x3 runs on 427x240, padded
# to 432x240 inside forward, in both counts.
FVCORE_720P_G = {2: 103.67, 3: 47.49, 4: 27.64}


@pytest.fixture(scope="module")
def models():
    return {s: srlab.create_model("ditn", scale=s) for s in (2, 3, 4)}


def _perturbed(model):
    """SDA's scale starts at zero (its branch is then silent): give every parameter random values."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_parameter_count_by_hand():
    c, hidden, s = 60, 120, 4
    ffn = c * 2 * hidden + 2 * hidden * 9 + hidden * c
    itl = 1 + (c * 3 * c + 3 * c) + c * c + 2 * (c * c + c) + ffn
    sda = c + (25 * c + c) + (49 * c + c) + (c * c + c) + (c * 2 * c + 2 * c) + (c * c + c)
    sal = sda + ffn + 2 * (c * c + c)
    total = (27 * c + c) + 4 * itl + 4 * sal + (9 * c * c + c) + (9 * c * 3 * s * s + 3 * s * s)
    assert total == EXPECTED_PARAMS[s]


def _official(key):
    return official_state_dicts()[key]


@needs_reference
@pytest.mark.parametrize("scale", [2, 4])
def test_state_dict_matches_official(models, scale):
    official = _official(f"ditn_real_x{scale}")
    ours = [(k, list(v.shape)) for k, v in models[scale].state_dict().items()]
    assert ours == [(k, shape) for k, shape, *_ in official["state_dict"]]
    assert len(ours) == 122
    assert official["param_count"] == official["param_count_trainable"] == EXPECTED_PARAMS[scale]
    assert official["input_convention"]["range"] == "[0,1]"


@needs_reference
def test_x3_differs_from_x2_only_in_the_upsampling_conv(models):
    x2 = {k: list(v.shape) for k, v in models[2].state_dict().items()}
    x3 = {k: list(v.shape) for k, v in models[3].state_dict().items()}
    assert x2.keys() == x3.keys()
    assert {k for k in x2 if x2[k] != x3[k]} == {"upsample.0.weight", "upsample.0.bias"}
    assert x3["upsample.0.weight"] == [27, 60, 3, 3]


def test_model_info():
    info = model_info("ditn")
    assert info.size_multiple == 8 and info.scales == (2, 3, 4)
    assert info.receptive_radius % 8 == 0 and info.receptive_radius >= 58


def test_hyper_parameters_are_options():
    small = srlab.create_model("ditn", scale=2, args={"dim": 24, "itl_blocks": 1, "sal_blocks": 2})
    assert len(small.UFONE[0].ITLs) == 1 and len(small.UFONE[0].SALs) == 2
    assert small.sft.out_channels == 24
    assert small(torch.rand(1, 3, 9, 10)).shape == (1, 3, 18, 20)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_forward_at_odd_sizes(models, scale):
    model = models[scale].eval()
    for h, w in ((17, 23), (16, 24), (8, 13)):
        x = torch.rand(1, 3, h, w)
        before = x.clone()
        with torch.no_grad():
            y = model(x)
        assert y.shape == (1, 3, h * scale, w * scale)
        assert torch.isfinite(y).all()
        assert torch.equal(x, before)  # input not mutated


def test_internal_padding_is_reflect_then_crop():
    model = _perturbed(srlab.create_model("ditn", scale=2)).eval()
    x = torch.rand(1, 3, 13, 19)
    padded = torch.nn.functional.pad(x, (0, 5, 0, 3), mode="reflect")
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded)[..., :26, :38], atol=1e-6)


def test_itls_act_on_each_8x8_patch_independently():
    torch.manual_seed(1)
    unit = UFONE(16, 2.0, bias=False, itl_blocks=2, sal_blocks=0, patch_size=8)
    x = torch.randn(2, 16, 16, 24)
    with torch.no_grad():
        whole = unit(x)
        for i in range(2):
            for j in range(3):
                patch = x[..., 8 * i:8 * i + 8, 8 * j:8 * j + 8]
                assert torch.allclose(whole[..., 8 * i:8 * i + 8, 8 * j:8 * j + 8], unit.ITLs(patch), atol=1e-5)


def test_isa_by_hand():
    torch.manual_seed(2)
    attn = ISA(6, bias=False)
    with torch.no_grad():
        attn.temperature.fill_(1.7)
    x = torch.randn(2, 6, 4, 5)
    tokens = x.flatten(2).transpose(1, 2)  # (b, hw, c)
    q, k, v = (t.transpose(1, 2) for t in attn.qkv(tokens).chunk(3, dim=-1))  # (b, c, hw)
    q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    weights = torch.softmax(1.7 * q @ k.transpose(1, 2), dim=-1)
    expected = attn.project_out((weights @ v).reshape(2, 6, 4, 5))
    assert torch.allclose(attn(x), expected, atol=1e-5)


def test_state_dict_round_trip(tmp_path):
    model = _perturbed(srlab.create_model("ditn", scale=3)).eval()
    path = tmp_path / "ditn.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model("ditn", scale=3, checkpoint=path).eval()
    x = torch.rand(1, 3, 11, 14)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_official_format_checkpoint_loads(tmp_path):
    """The official test.py reads {'params': state_dict} (or a raw state dict); no derived tensors."""
    model = _perturbed(srlab.create_model("ditn", scale=4)).eval()
    for wrap in (lambda sd: {"params": sd}, lambda sd: sd):
        path = tmp_path / "DITN_Real_x4.pth"
        torch.save(wrap(model.state_dict()), path)
        loaded = srlab.create_model("ditn", scale=4, checkpoint=path).eval()
        for k, v in model.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k])


@needs_weights
def test_no_official_weights_stored():
    """No DITN weights are in srlab's store (they are on Google Drive): nothing to evaluate against."""
    assert not [p for p in OFFICIAL_WEIGHTS.rglob("*") if "ditn" in p.name.lower()]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_macs_720p_equal_fvcore(models, scale):
    # srlab counts the same operations fvcore does here (convs, the qkv Linear, q@k^T and attn@v)
    assert round(macs_720p(models[scale]) / 1e9, 2) == FVCORE_720P_G[scale]
