"""ELAN-light and ELAN (srlab.models.elan): official structure, counts, MACs and the [0, 1] contract.

No official ELAN weights were released (xindongzhang/ELAN has none; /work/shared/official-weights has
none), so the published PSNR/SSIM (ELAN-light Set5 38.17 / 34.64 / 32.43 dB, 2nd-hand) cannot be checked.
"""


import pytest
import torch
import torch.nn.functional as F

import srlab
import srlab.models.elan  # noqa: F401  (registers the models)
from srlab.models import model_info, paper_parameter_count
from srlab.layers.mean_shift import DIV2K_RGB_MEAN
from srlab.models.elan import ELAN
from srlab.models.weights import save_weights
from srlab.models.complexity import lr_size_for_720p, macs_720p
from conftest import needs_reference, official_state_dicts


SCALES = (2, 3, 4)

# Trainable parameters = the paper's 582K / 590K / 601K (paper-results.md §2, §7; the reference lists
# the same trainable counts of the official architecture). Summing every parameter adds the frozen
# shift kernels and MeanShift convs (38,904): 620,916 / 629,031 / 640,392.
ELAN_LIGHT_PARAMS = {2: 582_012, 3: 590_127, 4: 601_488}
ELAN_LIGHT_PUBLISHED_K = {2: 582, 3: 590, 4: 601}
ELAN_LIGHT_ALL_PARAMS = {2: 620_916, 3: 629_031, 4: 640_392}
# The full ELAN (configs/elan_x4.yml: c_elan 180, m_elan 36, n_share 0), measured here; the reference
# has no figure for it, so none is asserted beyond this measurement.
ELAN_PARAMS = {2: 8_254_092, 3: 8_278_407, 4: 8_312_448}

# MACs at 1280x720 output. srlab counts the padded input the model really runs (368x640 at x2,
# 240x432 at x3, 192x320 at x4: ELAN pads to multiples of 16), the depth-wise shift convs at 9 MACs
# per channel like any 3x3 depth-wise conv, and both attention products (Q Q^T and A V).
MACS_720P = {2: 200_320_358_400, 3: 89_028_979_200, 4: 53_458_513_920}
# The reference's fvcore figures (201.34 / 89.48 / 53.72 G) count the same and also BatchNorm at 2 per
# element (affine): 12 GMSAs with 120 BN channels + 12 with 60, over the padded LR pixels.
FVCORE_G = {2: 201.34, 3: 89.48, 4: 53.72}
# The paper's 168 / 75.7 / 43.2 G (recalled, unverified) is not asserted: it is close to this count
# taken over the unpadded input with one attention product instead of two (168.10 / 75.60 / 43.15 G),
# but x3 does not round to it, so how the paper counted is not established.


@pytest.fixture(scope="module")
def reference():
    return official_state_dicts()


@pytest.mark.parametrize("scale", SCALES)
def test_parameter_counts(scale):
    light = srlab.create_model("elan_light", scale=scale)
    n = paper_parameter_count(light)
    assert n == ELAN_LIGHT_PARAMS[scale] and round(n / 1e3) == ELAN_LIGHT_PUBLISHED_K[scale]
    assert sum(p.numel() for p in light.parameters()) == ELAN_LIGHT_ALL_PARAMS[scale]
    assert paper_parameter_count(srlab.create_model("elan", scale=scale)) == ELAN_PARAMS[scale]


@needs_reference
@pytest.mark.parametrize("scale", SCALES)
def test_state_dict_equals_the_official_listing(reference, scale):
    entry = reference[f"elan_light_x{scale}"]
    model = srlab.create_model("elan_light", scale=scale)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape, _, _ in entry["state_dict"]]
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == entry["frozen_params"]
    assert paper_parameter_count(model) == entry["param_count_trainable"]


def test_full_elan_follows_the_same_names():
    model = srlab.create_model("elan", scale=4)
    sd = model.state_dict()
    assert len(model.body) == 36
    assert sd["body.35.modules_lfe.lfe_0.conv0.shift_conv.weight"].shape == (180, 1, 3, 3)
    assert sd["body.35.modules_lfe.lfe_0.conv0.shift_conv.conv1x1.weight"].shape == (360, 180, 1, 1)
    assert sd["body.35.modules_gmsa.gmsa_0.project_inp.0.weight"].shape == (360, 180, 1, 1)
    assert sd["tail.0.weight"].shape == (48, 180, 3, 3)
    assert not any("gmsa_1" in k or "lfe_1" in k for k in sd)  # n_share 0: no shared-attention pairs
    # the official alternation: even blocks plain windows, odd blocks shifted
    assert [b.modules_gmsa["gmsa_0"].shifts for b in model.body[:4]] == [0, 1, 0, 1]


def test_mean_shift_is_frozen_and_the_model_takes_and_returns_0_1():
    torch.manual_seed(0)
    model = srlab.create_model("elan_light", scale=2).eval()
    assert torch.equal(model.sub_mean.weight.flatten(1), torch.eye(3))
    assert torch.allclose(model.add_mean.bias, 255 * torch.tensor(DIV2K_RGB_MEAN))
    assert not any(p.requires_grad for p in (*model.sub_mean.parameters(), *model.add_mean.parameters()))
    x = torch.rand(1, 3, 16, 32)
    with torch.no_grad():
        # the official forward, in [0, 255] (no padding needed at a multiple of 16)
        inner = model.head(model.sub_mean(x * 255))
        official = model.add_mean(model.tail(model.body(inner) + inner))
        assert torch.allclose(model(x), official / 255, atol=1e-5)
        # an untrained-tail network returns the DIV2K mean colour, in [0, 1]
        torch.nn.init.zeros_(model.tail[0].weight)
        torch.nn.init.zeros_(model.tail[0].bias)
        assert torch.allclose(model(x), torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1).expand(1, 3, 32, 64))


@pytest.mark.parametrize("scale", SCALES)
def test_forward_at_odd_sizes_pads_internally_like_the_official_code(scale):
    torch.manual_seed(0)
    model = srlab.create_model("elan_light", scale=scale).eval()
    assert model_info("elan_light").size_multiple == 16 and model.size_multiple == 16
    for h, w in ((17, 23), (20, 37)):
        x = torch.rand(1, 3, h, w)
        before = x.clone()
        with torch.no_grad():
            y = model(x)
            padded = F.pad(x, (0, -w % 16, 0, -h % 16), mode="reflect")
            expected = model(padded)[..., : h * scale, : w * scale]
        assert y.shape == (1, 3, h * scale, w * scale) and torch.isfinite(y).all()
        assert torch.equal(x, before)
        assert torch.allclose(y, expected, atol=1e-6)
    with torch.no_grad():  # smaller than the pad: the official reflection fails, srlab replicates
        assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 5 * scale, 7 * scale)


def test_backward_reaches_every_trainable_parameter():
    torch.manual_seed(0)
    model = srlab.create_model("elan_light", scale=4).train()
    model(torch.rand(2, 3, 16, 18)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert len(frozen) == 4 + 12 * 2 * 2  # MeanShift weight+bias x2, and every shift kernel
    assert all(model.get_parameter(n).grad is None for n in frozen)


@pytest.mark.parametrize("name", ["elan_light", "elan"])
def test_state_dict_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=3).eval()
    with torch.no_grad():  # non-default BatchNorm statistics must survive too
        for key, t in model.state_dict().items():
            if key.endswith(("running_mean", "running_var")):
                t.uniform_(0.5, 1.5)
    path = tmp_path / f"{name}_x3.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model(checkpoint=path).eval()
    assert isinstance(loaded, ELAN) and loaded.scale == 3 and loaded.srlab_spec.name == name
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_official_training_checkpoint_loads(tmp_path):
    """train.py saves {'epoch', 'model_state_dict' (nn.DataParallel: 'module.' keys), optimiser, ...}."""
    torch.manual_seed(0)
    model = srlab.create_model("elan_light", scale=4).eval()
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(0.01 * torch.randn_like(t))
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "model_x4_1000.pt"
    torch.save(
        {
            "epoch": 1000,
            "model_state_dict": state,
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]},
            "scheduler_state_dict": {"last_epoch": 1000, "milestones": {250: 1}},
            "stat_dict": {"epochs": 1000, "losses": [0.1]},
        },
        path,
    )
    loaded = srlab.create_model("elan_light", scale=4, checkpoint=path).eval()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    with pytest.raises(srlab.SrlabError, match=r"'elan_light' x2: 2 of another shape \(e.g. tail.0.weight"):
        srlab.create_model("elan_light", scale=2, checkpoint=path)  # the x4 tail does not fit x2


@pytest.mark.parametrize("scale", SCALES)
def test_macs_at_720p(scale):
    model = srlab.create_model("elan_light", scale=scale)
    macs = macs_720p(model)
    assert macs == MACS_720P[scale]
    h, w = lr_size_for_720p(scale)
    padded_pixels = (-(-h // 16) * 16) * (-(-w // 16) * 16)
    batchnorm = 2 * (12 * 120 + 12 * 60) * padded_pixels
    assert abs((macs + batchnorm) / 1e9 - FVCORE_G[scale]) < 0.005
