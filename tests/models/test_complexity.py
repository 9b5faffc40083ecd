import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srlab
from srlab.models.complexity import count_macs, lr_size_for_720p, macs_720p, measure_macs


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


@pytest.mark.parametrize(("scale", "published_gmacs"), [(2, 6.0), (3, 5.0), (4, 4.6)])
def test_fsrcnn_matches_the_papers_transposed_conv_convention(scale, published_gmacs):
    # CARN's and SMSR's tables: FSRCNN 6.0 / 5.0 / 4.6 G at 1280x720 output (fvcore's per-input count: 2.87 G at x2).
    model = srlab.create_model("fsrcnn", scale=scale)
    assert round(macs_720p(model) / 1e9, 1) == published_gmacs


def test_functional_ops_matrix_products_and_resizing_count():
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(4, 3, 3, 3))
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            y = torch.nn.functional.conv2d(x, self.weight, padding=1)  # functional: 4*3*9 per pixel
            tokens = y.flatten(2)  # (1, 4, HW)
            attn = tokens.transpose(1, 2) @ tokens  # bmm: HW x 4 x HW
            z = torch.nn.functional.interpolate(y, scale_factor=2, mode="bilinear")  # 4 per output element
            w = torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest")  # 1 per output element
            return attn.mean() + z.mean() + w.mean() + self.pool(y).mean() + y.mean()

    h, w = 5, 6
    hw = h * w
    expected = hw * 4 * 3 * 9 + hw * 4 * hw + 4 * (4 * hw * 4) + (4 * hw * 4) + 4 * hw  # pool: its input
    assert count_macs(Mixed(), (h, w)) == expected


@pytest.mark.parametrize(("name", "published"), [("imdn", (158.8, 71.5, 40.9)), ("edsr_baseline", (316, 160, 114))])
def test_published_mult_adds(name, published):
    # IMDN's table (fvcore, which also counts the CCA's average pooling, gives 158.85 / 71.54 / 40.91 G: the
    # paper left the pooling out, as srlab's CCA does with its plain mean); EDSR-baseline from SAFMN's table.
    for scale, figure in zip((2, 3, 4), published):
        digits = len(str(figure).partition(".")[2])
        assert round(macs_720p(srlab.create_model(name, scale=scale)) / 1e9, digits) == figure


class _EveryCountedOp(torch.nn.Module):
    """Convolutions, a transposed one, a linear layer, matmul, einsum and pools, as functional calls too."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, groups=1)
        self.grouped = torch.nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.up = torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2)
        self.linear = torch.nn.Linear(4, 6)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.up(self.grouped(torch.relu(self.conv(x))))
        z = self.linear(y.permute(0, 2, 3, 1))
        attn = z.flatten(1, 2) @ z.flatten(1, 2).transpose(1, 2)
        mixed = torch.einsum("bij,bjc->bic", attn.softmax(-1), z.flatten(1, 2))
        return mixed.mean() + self.pool(y).sum() + F.adaptive_avg_pool2d(y, 3).sum()


def test_measured_macs_are_the_same_under_inference_mode_and_equal_the_shape_count():
    """Under torch.inference_mode composite ops (conv2d, linear, matmul, einsum) reach the counter whole."""
    model = _EveryCountedOp().eval()
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        _, plain = measure_macs(model, lambda: model(x))
    with torch.inference_mode():
        _, inference = measure_macs(model, lambda: model(x))
        shape_count = count_macs(model, (10, 12))
    assert plain == inference == shape_count > 0
