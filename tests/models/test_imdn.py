"""IMDN (Hui et al., ACM MM 2019): parameters, official key names, shapes, and the official weights."""


import pytest
import torch

import srlab
import srlab.models.imdn  # noqa: F401  (registers the models)
from srlab.data.datasets import discover_pairs
from srlab.inference.evaluate import evaluate_folder
from srlab.models import count_parameters
from srlab.layers import ContrastChannelAttention
from srlab.models.imdn import IMDB
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_reference, needs_weights, official_state_dicts

WEIGHTS = OFFICIAL_WEIGHTS / "imdn"

# Paper (IMDN-fig / SwinIR-light): 694K / 703K / 715K; exact counts = the official model and checkpoints.
EXACT_PARAMS = {2: 694_404, 3: 703_059, 4: 715_176}
PAPER_PARAMS_K = {2: 694, 3: 703, 4: 715}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_count_matches_the_paper(scale):
    n = count_parameters(srlab.create_model("imdn", scale=scale))
    assert n == EXACT_PARAMS[scale]
    assert round(n / 1000) == PAPER_PARAMS_K[scale]


@needs_reference
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_state_dict_matches_the_official_keys_and_shapes(scale):
    official = official_state_dicts()[f"imdn_x{scale}"]
    expected = {key: list(shape) for key, shape, *_ in official["state_dict"]}
    ours = {key: list(t.shape) for key, t in srlab.create_model("imdn", scale=scale).state_dict().items()}
    assert list(ours) == list(expected)  # same keys, same order
    assert ours == expected
    assert official["param_count"] == EXACT_PARAMS[scale]


def test_backward_reaches_the_parameters():
    torch.manual_seed(0)
    model = srlab.create_model("imdn", scale=2)
    x = torch.rand(2, 3, 12, 14)
    model(x).abs().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert model.fea_conv.weight.grad.abs().sum() > 0
    assert model.IMDB1.cca.conv_du[0].weight.grad.abs().sum() > 0


def test_cca_uses_channel_standard_deviation_plus_mean():
    cca = ContrastChannelAttention(16, reduction=4)
    x = torch.rand(2, 16, 5, 7)
    stats = x.std(dim=(2, 3), unbiased=False, keepdim=True) + x.mean(dim=(2, 3), keepdim=True)
    with torch.no_grad():
        assert torch.allclose(cca(x), x * cca.conv_du(stats), atol=1e-6)


def test_block_is_residual_and_distils_a_quarter():
    block = IMDB(64)
    assert (block.distilled, block.remaining) == (16, 48)
    for p in block.c5.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 64, 6, 6)
    with torch.no_grad():
        assert torch.equal(block(x), x)


# Published (IMDN paper, MATLAB protocol) PSNR / SSIM on the Y channel.
PUBLISHED = {
    (2, "Set5"): (38.00, 0.9605),
    (3, "Set5"): (34.36, 0.9270),
    (4, "Set5"): (32.21, 0.8948),
    (4, "Set14"): (28.58, 0.7811),
}


@needs_weights
@pytest.mark.parametrize(("scale", "dataset"), [
    pytest.param(*key, marks=pytest.mark.slow) if key[1] == "Set14" else key for key in sorted(PUBLISHED)
])
def test_official_weights_reproduce_the_paper(scale, dataset):
    # Measured: x2 Set5 37.9966/0.96049, x3 Set5 34.3624/0.92698, x4 Set5 32.2114/0.89478,
    # x4 Set14 28.5869/0.78111.
    model = srlab.create_model("imdn", scale=scale, checkpoint=WEIGHTS / f"IMDN_x{scale}.pth")  # `module.` keys
    result = evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, scale))
    psnr, ssim = PUBLISHED[(scale, dataset)]
    assert result.psnr_y == pytest.approx(psnr, abs=0.01)
    assert result.ssim_y == pytest.approx(ssim, abs=0.0005)
