import pytest
import torch
import torch.nn.functional as F

import srlab
import srlab.models.asconvsr  # noqa: F401  (registers the model)
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.asconvsr import AssembledConv, ControlModule
from srlab.models.complexity import count_macs

# This reconstruction's count (the paper's could not be read: see the module docstring).
EXPECTED_PARAMS = 101_616


def test_parameter_count_by_hand():
    c, e = 32, 3
    head, tail = 9 * 12 * c + c, 9 * c * 48 + 48
    control = c * (c // 4) + (c // 4) * e * c
    assembled = 3 * (e * 9 * c * c + e * c)
    model = srlab.create_model("asconvsr", scale=2)
    assert head + control + assembled + tail == count_parameters(model) == paper_parameter_count(model) == EXPECTED_PARAMS


def test_state_dict_names():
    names = list(srlab.create_model("asconvsr", scale=2).state_dict())
    convs = [f"block.convs.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    assert names == ["head.weight", "head.bias", "block.control.net.0.weight", "block.control.net.2.weight",
                     *convs, "tail.weight", "tail.bias"]


def test_each_output_channel_assembles_its_own_kernel_per_image():
    torch.manual_seed(0)
    conv = AssembledConv(4, 5, num_bases=3).double()
    x = torch.rand(2, 4, 6, 7, dtype=torch.float64)
    coefficients = torch.softmax(torch.randn(2, 5, 3, dtype=torch.float64), dim=-1)
    got = conv(x, coefficients)
    for b in range(2):
        kernel = torch.stack([sum(coefficients[b, o, e] * conv.weight[e, o] for e in range(3)) for o in range(5)])
        bias = torch.stack([sum(coefficients[b, o, e] * conv.bias[e, o] for e in range(3)) for o in range(5)])
        expected = F.conv2d(x[b : b + 1], kernel, bias, padding=1)
        assert (got[b : b + 1] - expected).abs().max() <= 1e-12


def test_the_control_module_gives_a_softmax_per_output_channel_at_its_temperature():
    torch.manual_seed(0)
    control = ControlModule(8, 6, num_bases=3, temperature=30.0, reduction=4)
    x = torch.rand(2, 8, 5, 5)
    coefficients = control(x)
    assert coefficients.shape == (2, 6, 3)
    assert torch.allclose(coefficients.sum(-1), torch.ones(2, 6))
    logits = control.net(x.mean((2, 3), keepdim=True)).view(2, 6, 3)
    assert torch.allclose(coefficients, torch.softmax(logits / 30.0, dim=-1))
    # the coefficients depend on the image only through its mean features: a shuffled image gets the same
    shuffled = x.flatten(2)[..., torch.randperm(25)].view_as(x)
    assert torch.allclose(control(shuffled), coefficients, atol=1e-6)


def test_repeat_upscaling_is_nearest_neighbour_upsampling():
    model = srlab.create_model("asconvsr", scale=2).eval()
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        x = torch.rand(1, 3, 6, 8)
        assert torch.equal(model(x), F.interpolate(x, scale_factor=2, mode="nearest"))


def test_images_of_a_batch_are_assembled_independently():
    torch.manual_seed(0)
    model = srlab.create_model("asconvsr", scale=2).double().eval()
    x = torch.rand(3, 3, 8, 10, dtype=torch.float64)
    x[1] *= 0.2  # a darker image: other coefficients
    with torch.no_grad():
        batched = model(x)
        for b in range(3):
            assert (model(x[b : b + 1]) - batched[b : b + 1]).abs().max() <= 1e-12
        coefficients = model.block.control(model.head(F.pixel_unshuffle(x, 2)))
    assert (coefficients[0] - coefficients[1]).abs().max() > 0


def test_macs_are_the_convolutions_the_assembly_and_the_control_module():
    """Per half-resolution pixel: head 12->32, three assembled 32->32, tail 32->48 (3x3); per image: the
    control module's 1x1 convs and the kernel and bias assembly (E multiply-adds per kernel entry)."""
    h, w = 10, 12
    half = (h // 2) * (w // 2)
    convs = half * 9 * (12 * 32 + 3 * 32 * 32 + 32 * 48)
    per_image = (32 * 8 + 8 * 96) + 3 * 3 * (32 * 32 * 9 + 32)
    assert count_macs(srlab.create_model("asconvsr", scale=2), (h, w)) == convs + per_image


def test_only_the_published_scale_is_built():
    with pytest.raises(ValueError, match="AsConvSR is published for x2 only, got scale 4"):
        srlab.models.asconvsr.AsConvSR(scale=4, channels=8, num_convs=1, num_bases=2, temperature=1.0, reduction=4)


def test_odd_sides_are_reflect_padded_and_cropped():
    torch.manual_seed(0)
    model = srlab.create_model("asconvsr", scale=2).double().eval()
    x = torch.rand(1, 3, 7, 9, dtype=torch.float64)
    padded = F.pad(x, (0, 1, 0, 1), mode="reflect")
    with torch.no_grad():
        assert (model(x) - model(padded)[..., :14, :18]).abs().max() <= 1e-12
