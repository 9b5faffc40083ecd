import pytest
import torch
from torch import nn

import srlab
from srlab.models import count_parameters
from srlab.models.rdsr import ResidualDistillationBlock

# Parameter counts of the registered variants (also stated in the README).
EXPECTED_PARAMS = {
    ("rdsr_s", 2): 136_012, ("rdsr_s", 3): 140_347, ("rdsr_s", 4): 146_416,
    ("rdsr", 2): 481_830, ("rdsr", 3): 488_595, ("rdsr", 4): 498_066,
}


@pytest.mark.parametrize(("name", "scale"), sorted(EXPECTED_PARAMS))
def test_parameter_counts(name, scale):
    model = srlab.create_model(name, scale=scale)
    assert count_parameters(model) == EXPECTED_PARAMS[(name, scale)]


def test_parameter_count_matches_the_drawn_architecture():
    """Count the drawing by hand: head, N blocks (3 convs, 1x1 fuse, CA), fusion, ESA, tail."""
    c, n, r, s = 32, 4, 8, 2
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    ca = conv(c, c // r, 1) + conv(c // r, c, 1)
    block = 3 * conv(c, c, 3) + conv(3 * c, c, 1) + ca
    f = c // 4
    esa = conv(c, f, 1) + conv(f, f, 1) + 4 * conv(f, f, 3) + conv(f, c, 1)
    total = conv(3, c, 3) + n * block + conv(n * c, c, 1) + esa + conv(c, 3 * s * s, 3)
    assert count_parameters(srlab.create_model("rdsr_s", scale=s)) == total


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (24, 30), (37, 41)])
def test_output_shape_for_odd_sizes(scale, size):
    model = srlab.create_model("rdsr_s", scale=scale).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("init", ["default", "bicubic"])
def test_backward_reaches_every_parameter(init):
    # A seed whose channel-attention bottlenecks (4 ReLU units at 32/8) are not all negative at init:
    # such a dead gate gets no gradient whatever the wiring, and this test is about the wiring.
    torch.manual_seed(3)
    model = srlab.create_model("rdsr_s", scale=2, args={"init": init})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    from conftest import photo

    target = torch.from_numpy(photo("astronaut", (48, 48)).copy()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.avg_pool2d(target, 2)
    # The bicubic init starts the deep branch at zero: its weights get gradients from the second step on.
    for _ in range(2):
        optimizer.zero_grad()
        (model(x) - target).abs().mean().backward()
        optimizer.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_init_starts_as_an_interpolator(scale):
    from conftest import photo
    from srlab.data.resize import bicubic_downscale, bicubic_upscale
    from srlab.inference import upscale_tensor
    from srlab.metrics import PAPER_PROTOCOL

    model = srlab.create_model("rdsr_s", scale=scale).eval()
    flat = torch.full((1, 3, 12, 12), 0.3)
    with torch.no_grad():
        assert torch.allclose(model(flat)[..., scale:-scale, scale:-scale], torch.tensor(0.3), atol=1e-6)
    hr = torch.from_numpy(photo("chelsea", (240, 180)).copy()).permute(2, 0, 1).float() / 255
    lr = bicubic_downscale(hr, scale, quantize=True)
    untrained = PAPER_PROTOCOL.score(upscale_tensor(model, lr), hr, scale)["psnr_y"]
    bicubic = PAPER_PROTOCOL.score(bicubic_upscale(lr, scale, quantize=True), hr, scale)["psnr_y"]
    assert abs(untrained - bicubic) < 0.5
    default = srlab.create_model("rdsr_s", scale=scale, args={"init": "default"}).eval()
    assert PAPER_PROTOCOL.score(upscale_tensor(default, lr).clamp(0, 1), hr, scale)["psnr_y"] < bicubic - 5


def test_unknown_init_is_an_error():
    with pytest.raises(srlab.SrlabError, match="init must be one of bicubic, default"):
        srlab.create_model("rdsr_s", scale=2, args={"init": "xavier"})


def test_block_is_residual():
    block = ResidualDistillationBlock(8, ca_reduction=4)
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.rand(1, 8, 6, 6)
    # With zero weights the fused branch is zero, and the attention gate cannot revive it.
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("upsampler", ["nearest", "bicubic", "transposed", "decomposed", "attention"])
def test_every_upsampler_replaces_the_tail(upsampler):
    torch.manual_seed(0)
    model = srlab.create_model("rdsr_s", scale=3, args={"upsampler": upsampler})
    drawn = srlab.create_model("rdsr_s", scale=3)
    assert model.srlab_spec.args["upsampler"] == upsampler
    assert isinstance(model.upsample, nn.Identity) and isinstance(drawn.upsample, nn.PixelShuffle)
    upsampler_params = sum(p.numel() for p in model.tail.parameters())
    assert count_parameters(model) - upsampler_params == count_parameters(drawn) - drawn.tail.weight.numel() - 27
    x = torch.rand(1, 3, 12, 12)
    y = model(x)
    assert y.shape == (1, 3, 36, 36)
    y.mean().backward()
    assert all(p.grad is not None for p in model.tail.parameters())


def test_the_default_upsampler_keeps_the_bundled_weights_and_the_old_name_works():
    bundled = srlab.create_model("rdsr_s", scale=2, pretrained=True)
    assert "tail.weight" in bundled.state_dict() and bundled.srlab_spec.args["upsampler"] == "subpixel"
    aliased = srlab.create_model("rdsr_s", scale=2, args={"upsampler": "pixelshuffle"})
    assert aliased.state_dict().keys() == bundled.state_dict().keys()


def test_an_unknown_upsampler_names_the_choices():
    with pytest.raises(srlab.SrlabError, match="unknown upsampler 'sinc': choose one of .*bicubic"):
        srlab.create_model("rdsr_s", scale=2, args={"upsampler": "sinc"})
