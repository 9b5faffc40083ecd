"""Swin2SR (Conde et al., ECCVW 2022): parameters, official key names and shapes, official checkpoint format,
forward contract (incl. the compressed-input model's auxiliary output) and MACs."""

import math
from functools import lru_cache

import pytest
import torch

import srlab
import srlab.models.swin2sr  # noqa: F401  (registers the models)
from srlab.models import count_parameters, model_info, paper_parameter_count
from srlab.models.weights import save_weights
from srlab.models.complexity import macs_720p
from conftest import needs_reference, official_state_dicts


# No paper figure was read (paper-results.md §2 lists the official architecture's counts): exact counts of
# all parameters, buffers (relative_coords_table, relative_position_index) excluded - the reference's
# param_count, equal to its trainable count. swin2sr_compressed (no reference entry) = classical x4 +
# conv_bicubic (1,792) + conv_aux (1,731) + conv_after_aux (1,792).
PARAMS = {
    "swin2sr_light": {2: 1_005_348, 3: 1_013_463, 4: 1_024_824},
    "swin2sr": {2: 12_091_571, 3: 12_276_211, 4: 12_239_283},
    "swin2sr_compressed": {4: 12_244_598},
}
# registry name -> (reference prefix, scales listed in the reference)
OFFICIAL = {"swin2sr_light": ("swin2sr_light", (2, 3, 4)), "swin2sr": ("swin2sr_classical", (2, 4))}
CASES = [(name, scale) for name, counts in PARAMS.items() for scale in counts]


@lru_cache(maxsize=None)
def _model(name: str, scale: int) -> torch.nn.Module:
    """Built once per module run; do not modify."""
    return srlab.create_model(name, scale=scale).eval()


def _listing(prefix: str, scale: int) -> dict:
    return official_state_dicts()[f"{prefix}_x{scale}"]


def test_registered_scales():
    assert model_info("swin2sr_light").scales == (2, 3, 4)
    assert model_info("swin2sr").scales == (2, 3, 4)
    assert model_info("swin2sr_compressed").scales == (4,)
    assert all(model_info(n).size_multiple == 8 for n in PARAMS)


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_parameter_count(name, scale):
    model = _model(name, scale)
    assert paper_parameter_count(model) == count_parameters(model) == PARAMS[name][scale]
    buffers = sum(b.numel() for k, b in model.state_dict().items() if "relative_" in k)
    assert buffers == (24 if name == "swin2sr_light" else 36) * (15 * 15 * 2 + 64 * 64)


@needs_reference
@pytest.mark.parametrize(
    ("name", "scale"), [(name, s) for name, (_, scales) in OFFICIAL.items() for s in scales]
)
def test_state_dict_matches_the_official_keys_and_shapes(name, scale):
    official = _listing(OFFICIAL[name][0], scale)
    listed = [(key, list(shape)) for key, shape, *_ in official["state_dict"]]
    derived = [key for key, _ in listed if key.endswith(".attn_mask")]
    assert len(derived) == (12 if name == "swin2sr_light" else 18)
    ours = [(key, list(t.shape)) for key, t in _model(name, scale).state_dict().items()]
    assert ours == [(key, shape) for key, shape in listed if key not in derived]
    assert official["param_count"] == official["param_count_trainable"] == PARAMS[name][scale]


@needs_reference
def test_compressed_model_is_the_classical_x4_body_with_the_aux_reconstruction():
    classical = [k for k, *_ in _listing("swin2sr_classical", 4)["state_dict"] if not k.endswith(".attn_mask")]
    body = classical[: classical.index("conv_after_body.bias") + 1]
    aux = ["conv_bicubic", "conv_before_upsample.0", "conv_aux", "conv_after_aux.0", "upsample.0", "upsample.2",
           "conv_last"]
    expected = body + [f"{m}.{p}" for m in aux for p in ("weight", "bias")]
    state = _model("swin2sr_compressed", 4).state_dict()
    assert list(state) == expected
    assert state["conv_bicubic.weight"].shape == (64, 3, 3, 3)
    assert state["conv_aux.weight"].shape == (3, 64, 3, 3)
    assert state["conv_after_aux.0.weight"].shape == (64, 3, 3, 3)


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


@needs_reference
@pytest.mark.parametrize(("name", "scale", "windows"), [("swin2sr_light", 2, 64), ("swin2sr_compressed", 4, 36)])
def test_an_official_format_checkpoint_loads_strictly(tmp_path, name, scale, windows):
    """{'params': ...} with the stored masks: 64 windows for the *_64 releases, 36 for
    Swin2SR_CompressedSR_X4_48 (img_size 48)."""
    model = _perturbed(srlab.create_model(name, scale=scale)).eval()
    state = dict(model.state_dict())
    prefix = "swin2sr_light" if name == "swin2sr_light" else "swin2sr_classical"
    for key, *_ in _listing(prefix, 2 if name == "swin2sr_light" else 4)["state_dict"]:
        if key.endswith(".attn_mask"):
            state[key] = torch.zeros(windows, 64, 64)
    path = tmp_path / "official.pth"
    torch.save({"params": state}, path)
    loaded = srlab.create_model(name, scale=scale, checkpoint=path)
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_forward_at_odd_sizes_without_mutating_the_input(name, scale):
    model = _model(name, scale)
    assert model.scale == scale
    for size in ((17, 23), (8, 16)):
        x = torch.rand(1, 3, *size)
        before = x.clone()
        with torch.no_grad():
            y = model(x)
        assert y.shape == (1, 3, size[0] * scale, size[1] * scale)
        assert torch.isfinite(y).all()
        assert torch.equal(x, before)


def test_compressed_model_also_returns_the_auxiliary_lr_prediction():
    model = _model("swin2sr_compressed", 4)
    x = torch.rand(1, 3, 13, 16)
    with torch.no_grad():
        out, aux = model.forward_with_aux(x)
        assert torch.equal(out, model(x))
    assert out.shape == (1, 3, 52, 64)
    assert aux.shape == (1, 3, 16, 16)  # on the window-padded LR grid, as the official output
    with pytest.raises(ValueError, match="forward_with_aux needs the 'pixelshuffle_aux' upsampler"):
        _model("swin2sr_light", 2).forward_with_aux(x)


@pytest.mark.parametrize("name", ["swin2sr_light", "swin2sr_compressed"])
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4)
    model(torch.rand(1, 3, 8, 10)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    attn = model.layers[0].residual_group.blocks[1].attn
    assert attn.logit_scale.grad.abs().sum() > 0 and attn.cpb_mlp[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "scale"), [("swin2sr_light", 3), ("swin2sr_compressed", 4)])
def test_weights_round_trip(tmp_path, name, scale):
    model = _perturbed(srlab.create_model(name, scale=scale), seed=1).eval()
    path = tmp_path / f"{name}.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model(checkpoint=path)
    assert loaded.scale == scale
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


# MACs at 1280x720 output on the window-padded LR (x3: 240x432, x4: 184x320): convolutions (incl. the 1x1
# patch projections) and all matrix products. The reference's fvcore figures (paper-results.md §2:
# 248.54 / 112.69 / 64.68 G) also count the 50 LayerNorms at 5 per element; no paper figure was read.
MACS_720P = {2: 245_080_166_400, 3: 111_138_048_000, 4: 63_792_691_200}
FVCORE_G = {2: 248.54, 3: 112.69, 4: 64.68}
PADDED_LR = {2: (360, 640), 3: (240, 432), 4: (184, 320)}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_light_macs_at_720p(scale):
    macs = macs_720p(_model("swin2sr_light", scale))
    assert macs == MACS_720P[scale]
    layer_norm = 5 * 50 * 60 * math.prod(PADDED_LR[scale])
    assert round((macs + layer_norm) / 1e9, 2) == FVCORE_G[scale]
