import pytest
import torch
import torch.nn.functional as F

import srlab
import srlab.models.safmn  # noqa: F401  (registers the models)
from srlab.data.datasets import discover_pairs
from srlab.errors import SrlabError
from srlab.inference.evaluate import evaluate_folder
from srlab.models import paper_parameter_count
from srlab.models.safmn import SAFM, SimpleSAFM
from srlab.models.weights import save_weights
from srlab.models.complexity import count_macs, lr_size_for_720p, macs_720p
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts

SAFMNPP_WEIGHTS = OFFICIAL_WEIGHTS / "safmn" / "team23_safmnpp.pth"


# Exact counts, sum(p.numel()) of the official architectures (paper-results.md §2 lists the same
# 227,820 / 232,695 / 239,520 and 5,559,308 / 5,576,603 / 5,600,816); SAFMN++ = the official
# checkpoint's 211,572 tensors' elements.
EXPECTED_PARAMS = {
    ("safmn", 2): 227_820,
    ("safmn", 3): 232_695,
    ("safmn", 4): 239_520,
    ("safmn_l", 2): 5_559_308,
    ("safmn_l", 3): 5_576_603,
    ("safmn_l", 4): 5_600_816,
    ("safmn_pp", 4): 211_572,
}


def test_parameter_count_by_hand():
    """SAFMN x4: conv(3->36) + 8 blocks (2 LayerNorms, 4 dw 3x3 on 9 ch, 1x1 aggr, CCM 36->72->36) + tail."""
    c, n, s = 36, 8, 4
    conv = lambda cin, cout, k, groups=1: cin // groups * cout * k * k + cout  # noqa: E731
    block = 2 * 2 * c + 4 * conv(c // 4, c // 4, 3, c // 4) + conv(c, c, 1) + conv(c, 2 * c, 3) + conv(2 * c, c, 1)
    assert conv(3, c, 3) + n * block + conv(c, 3 * s * s, 3) == EXPECTED_PARAMS[("safmn", s)]


def _official(key):
    return official_state_dicts()[key]


@needs_reference
@pytest.mark.parametrize("key", ["safmn_x2", "safmn_x3", "safmn_x4", "safmn_l_x2", "safmn_l_x3", "safmn_l_x4"])
def test_state_dict_matches_official(key):
    name, scale = key.rsplit("_x", 1)
    official = _official(key)
    model = srlab.create_model(name, scale=int(scale))
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape, *_ in official["state_dict"]]
    assert paper_parameter_count(model) == official["param_count"] == official["param_count_trainable"]
    assert official["input_convention"]["range"] == "[0,1]"  # no scaling needed inside forward


@needs_weights
def test_safmn_pp_state_dict_matches_official_checkpoint():
    ckpt = torch.load(SAFMNPP_WEIGHTS, map_location="cpu", weights_only=True)
    model = srlab.create_model("safmn_pp", scale=4)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    for key in ("params", "params_ema"):
        assert ours == [(k, tuple(v.shape)) for k, v in ckpt[key].items()]


def test_safmn_pp_is_x4_only():
    with pytest.raises(SrlabError, match="scale"):
        srlab.create_model("safmn_pp", scale=2)


# srlab's counter, like fvcore (the papers' counter), counts the SAFM's nearest upsampling (one op per
# output element) and SAFMN++'s bilinear upsampling (four): the published figures come out to their rounding.
FVCORE_720P = {2: 51.53, 3: 23.42, 4: 13.55}  # paper-results.md §2, SAFMN (paper: 52 / 23 / 14 G)
SAFMN_L_PAPER = {2: 1274, 3: 569, 4: 321}  # G, SAFMN-classic table


def _nearest_upsample_elements(dim, n_blocks, size):
    return n_blocks * 3 * (dim // 4) * size[0] * size[1]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_macs_720p(scale):
    model = srlab.create_model("safmn", scale=scale)
    macs = macs_720p(model)
    assert round(macs / 1e9, 2) == FVCORE_720P[scale]
    # the resizing share, computed by hand
    without_convs = macs - count_macs_of_convs_only(model, lr_size_for_720p(scale))
    assert without_convs == _nearest_upsample_elements(36, 8, lr_size_for_720p(scale))

    large = srlab.create_model("safmn_l", scale=scale)
    assert abs(macs_720p(large) / 1e9 - SAFMN_L_PAPER[scale]) < 1.0  # x3: 568.5 G vs the paper's 569 G


def count_macs_of_convs_only(model, size):
    return sum(
        m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3] * m.out_channels * out_hw
        for m, out_hw in _conv_output_areas(model, size)
    )


def _conv_output_areas(model, size):
    areas = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: areas.append((m, o.shape[-2] * o.shape[-1])))
        for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model.to("meta")(torch.empty(1, 3, *size, device="meta"))
    for h in hooks:
        h.remove()
    return areas


def test_safmn_pp_ntire_macs():
    """NTIRE 2024 counts fvcore FLOPs on a 256x256 LR input: SAFMN++ 13.86 G (paper-results.md §6)."""
    model = srlab.create_model("safmn_pp", scale=4)
    macs = count_macs(model, (256, 256))
    bilinear = 4 * (3 * 1024 * 1024 + 6 * 12 * 256 * 256)  # output residual + the six blocks' gates
    assert macs == 13_823_778_816 + bilinear
    assert round(macs / 1e9, 2) == 13.86


@pytest.mark.parametrize("name", ["safmn", "safmn_pp"])
def test_inputs_below_eight_pixels(name):
    """The official code fails below 8 px a side (H // 8 == 0); srlab pads internally and crops."""
    model = srlab.create_model(name, scale=4).eval()
    with torch.no_grad():
        y = model(torch.rand(2, 3, 5, 9))
    assert y.shape == (2, 3, 20, 36)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(("name", "scale"), [("safmn", 2), ("safmn_pp", 4)])
def test_state_dict_round_trip(tmp_path, name, scale):
    torch.manual_seed(1)
    model = srlab.create_model(name, scale=scale).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / f"{name}.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model(name, scale=scale, checkpoint=path)
    x = torch.rand(1, 3, 12, 15)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_safm_matches_its_definition():
    """SAFM with identity filters: GELU(cat(x0, up(maxpool_2(x1)), up(maxpool_4(x2)), up(maxpool_8(x3)))) * x."""
    torch.manual_seed(2)
    safm = SAFM(8)
    with torch.no_grad():
        for conv in safm.mfr:
            conv.weight.zero_()
            conv.weight[:, 0, 1, 1] = 1.0
            conv.bias.zero_()
        safm.aggr.weight.copy_(torch.eye(8)[:, :, None, None])
        safm.aggr.bias.zero_()
        x = torch.randn(1, 8, 16, 24)
        chunks = x.chunk(4, dim=1)
        parts = [chunks[0]] + [
            F.max_pool2d(chunks[i], 2**i).repeat_interleave(2**i, dim=2).repeat_interleave(2**i, dim=3)
            for i in (1, 2, 3)
        ]
        expected = F.gelu(torch.cat(parts, dim=1)) * x
        torch.testing.assert_close(safm(x), expected)


def test_simple_safm_matches_its_definition():
    """SimpleSAFM with identity proj/out and dwconv: the first C/3 channels are gated by their 8x max pool."""
    torch.manual_seed(3)
    block = SimpleSAFM(6, ratio=3)
    with torch.no_grad():
        block.proj.weight.zero_()
        block.proj.weight[torch.arange(6), torch.arange(6), 1, 1] = 1.0
        block.dwconv.weight.zero_()
        block.dwconv.weight[:, 0, 1, 1] = 1.0
        block.out.weight.copy_(torch.eye(6)[:, :, None, None])
        x = torch.randn(1, 6, 16, 16)
        gated, rest = x[:, :2], x[:, 2:]
        coarse = F.interpolate(F.max_pool2d(gated, 8), size=(16, 16), mode="bilinear", align_corners=False)
        expected = F.gelu(torch.cat((rest, F.gelu(coarse) * gated), dim=1))
        torch.testing.assert_close(block(x), expected)


# SAFMN++ was only scored on DIV2K/LSDIR by NTIRE 2024 (no published Set5/Set14 figure): sanity margins
# against the bicubic baseline (paper-results.md §5: x4 Set5 28.42, Set14 26.00 dB) and the numbers
# measured here (a regression guard).
BICUBIC_X4 = {"Set5": 28.42, "Set14": 26.00}
MEASURED_SAFMN_PP = {"Set5": (32.019, 0.8918), "Set14": (28.583, 0.7804)}


@needs_weights
@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
def test_official_safmn_pp_weights(dataset):
    if not (BENCHMARKS / dataset).is_dir():
        pytest.skip(f"{dataset} not present")
    model = srlab.create_model("safmn_pp", scale=4, checkpoint=SAFMNPP_WEIGHTS)
    ema = torch.load(SAFMNPP_WEIGHTS, map_location="cpu", weights_only=True)["params_ema"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ema.items())  # the official test's key
    result = evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, 4))
    assert result.psnr_y > BICUBIC_X4[dataset] + (3.0 if dataset == "Set5" else 2.0)
    if dataset == "Set5":
        assert result.psnr_y > 31.5
    psnr, ssim = MEASURED_SAFMN_PP[dataset]
    assert result.psnr_y == pytest.approx(psnr, abs=0.005)
    assert result.ssim_y == pytest.approx(ssim, abs=0.0005)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("size", "out"), [((24, 40), (12, 20)), ((24, 40), (6, 10)), ((23, 40), (11, 20)), ((24, 40), (3, 5))])
def test_max_pool_to_is_adaptive_max_pooling(dtype, size, out):
    """max_pool_to takes F.max_pool2d where the sizes divide, else adaptive pooling: the same values."""
    from srlab.models.safmn import max_pool_to

    x = torch.randn(1, 9, *size, generator=torch.Generator().manual_seed(0)).to(dtype)
    for layout in (torch.contiguous_format, torch.channels_last):
        x = x.contiguous(memory_format=layout)
        assert torch.equal(max_pool_to(x, out), torch.nn.functional.adaptive_max_pool2d(x, out))


@pytest.mark.parametrize(("size", "out"), [((7, 9), (3, 4)), ((13, 5), (13, 5)), ((10, 10), (1, 1)), ((5, 3), (2, 2)),
                                           ((180, 320), (22, 40)), ((23, 40), (11, 20))])
def test_adaptive_max_pool_by_sliding_windows_is_adaptive_max_pooling(size, out):
    """The compiled graphs' form (windows of k and k + 1 positions, the longer ones wherever they fall)."""
    from srlab.models.safmn import _adaptive_max_pool_by_sliding_windows as along

    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    assert torch.equal(along(along(x, out[0], 2), out[1], 3), torch.nn.functional.adaptive_max_pool2d(x, out))


def test_max_pool_to_takes_the_sliding_form_when_compiling(monkeypatch):
    from srlab.models.safmn import max_pool_to

    x = torch.randn(1, 9, 23, 40, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    monkeypatch.setattr(torch.nn.functional, "adaptive_max_pool2d", None)  # must not be called
    pooled = max_pool_to(x, (11, 20))
    monkeypatch.undo()
    assert torch.equal(pooled, torch.nn.functional.adaptive_max_pool2d(x, (11, 20)))
