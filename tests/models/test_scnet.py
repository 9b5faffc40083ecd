import pytest
import torch
import torch.nn.functional as F

import srlab
import srlab.models.scnet  # noqa: F401  (registers the model)
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.complexity import count_macs
from srlab.models.scnet import Shift8

SCALES = (2, 3, 4)
# sum(p.numel()) of the official SCNet(num_feat=64, num_block=16) (paper-results.md §8): the training
# option's UpShiftMLP up-layers, and the -PS test option's PixelShuffle ones.
EXPECTED_PARAMS = {2: 146_051, 3: 146_051, 4: 154_371}
EXPECTED_PARAMS_PIXEL_SHUFFLE = {2: 158_531, 3: 179_331, 4: 179_331}


@pytest.mark.parametrize("scale", SCALES)
def test_parameter_counts(scale):
    model = srlab.create_model("scnet_t", scale=scale)
    assert count_parameters(model) == paper_parameter_count(model) == EXPECTED_PARAMS[scale]
    shuffled = srlab.create_model("scnet_t", scale=scale, args={"pixel_shuffle": True})
    assert count_parameters(shuffled) == EXPECTED_PARAMS_PIXEL_SHUFFLE[scale]


def test_parameter_count_by_hand():
    conv1x1 = lambda cin, cout: cin * cout + cout  # noqa: E731
    c = 64
    trunk = conv1x1(3, c) + 16 * 2 * conv1x1(c, c) + conv1x1(c, c) + conv1x1(c, 3)
    mlp_up = 2 * conv1x1(c, c)
    assert trunk + mlp_up == EXPECTED_PARAMS[3]
    assert trunk + 2 * mlp_up == EXPECTED_PARAMS[4]
    assert trunk + 2 * (conv1x1(c, c) + conv1x1(c, 4 * c)) == EXPECTED_PARAMS_PIXEL_SHUFFLE[4]


@pytest.mark.parametrize("pixel_shuffle", [False, True])
def test_state_dict_names_are_the_official_ones(pixel_shuffle):
    """The official listing (basicsr/archs/SCNet_arch.py at c0f8678): conv_first, body.<i>.conv1/conv2,
    upconv1[, upconv2].up_layer.<convs>, conv_hr, conv_last."""
    model = srlab.create_model("scnet_t", scale=4, args={"pixel_shuffle": pixel_shuffle})
    up_convs = (0, 3) if pixel_shuffle else (1, 4)
    expected = ["conv_first.weight", "conv_first.bias"]
    expected += [f"body.{i}.{conv}.{p}" for i in range(16) for conv in ("conv1", "conv2") for p in ("weight", "bias")]
    expected += [f"upconv{u}.up_layer.{i}.{p}" for u in (1, 2) for i in up_convs for p in ("weight", "bias")]
    expected += ["conv_hr.weight", "conv_hr.bias", "conv_last.weight", "conv_last.bias"]
    assert list(model.state_dict()) == expected
    assert all(v.shape[-2:] == (1, 1) for v in model.state_dict().values() if v.dim() == 4)  # fully 1x1


def test_shift8_moves_each_group_one_pixel_in_its_direction():
    x = torch.zeros(1, 8, 5, 5)
    x[:, :, 2, 2] = 1.0
    out = Shift8()(x)
    # output (i, j) of group g reads input (i + dy, j + dx): the impulse lands at (2 - dy, 2 - dx)
    where = [tuple(torch.nonzero(out[0, g]).flatten().tolist()) for g in range(8)]
    assert where == [(3, 2), (1, 2), (2, 3), (2, 1), (1, 1), (1, 3), (3, 1), (3, 3)]
    edge = torch.ones(1, 8, 3, 4)
    assert Shift8()(edge)[0, 0, 0].eq(0).all() and Shift8()(edge)[0, 1, -1].eq(0).all()  # zero fill


def test_shift8_rejects_channels_not_divisible_by_eight():
    with pytest.raises(ValueError, match="Shift8 needs a multiple of 8 channels, got 12"):
        Shift8()(torch.rand(1, 12, 4, 4))


def test_initialisation_is_scaled_kaiming_with_zero_biases():
    torch.manual_seed(0)
    model = srlab.create_model("scnet_t", scale=2)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
    fan_in = 64
    std = model.body[0].conv1.weight.std().item()
    assert std == pytest.approx(0.1 * (2 / fan_in) ** 0.5, rel=0.1)


@pytest.mark.parametrize("scale", SCALES)
def test_output_is_the_bilinear_upsampling_plus_the_network(scale):
    model = srlab.create_model("scnet_t", scale=scale).eval()
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
        x = torch.rand(1, 3, 9, 11)
        expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        assert torch.equal(model(x), expected)


def test_macs_are_the_1x1_convolutions_and_the_bilinear_resizes():
    """At x2 on an LR of H x W: 3->64 and 33 64->64 1x1 convs at LR, the up-layer's two 64->64 at HR,
    conv_hr and conv_last at HR; 4 per output element for the two bilinear resizes (fvcore's weight)."""
    h, w = 10, 12
    lr, hr = h * w, 4 * h * w
    c = 64
    convs = lr * (3 * c + 32 * c * c) + hr * (2 * c * c + c * c + c * 3)
    resizes = 4 * hr * c + 4 * hr * 3
    model = srlab.create_model("scnet_t", scale=2)
    assert count_macs(model, (h, w)) == convs + resizes
