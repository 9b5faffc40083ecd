"""ADSRNet / HDSRNet against facts recorded from its official code (hellloxiaotian/ADSRNet@427ff93,
``HDSRNet/model/hdsrnet.py``, ``DynamicConv.py``, ``ops.py``, ``common.py``), which srlab does not ship.

Recorded from the official class ``DDYCNNSR`` (args ``scale=[s]``, ``rgb_range=255``) built from that
commit: its state dict's keys and shapes (digest below); with its state dict copied into srlab's model
(strict load), srlab's output x 255 equals the official output for the same [0, 255] input to 6.1e-5
(outputs up to 1.6e3; float32 rounding), at x2, x3 and x4, on a batch of two 19x23 images.
"""

import hashlib

import pytest
import torch
import torch.nn.functional as F

import srlab
from srlab.models import paper_parameter_count
from srlab.models.adsrnet import TEMPERATURE, DynamicConv, KernelAttention
from srlab.models.complexity import count_macs, macs_720p
from srlab.models.registry import spec_of

# sha256 (first 16 hex digits) of "key shape" lines, in state-dict order, of the official DDYCNNSR, and
# its number of tensors, parameters in all, trainable parameters (paper-results.md §8a lists the same counts).
OFFICIAL = {
    2: ("804b89bbd5ed1fe2", 54, 1_818_520, 1_818_496),
    3: ("40538d4d6aef6841", 54, 2_003_160, 2_003_136),
    4: ("a03139661801a37f", 56, 1_966_232, 1_966_208),
}


def _listing_digest(model: torch.nn.Module) -> str:
    text = "\n".join(f"{k} {','.join(map(str, v.shape))}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_state_dict_is_the_official_listing(scale):
    digest, tensors, total, trainable = OFFICIAL[scale]
    model = srlab.create_model("adsrnet", scale=scale)
    assert _listing_digest(model) == digest and len(model.state_dict()) == tensors
    assert sum(p.numel() for p in model.parameters()) == total
    assert paper_parameter_count(model) == trainable  # the 24 frozen mean-shift values left out


def test_parameter_count_by_hand():
    """x2: lower network (conv 3->64, 15 x 64->64, conv17 64->3), upper network (conv 3->64, 10 plain or
    dilated 64->64, 5 dynamic convs of 4 kernels + biases + attention 64->16->4), upsampler, mean shifts."""
    conv = 64 * 64 * 9
    dynamic = 4 * conv + 4 * 64 + 64 * 16 + 16 * 4
    lower = 3 * 64 * 9 + 15 * conv + 64 * 3 * 9
    upper = 3 * 64 * 9 + 10 * conv + 5 * dynamic
    upsample = 64 * 256 * 9 + 256
    assert lower + upper + upsample + 2 * (9 + 3) == OFFICIAL[2][2]


def test_the_papers_1819k_is_the_x2_count_with_the_frozen_mean_shifts():
    total, trainable = OFFICIAL[2][2:]
    assert round(total / 1e3) == 1819 and round(trainable / 1e3) == 1818
    assert all(round(OFFICIAL[s][2] / 1e3) != 1819 for s in (3, 4))  # not the x4 count its table compares


def test_macs_against_the_official_complexity_figure():
    """110.99 G at x4 for a 1024x1024 HR image (official results/Complexity.png): what a module-hook counter
    gives, which misses the dynamic convolutions' ``F.conv2d`` (module docstring)."""
    model = srlab.create_model("adsrnet", scale=4)
    macs = count_macs(model, (256, 256))
    assert macs == 122_845_157_952
    dynamic_convs = 5 * 64 * 64 * 9 * 256 * 256
    assert 0 < 110.99e9 - (macs - dynamic_convs) < 0.003 * 110.99e9
    assert [macs_720p(srlab.create_model("adsrnet", scale=s)) for s in (2, 3, 4)] == [
        291_177_729_600, 149_292_993_120, 107_969_467_200,
    ]


def test_dynamic_conv_is_a_per_image_softmax_mixture_of_its_kernels():
    torch.manual_seed(0)
    conv = DynamicConv(8, num_kernels=4, reduction=4).double()
    x = torch.rand(3, 8, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        out = conv(x)
        logits = conv.attention.net(x.mean(dim=(2, 3), keepdim=True)).flatten(1)
        mix = torch.softmax(logits / 40.0, dim=1)
        for i in range(3):
            weight = torch.einsum("k,koihw->oihw", mix[i], conv.weight)
            expected = F.conv2d(x[i : i + 1], weight, mix[i] @ conv.bias, padding=1)
            assert (out[i : i + 1] - expected).abs().max() < 1e-12
    assert TEMPERATURE == 40.0  # the official starting temperature, never lowered by the official trainer


def test_receptive_radius_covers_the_local_reach(monkeypatch):
    """With the kernel attention held fixed, an output pixel's gradient reaches 21 LR pixels (the upper
    network) plus the upsampler and output convs, within the declared radius."""
    monkeypatch.setattr(KernelAttention, "forward", lambda self, x: torch.full((x.shape[0], 4), 0.25, dtype=x.dtype))
    for scale in (2, 4):
        torch.manual_seed(0)
        model = srlab.create_model("adsrnet", scale=scale).double()
        x = torch.rand(1, 3, 61, 61, dtype=torch.float64, requires_grad=True)
        model(x)[0, :, 30 * scale, 30 * scale].sum().backward()
        rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
        reach = max(30 - rows.min().item(), rows.max().item() - 30)
        assert 21 <= reach <= spec_of(model).info.receptive_radius


def test_batched_images_do_not_mix():
    """Each image gets its own kernels: an image's output does not depend on its batch mates."""
    torch.manual_seed(0)
    model = srlab.create_model("adsrnet", scale=2).eval()
    a, b = torch.rand(1, 3, 12, 14), torch.rand(1, 3, 12, 14)
    with torch.no_grad():
        together = model(torch.cat([a, b]))
        assert torch.allclose(together[:1], model(a), atol=1e-5) and torch.allclose(together[1:], model(b), atol=1e-5)
