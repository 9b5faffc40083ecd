"""The upsampler contract: every registered upsampler maps (N, C_in, H, W) to (N, C_out, sH, sW)."""

import pytest
import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.layers.upsamplers import build_upsampler, list_upsamplers, register_upsampler, upsampler_entry
from srlab.layers.upsamplers import base


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
    assert {"pixelshuffle", "pixelshuffle_progressive", "interpolate", "transposed"} <= set(list_upsamplers())


def test_options_reach_the_factory() -> None:
    head = build_upsampler("pixelshuffle", in_channels=4, out_channels=3, scale=2, options={"bias": False})
    assert head[0].bias is None
    deconv = build_upsampler("transposed", in_channels=4, out_channels=3, scale=3, options={"kernel_size": 5})
    assert deconv.kernel_size == (5, 5)
    bilinear = build_upsampler("interpolate", in_channels=4, out_channels=3, scale=2, options={"mode": "bilinear"})
    assert bilinear[0].mode == "bilinear"


def test_build_errors_name_the_fix() -> None:
    with pytest.raises(SrlabError, match="unknown upsampler 'nope': choose one of .*pixelshuffle"):
        build_upsampler("nope", in_channels=4, out_channels=3, scale=2)
    with pytest.raises(SrlabError, match="upsampler 'pixelshuffle' has no option 'mode': its options are bias"):
        build_upsampler("pixelshuffle", in_channels=4, out_channels=3, scale=2, options={"mode": "x"})
    with pytest.raises(SrlabError, match="upsampler 'pixelshuffle_progressive' does not build scale 5"):
        build_upsampler("pixelshuffle_progressive", in_channels=4, out_channels=3, scale=5)


def test_registration_checks_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_UPSAMPLERS", dict(base._UPSAMPLERS))
    with pytest.raises(ValueError, match="'pixelshuffle' is registered twice"):
        register_upsampler("pixelshuffle")(lambda *, in_channels, out_channels, scale: nn.Identity())
    with pytest.raises(TypeError, match="must take keyword-only arguments"):
        register_upsampler("positional")(lambda in_channels, out_channels, scale: nn.Identity())
    with pytest.raises(TypeError, match="must take out_channels"):
        register_upsampler("no_out")(lambda *, in_channels, scale: nn.Identity())
    with pytest.raises(TypeError, match=r"options need defaults \(width\)"):
        register_upsampler("no_default")(lambda *, in_channels, out_channels, scale, width: nn.Identity())

    @register_upsampler("nearest_only", scales=(2,))
    def nearest_only(*, in_channels: int, out_channels: int, scale: int) -> nn.Module:
        return nn.Sequential(nn.Upsample(scale_factor=scale), nn.Conv2d(in_channels, out_channels, 1))

    assert "nearest_only" in list_upsamplers()
    assert build_upsampler("nearest_only", in_channels=2, out_channels=1, scale=2)(torch.zeros(1, 2, 3, 3)).shape == (
        1, 1, 6, 6)
