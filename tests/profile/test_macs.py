import pytest
import torch
from torch import nn

import srlab
from srlab.profile import count_macs, macs_720p
from srlab.profile.macs import lr_size_for_720p


def test_hand_counted_layers():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1, groups=2), nn.ConvTranspose2d(8, 3, 4, stride=2),
    )
    h, w = 10, 12
    # The transposed conv's output is 22 x 26; it is counted per output pixel (the papers' convention).
    expected = h * w * 8 * 3 * 9 + h * w * 8 * 4 + 22 * 26 * 3 * 8 * 16
    assert count_macs(model, (h, w)) == expected


def test_linear_layers_count_per_token():
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(3, 5)

        def forward(self, x):
            return self.proj(x.flatten(2).transpose(1, 2))

    assert count_macs(Tokens(), (4, 6)) == 4 * 6 * 5 * 3


def test_720p_convention_and_no_real_compute():
    assert [lr_size_for_720p(s) for s in (2, 3, 4)] == [(360, 640), (240, 427), (180, 320)]
    model = srlab.create_model("rdsr_s", scale=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    macs = macs_720p(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    assert next(model.parameters()).device.type == "cpu"
    # Most of rdsr_s's work is its 3x3 convs at LR resolution: a lower bound by hand.
    convs_3x3 = 3 * 32 + 4 * 3 * 32 * 32 + 32 * 48
    assert macs > 180 * 320 * 9 * convs_3x3
    assert macs == pytest.approx(8.2e9, rel=0.01)


def test_imdn_matches_its_published_mult_adds():
    """IMDN's paper: 158.8 / 71.5 / 40.9 G Mult-Adds at 1280x720 output."""
    published = {2: 158.8e9, 3: 71.5e9, 4: 40.9e9}
    for scale, value in published.items():
        assert macs_720p(srlab.create_model("imdn", scale=scale)) == pytest.approx(value, abs=0.05e9)


@pytest.mark.parametrize(("scale", "published_gmacs"), [(2, 6.0), (3, 5.0), (4, 4.6)])
def test_fsrcnn_matches_the_papers_transposed_conv_convention(scale, published_gmacs):
    # CARN's and SMSR's tables: FSRCNN 6.0 / 5.0 / 4.6 G at 1280x720 output (fvcore's per-input count: 2.87 G at x2).
    model = srlab.create_model("fsrcnn", scale=scale)
    assert round(macs_720p(model) / 1e9, 1) == published_gmacs
