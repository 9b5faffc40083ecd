"""The upsampler contract: every registered upsampler maps (N, C_in, H, W) to (N, C_out, sH, sW)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srlab
from srlab.errors import SrlabError
from srlab.layers.upsamplers import build_upsampler, list_upsamplers, register_upsampler, upsampler_entry
from srlab.layers.upsamplers import base
from srlab.models.complexity import count_macs


def _scales(name: str) -> tuple[int, ...]:
    return upsampler_entry(name).scales or (2, 3, 4)


@pytest.mark.parametrize("name", list_upsamplers())
def test_every_upsampler_keeps_the_contract(name: str) -> None:
    torch.manual_seed(0)
    for scale in _scales(name):
        module = build_upsampler(name, in_channels=6, out_channels=3, scale=scale)
        x = torch.randn(2, 6, 5, 7, requires_grad=True)
        out = module(x)
        assert out.shape == (2, 3, 5 * scale, 7 * scale)
        out.square().mean().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert all(p.grad is not None for p in module.parameters())


def test_the_families_of_the_study_are_registered() -> None:
    study = {"nearest", "bilinear", "bicubic", "transposed", "subpixel", "subpixel_progressive", "decomposed",
             "attention"}
    assert study <= set(srlab.list_upsamplers())


def test_the_old_names_build_the_renamed_upsamplers() -> None:
    assert "pixelshuffle" not in list_upsamplers()  # aliases are not listed twice
    head = build_upsampler("pixelshuffle", in_channels=4, out_channels=3, scale=2)
    assert type(head) is type(build_upsampler("subpixel", in_channels=4, out_channels=3, scale=2))
    tail = build_upsampler("pixelshuffle_progressive", in_channels=4, out_channels=3, scale=4)
    assert [k for k, _ in tail.named_parameters()] == ["0.0.weight", "0.0.bias", "0.2.weight", "0.2.bias",
                                                      "1.weight", "1.bias"]


# MACs of an upsampler on a 3-channel LR input of H x W at scale s, counted by hand (out: 2 channels).
H, W, C_IN, C_OUT = 5, 7, 3, 2


def _hand_macs(name: str, s: int) -> int:
    lr, hr = H * W, s * s * H * W
    conv_at_hr = hr * C_IN * C_OUT * 9
    if name == "nearest":
        return hr * C_IN + conv_at_hr
    if name == "bilinear":
        return 4 * hr * C_IN + conv_at_hr
    if name == "bicubic":  # fvcore's convention: the bicubic resize is not counted
        return conv_at_hr
    if name == "subpixel":
        return lr * C_IN * C_OUT * s * s * 9
    if name == "subpixel_progressive":  # x2 steps at C_IN channels, step i at 4^i H W; a 3x3 conv to C_OUT
        steps = s.bit_length() - 1
        return sum(4**i * lr * C_IN * 4 * C_IN * 9 for i in range(steps)) + conv_at_hr
    if name == "transposed":  # the output-pixel convention, k = 9
        return hr * C_IN * C_OUT * 81
    if name == "decomposed":  # k x 1 to (sH, W), then 1 x k to (sH, sW), k = 9
        return s * lr * C_IN * C_OUT * 9 + hr * C_OUT * C_OUT * 9
    if name == "attention":  # key_channels 16, window 5
        return lr * C_IN * (2 * 16 + C_OUT) * s * s + hr * 25 * (2 * 16 + C_OUT)
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name", ["nearest", "bilinear", "bicubic", "subpixel", "subpixel_progressive", "transposed", "decomposed",
             "attention"])
def test_macs_are_counted_as_the_docstrings_say(name: str) -> None:
    for s in (2, 4):
        module = build_upsampler(name, in_channels=C_IN, out_channels=C_OUT, scale=s)
        assert count_macs(module, (H, W)) == _hand_macs(name, s)


def test_decomposed_with_separable_weights_is_the_transposed_convolution() -> None:
    torch.manual_seed(0)
    k, s, c_in, c_out = 5, 3, 4, 3
    decomposed = build_upsampler("decomposed", in_channels=c_in, out_channels=c_out, scale=s,
                                 options={"kernel_size": k})
    full = build_upsampler("transposed", in_channels=c_in, out_channels=c_out, scale=s, options={"kernel_size": k})
    horizontal = torch.randn(c_out, k)  # one horizontal filter per output channel: step 2 diagonal
    with torch.no_grad():
        decomposed[1].weight.zero_()
        for o in range(c_out):
            decomposed[1].weight[o, o, 0] = horizontal[o]
        # w[i, o] = u[i, o] h[o]^T: the outer product of the vertical and the horizontal filter
        full.weight.copy_(decomposed[0].weight * horizontal[None, :, None, :])
        full.bias.copy_(decomposed[1].bias)
    assert sum(p.numel() for p in decomposed.parameters()) == c_in * c_out * k + c_out * c_out * k + c_out
    x = torch.randn(2, c_in, 6, 5)
    torch.testing.assert_close(decomposed(x), full(x), rtol=1e-5, atol=1e-5)


def test_attention_over_one_pixel_is_the_value_projection() -> None:
    torch.manual_seed(0)
    s, c_in, c_out, d = 2, 4, 3, 8
    module = build_upsampler("attention", in_channels=c_in, out_channels=c_out, scale=s,
                             options={"key_channels": d, "window": 1})
    x = torch.randn(2, c_in, 5, 6)
    values = F.pixel_shuffle(module.project(x), s)[:, 2 * d:]
    torch.testing.assert_close(module(x), values)


def test_attention_matches_a_pixel_by_pixel_reference() -> None:
    """Each output pixel: softmax over its in-image window of q . (k + r) / sqrt(d / heads), per head,
    weighting the values there."""
    torch.manual_seed(0)
    s, d, c_out, heads, window = 2, 4, 2, 2, 3
    module = build_upsampler("attention", in_channels=3, out_channels=c_out, scale=s,
                             options={"key_channels": d, "window": window, "heads": heads})
    with torch.no_grad():
        module.position.normal_()
    x = torch.randn(1, 3, 3, 4)
    q, k, v = F.pixel_shuffle(module.project(x), s)[0].split((d, d, c_out))
    height, width = q.shape[-2:]
    expected = torch.zeros(c_out, height, width)
    dh, dv, r = d // heads, c_out // heads, window // 2
    for i in range(height):
        for j in range(width):
            for g in range(heads):
                qs, logits, values = q[g * dh:(g + 1) * dh, i, j], [], []
                for a in range(-r, r + 1):
                    for b in range(-r, r + 1):
                        if 0 <= i + a < height and 0 <= j + b < width:
                            key = k[g * dh:(g + 1) * dh, i + a, j + b] + module.position[g, :, (a + r) * window + b + r]
                            logits.append(qs @ key / dh**0.5)
                            values.append(v[g * dv:(g + 1) * dv, i + a, j + b])
                weights = torch.stack(logits).softmax(0)
                expected[g * dv:(g + 1) * dv, i, j] = (weights[:, None] * torch.stack(values)).sum(0)
    torch.testing.assert_close(module(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_attention_weights_are_a_convex_combination_of_the_neighbours_values() -> None:
    torch.manual_seed(0)
    module = build_upsampler("attention", in_channels=4, out_channels=2, scale=3, options={"heads": 2})
    with torch.no_grad():  # values constant per channel: any convex combination returns the constant
        module.project.weight[:, :, 0, 0].view(-1, 9, 4)[32:].zero_()  # (channel, phase, in): values' weights
        module.project.bias.view(-1, 9)[32:] = torch.tensor([[1.5], [-2.0]])
    out = module(torch.randn(1, 4, 4, 5))
    torch.testing.assert_close(out[:, 0], torch.full_like(out[:, 0], 1.5))
    torch.testing.assert_close(out[:, 1], torch.full_like(out[:, 1], -2.0))


def test_options_reach_the_factory() -> None:
    head = build_upsampler("pixelshuffle", in_channels=4, out_channels=3, scale=2, options={"bias": False})
    assert head[0].bias is None
    deconv = build_upsampler("transposed", in_channels=4, out_channels=3, scale=3, options={"kernel_size": 5})
    assert deconv.kernel_size == (5, 5)
    bilinear = build_upsampler("interpolate", in_channels=4, out_channels=3, scale=2, options={"mode": "bilinear"})
    assert bilinear[0].mode == "bilinear"
    assert build_upsampler("bicubic", in_channels=4, out_channels=3, scale=2)[0].mode == "bicubic"
    attention = build_upsampler("attention", in_channels=4, out_channels=3, scale=2, options={"window": 3})
    assert attention.position.shape == (1, 16, 9)


def test_build_errors_name_the_fix() -> None:
    with pytest.raises(SrlabError, match="unknown upsampler 'nope': choose one of .*subpixel"):
        build_upsampler("nope", in_channels=4, out_channels=3, scale=2)
    with pytest.raises(SrlabError, match="upsampler 'pixelshuffle' has no option 'mode': its options are bias"):
        build_upsampler("pixelshuffle", in_channels=4, out_channels=3, scale=2, options={"mode": "x"})
    with pytest.raises(SrlabError, match="upsampler 'pixelshuffle_progressive' does not build scale 5"):
        build_upsampler("pixelshuffle_progressive", in_channels=4, out_channels=3, scale=5)
    with pytest.raises(ValueError, match=r"heads \(2\) must divide key_channels \(16\) and out_channels \(3\)"):
        build_upsampler("attention", in_channels=4, out_channels=3, scale=2, options={"heads": 2})
    with pytest.raises(ValueError, match="the transposed convolution needs an odd kernel size, got 4"):
        build_upsampler("decomposed", in_channels=4, out_channels=3, scale=2, options={"kernel_size": 4})


def _measured_reach(name: str, scale: int, options: dict | None) -> int:
    """How far (LR pixels, per side) the output pixels that change when one LR feature pixel changes lie."""
    torch.manual_seed(0)
    module = build_upsampler(name, in_channels=6, out_channels=3, scale=scale, options=options).eval()
    x = torch.randn(1, 6, 15, 15)
    moved = x.clone()
    moved[..., 7, 7] += 1.0
    with torch.no_grad():
        changed = (module(x) - module(moved)).abs().amax(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    return int(max((rows // scale - 7).abs().max(), (cols // scale - 7).abs().max()))


@pytest.mark.parametrize(
    ("name", "options"),
    [(name, None) for name in list_upsamplers()]
    + [("transposed", {"kernel_size": 5}), ("attention", {"window": 9}), ("interpolate", {"mode": "bicubic"}),
       ("meta", {"kernel_size": 5})],
)
def test_each_upsampler_states_the_reach_it_has(name: str, options: dict | None) -> None:
    measured = max(_measured_reach(name, scale, options) for scale in _scales(name))
    assert upsampler_entry(name).reach(options) == measured


def test_registration_checks_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_UPSAMPLERS", dict(base._UPSAMPLERS))
    with pytest.raises(ValueError, match="'subpixel' is registered twice"):
        register_upsampler("subpixel", reach=1)(lambda *, in_channels, out_channels, scale: nn.Identity())
    with pytest.raises(ValueError, match="'pixelshuffle' is registered twice"):  # an alias is taken too
        register_upsampler("new", reach=1, aliases=("pixelshuffle",))(lambda *, in_channels, out_channels, scale: nn.Identity())
    with pytest.raises(TypeError, match="must take keyword-only arguments"):
        register_upsampler("positional", reach=1)(lambda in_channels, out_channels, scale: nn.Identity())
    with pytest.raises(TypeError, match="must take out_channels"):
        register_upsampler("no_out", reach=1)(lambda *, in_channels, scale: nn.Identity())
    with pytest.raises(TypeError, match=r"options need defaults \(width\)"):
        register_upsampler("no_default", reach=1)(lambda *, in_channels, out_channels, scale, width: nn.Identity())

    @register_upsampler("nearest_only", reach=0, scales=(2,))
    def nearest_only(*, in_channels: int, out_channels: int, scale: int) -> nn.Module:
        return nn.Sequential(nn.Upsample(scale_factor=scale), nn.Conv2d(in_channels, out_channels, 1))

    assert "nearest_only" in list_upsamplers()
    assert build_upsampler("nearest_only", in_channels=2, out_channels=1, scale=2)(torch.zeros(1, 2, 3, 3)).shape == (
        1, 1, 6, 6)
