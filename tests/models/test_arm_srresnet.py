"""ARM-SRResNet (the official US_MSRResNet): structure, parameter count, cost and the slicing rule; no
released weights here (arm-srresnet.pth is not in the shared copy)."""

import pytest
import torch
from torch import nn

import srlab
from srlab.models import count_macs, count_parameters, paper_parameter_count


class _AtWidth(nn.Module):
    def __init__(self, model: nn.Module, width: int) -> None:
        super().__init__()
        self.model, self.width = model, width

    def forward(self, x):
        return self.model(x, width=self.width)


def test_parameter_count_and_widths_are_the_official_ones():
    model = srlab.create_model("arm_srresnet", scale=4)
    # The official train log prints "US_MSRResNet, with parameters: 1,517,571".
    assert count_parameters(model) == paper_parameter_count(model) == 1_517_571
    assert model.widths == (36, 52, 64)
    names = set(model.state_dict())
    assert {"conv_first.weight", "recon_trunk.15.conv2.bias", "upconv2.weight", "HRconv.weight",
            "conv_last.bias"} <= names and len(names) == 2 * (1 + 2 * 16 + 2 + 1 + 1)


def test_cost_per_subnet_is_the_official_cost_list():
    """The official train log's cost_list (FLOPs on a 32x32 patch) [0, 1658216448, 3438010368, 5193990144]
    equals 2 x srlab's MACs less the bilinear skip (4 MACs per output value), which the official counter
    leaves out."""
    model = srlab.create_model("arm_srresnet", scale=4)
    bilinear = 4 * 3 * 128 * 128
    flops = [2 * (count_macs(_AtWidth(model, w), (32, 32)) - bilinear) for w in model.widths]
    assert flops == [1658216448, 3438010368, 5193990144]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_a_subnet_is_the_narrow_network_on_the_first_channels(scale):
    torch.manual_seed(0)
    supernet = srlab.create_model("arm_srresnet", scale=scale, args={"nb": 2}).double().eval()
    x = torch.rand(1, 3, 9, 7, dtype=torch.float64)
    for width in supernet.widths:
        narrow = srlab.create_model("arm_srresnet", scale=scale, args={"nf": width, "nb": 2}).double().eval()
        full = supernet.state_dict()
        narrow.load_state_dict({k: full[k][tuple(slice(0, n) for n in v.shape)] for k, v in narrow.state_dict().items()})
        with torch.no_grad():
            out = supernet(x, width=width)
            assert out.shape == (1, 3, 9 * scale, 7 * scale)
            assert torch.allclose(out, narrow(x), atol=1e-12, rtol=0)
            with supernet.at_width(width):
                assert torch.equal(supernet(x), out)
    with torch.no_grad():
        assert torch.equal(supernet(x), supernet(x, width=64))


def test_untrained_widths_are_refused():
    model = srlab.create_model("arm_srresnet", scale=4, args={"nb": 1})
    with pytest.raises(ValueError, match=r"width must be one of \(36, 52, 64\)"):
        model(torch.rand(1, 3, 4, 4), width=48)
    with pytest.raises(ValueError, match=r"width must be one of"):
        with model.at_width(40):
            pass
    assert model.active_width is None


@pytest.mark.parametrize("name", ["arm_srresnet", "arm_fsrcnn"])
def test_initialisation_is_the_official_one(name):
    """initialize_weights(..., 0.1): Kaiming normal (fan in) x 0.1 and zero biases on every nn.Conv2d (for
    FSRCNN not the transposed tail conv, which keeps PyTorch's default)."""
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(torch.count_nonzero(m.bias) == 0 for m in convs)
    weights = torch.cat([m.weight.flatten() / (0.1 * (2 / m.weight[0].numel()) ** 0.5) for m in convs])
    assert abs(weights.std().item() - 1) < 0.05 and abs(weights.mean().item()) < 0.05
    if name == "arm_fsrcnn":
        assert torch.count_nonzero(model.tail_conv.bias) == 3
