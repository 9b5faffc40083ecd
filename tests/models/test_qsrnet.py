import pytest
import torch
import torch.nn.functional as F

import srlab
import srlab.models.qsrnet  # noqa: F401  (registers the models)
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.complexity import count_macs
from srlab.models.registry import spec_of

SCALES = (2, 3, 4)
VARIANTS = {  # name: (channels, intermediate layers, ito connection), the official subclasses
    "qsrnet_small": (32, 2, False),
    "qsrnet": (32, 5, False),
    "qsrnet_large": (64, 11, True),
}
# sum(p.numel()) of the official QuickSRNetBase (quic/aimet-model-zoo at d09d2b0), measured once.
EXPECTED_PARAMS = {
    "qsrnet_small": {2: 22_860, 3: 27_195, 4: 33_264},
    "qsrnet": {2: 50_604, 3: 54_939, 4: 61_008},
    "qsrnet_large": {2: 414_972, 3: 423_687, 4: 435_888},
}
# Qualcomm AI Hub model cards (quic/ai-hub-models, models/quicksrnet*/info.yaml): "Number of parameters".
MODEL_CARD_X4 = {"qsrnet_small": 33.3e3, "qsrnet": 61.0e3, "qsrnet_large": 436e3}


def conv3x3(cin: int, cout: int) -> int:
    return 9 * cin * cout + cout


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("scale", SCALES)
def test_parameter_counts_by_hand(name, scale):
    channels, layers, ito = VARIANTS[name]
    by_hand = conv3x3(3, channels) + layers * conv3x3(channels, channels) + conv3x3(channels, 3 * scale**2)
    by_hand += (3 * 3 * scale**2 + 3 * scale**2) if ito else 0  # the 1x1 anchor
    model = srlab.create_model(name, scale=scale)
    assert count_parameters(model) == paper_parameter_count(model) == by_hand == EXPECTED_PARAMS[name][scale]


@pytest.mark.parametrize("name", VARIANTS)
def test_the_model_cards_print_the_x4_counts(name):
    # The cards print three significant figures; they name a x3 checkpoint, but only x4 rounds to them.
    digits = {"qsrnet_small": 1, "qsrnet": 1, "qsrnet_large": 0}[name]
    assert round(EXPECTED_PARAMS[name][4] / 1e3, digits) == MODEL_CARD_X4[name] / 1e3
    assert round(EXPECTED_PARAMS[name][3] / 1e3, digits) != MODEL_CARD_X4[name] / 1e3


@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_names_are_the_official_ones(name):
    """The official listing: cnn.<0, 2, ...> (the Hardtanhs between them hold nothing), conv_last,
    anchor.net for the ito connection."""
    _, layers, ito = VARIANTS[name]
    expected = [f"cnn.{2 * i}.{p}" for i in range(layers + 1) for p in ("weight", "bias")]
    expected += ["conv_last.weight", "conv_last.bias"] + (["anchor.net.weight", "anchor.net.bias"] if ito else [])
    assert list(srlab.create_model(name, scale=3).state_dict()) == expected


def test_the_initialisation_adds_the_identity_to_the_default_one():
    """Default uniform init (bound 1/sqrt(fan_in) <= 0.06 here) plus 1 at the kernel centre of each
    conv's diagonal; without the anchor, conv_last's output o starts from feature channel o // s^2."""
    torch.manual_seed(0)
    model = srlab.create_model("qsrnet_small", scale=2)
    first, last = model.cnn[0].weight, model.conv_last.weight
    for c in range(3):
        assert 0.8 < first[c, c, 1, 1].item() < 1.2
    assert first[3:].abs().max() < 0.2 and first[0, 1].abs().max() < 0.2
    for o in range(12):
        assert 0.9 < last[o, o // 4, 1, 1].item() < 1.1
    assert last[:, 3:].abs().max() < 0.1


@pytest.mark.parametrize("scale", SCALES)
def test_the_anchor_starts_as_nearest_upsampling_and_trains(scale):
    model = srlab.create_model("qsrnet_large", scale=scale)
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        nearest = F.pixel_shuffle(model.anchor(x), scale)
    assert torch.equal(nearest, F.interpolate(x, scale_factor=scale, mode="nearest"))
    assert model.anchor.net.weight.requires_grad and model.anchor.net.bias.requires_grad


@pytest.mark.parametrize("name", VARIANTS)
def test_the_output_is_clipped_to_the_image_range(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=2).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 9, 11) * 10 - 5)
    assert y.min() >= 0 and y.max() <= 1 and 0 < y.mean() < 1


@pytest.mark.parametrize("name", VARIANTS)
def test_macs_are_the_convolutions(name):
    channels, layers, ito = VARIANTS[name]
    h, w, scale = 10, 12, 3
    per_pixel = 9 * (3 * channels + layers * channels**2 + channels * 3 * scale**2) + (3 * 3 * scale**2 if ito else 0)
    assert count_macs(srlab.create_model(name, scale=scale), (h, w)) == h * w * per_pixel


def test_the_official_release_format_loads_and_is_detected(tmp_path):
    """The releases are ``.pth.tar`` files holding ``{"state_dict": ...}`` (ai-hub-models loads
    ``checkpoint["state_dict"]``); weights of another width are recognised (Medium's depth: the variant
    that overrides the fewest defaults wins)."""
    torch.manual_seed(0)
    model = srlab.create_model("qsrnet", scale=4, args={"channels": 16}).eval()
    path = tmp_path / "quicksrnet_custom_4x_checkpoint_float32.pth.tar"
    torch.save({"state_dict": model.state_dict(), "epoch": 7}, path)
    loaded = srlab.create_model(checkpoint=path).eval()
    spec = spec_of(loaded)
    assert (spec.name, spec.scale) == ("qsrnet", 4)
    assert spec.args["channels"] == 16 and spec.args["num_intermediate_layers"] == 5
    x = torch.rand(1, 3, 8, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_scales_outside_the_registered_ones_are_refused():
    with pytest.raises(ValueError, match="QuickSRNet is registered for scales 2, 3 and 4, got 8"):
        srlab.models.qsrnet.QuickSRNet(scale=8, channels=8, num_intermediate_layers=1, ito_connection=False)
