import pytest
import torch

import srlab
import srlab.models.smsr  # noqa: F401  (registers the models)
from srlab.errors import SrlabError
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.smsr import SMB, mask_statistics
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared

WEIGHTS = OFFICIAL_WEIGHTS / "smsr" / "model_1000.pt"
needs_weights_and_benchmarks = needs_shared(OFFICIAL_WEIGHTS, BENCHMARKS)

# Paper (SMSR-fig): 985K / 993K / 1006K. That convention leaves out the 24 frozen MeanShift values and
# the 5 x 64 x 4 x 2 = 2,560 channel-mask logits (`ch_mask`); counting the logits gives 987K at x2.
PAPER_PARAMS = {2: (984_746, 985), 3: (993_401, 993), 4: (1_005_518, 1006)}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_paper_parameter_count(scale):
    model = srlab.create_model("smsr", scale=scale)
    exact, published_k = PAPER_PARAMS[scale]
    assert paper_parameter_count(model) == exact
    assert round(exact / 1000) == published_k
    ch_mask = sum(p.numel() for n, p in model.named_parameters() if n.endswith("ch_mask"))
    assert ch_mask == 2_560
    # All tensors: the x2 checkpoint holds 987,330 elements (paper-results.md §2); MeanShift is frozen.
    assert count_parameters(model) == exact + ch_mask + 24
    assert count_parameters(model, trainable_only=True) == exact + ch_mask


@needs_shared(WEIGHTS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_state_dict_matches_the_official_checkpoint(scale):
    # official-state-dicts.json has no SMSR entry; the released x2 checkpoint is the oracle. x3/x4
    # differ from it only in the tail conv (3 * s^2 output channels).
    official = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    expected = {k: tuple(v.shape) for k, v in official.items()}
    expected["tail.0.weight"] = (3 * scale * scale, 64, 3, 3)
    expected["tail.0.bias"] = (3 * scale * scale,)
    ours = {k: tuple(v.shape) for k, v in srlab.create_model("smsr", scale=scale).state_dict().items()}
    assert list(ours) == list(expected)
    assert ours == expected
    assert sum(v.numel() for v in official.values()) == 987_330


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_forward_shapes_at_odd_sizes(scale):
    torch.manual_seed(0)
    model = srlab.create_model("smsr", scale=scale)
    x = torch.rand(2, 3, 17, 23)
    before = x.clone()
    model.train()
    y, _ = model(x)
    assert y.shape == (2, 3, 17 * scale, 23 * scale) and torch.isfinite(y).all()
    model.eval()
    with torch.no_grad():
        for sparse in (True, False):
            model.sparse_inference = sparse
            y = model(x)
            assert y.shape == (2, 3, 17 * scale, 23 * scale) and torch.isfinite(y).all()
        assert model(torch.rand(1, 3, 1, 1)).shape == (1, 3, scale, scale)
    assert torch.equal(x, before)


def test_backward_reaches_every_trainable_parameter():
    torch.manual_seed(0)
    model = srlab.create_model("smsr", scale=2).train()
    model.set_tau(0.5)
    loss = model(torch.rand(1, 3, 12, 16))[0].mean()
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
        else:
            assert "mean" in name  # only the frozen MeanShift
    assert all(m.tau == 0.5 and m.body.tau == 0.5 for m in model.body)


def test_training_sparsity_term_and_gumbel_noise():
    torch.manual_seed(0)
    model = srlab.create_model("smsr", scale=2).train()
    x = torch.rand(2, 3, 8, 10)
    y1, aux = model(x)
    sparsity = aux["sparsity"]
    # One map per SMM and sample: (5 * B, 64 channels * 4 layers, H, W), fractions of computed outputs.
    assert sparsity.shape == (5 * 2, 64 * 4, 8, 10)
    assert 0 <= sparsity.min() and sparsity.max() <= 1 + 1e-6
    sparsity.mean().backward(retain_graph=True)
    assert model.body[0].body.ch_mask.grad is not None and model.body[0].spa_mask[0].weight.grad is not None
    assert not torch.equal(y1, model(x)[0])  # Gumbel noise: masks are sampled
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # hard masks, a plain tensor


def test_temperature_follows_the_official_schedule_down_to_its_floor():
    model = srlab.create_model("smsr", scale=2, args={"n_feats": 16})
    for epoch, tau in ((1, 1.0), (2, 1 - 1 / 500), (251, 0.5), (301, 0.4), (1000, 0.4)):
        model.set_training_epoch(epoch)
        assert all(m.tau == pytest.approx(tau) and m.body.tau == pytest.approx(tau) for m in model.body), epoch
    # tau_floor 1 keeps tau at 1, as the released model was trained (its trainer never reached the masks)
    fixed = srlab.create_model("smsr", scale=2, args={"n_feats": 16, "tau_floor": 1.0})
    fixed.set_training_epoch(400)
    assert all(m.tau == 1.0 for m in fixed.body)
    with pytest.raises(SrlabError, match=r"tau_floor \(the lowest Gumbel-softmax temperature\) must be in \(0, 1\]"):
        srlab.create_model("smsr", scale=2, args={"tau_floor": 0.0})


def _random_block(seed, *, dense_fraction=0.5):
    torch.manual_seed(seed)
    block = SMB(8, 8, n_layers=4).double()
    with torch.no_grad():
        block.ch_mask.copy_(torch.randn_like(block.ch_mask))
        if dense_fraction in (0.0, 1.0):
            block.ch_mask[..., 0] = 1.0 if dense_fraction == 1.0 else -1.0
            block.ch_mask[..., 1] = -block.ch_mask[..., 0]
    return block


@pytest.mark.parametrize("spatial", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("dense_fraction", [0.0, 0.5, 1.0])
def test_sparse_block_equals_dense_hard_mask_computation(spatial, dense_fraction):
    block = _random_block(1, dense_fraction=dense_fraction)
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    spa = (torch.rand(2, 1, 9, 11) < spatial).double()
    if 0 < spatial < 1:
        assert 0 < spa.mean() < 1
    with torch.no_grad():
        dense = block.forward_masked(x, spa, block.hard_channel_mask())
        sparse = block.forward_sparse(x, spa)
    assert torch.allclose(sparse, dense, atol=1e-10, rtol=0)


def test_sparse_model_equals_dense_model_random_weights():
    torch.manual_seed(2)
    model = srlab.create_model("smsr", scale=3).double().eval()
    with torch.no_grad():
        for m in model.body:
            m.body.ch_mask.copy_(torch.randn_like(m.body.ch_mask))
            m.spa_mask[5].bias.zero_()  # balanced spatial classes
    x = torch.rand(1, 3, 15, 20, dtype=torch.float64)
    with torch.no_grad():
        sparse = model(x)
        stats = mask_statistics(model)
        model.sparse_inference = False
        dense = model(x)
    assert 0.05 < stats["spatial"] < 0.95 and 0.05 < stats["sparse_channels"] < 0.95
    assert torch.allclose(sparse, dense, atol=1e-10, rtol=0)


# --- official weights -------------------------------------------------------------------------------


def _official():
    return srlab.create_model("smsr", scale=2, checkpoint=WEIGHTS)


@needs_weights_and_benchmarks
def test_official_sparse_path_equals_dense_path_on_a_photo():
    from srlab.data.datasets import discover_pairs, load_pair

    pair = next(p for p in discover_pairs(BENCHMARKS / "Set5", 2).pairs if p.name == "butterfly")
    lr, _ = load_pair(pair, 2)
    model = _official()
    assert not model.training and model.sparse_inference
    with torch.no_grad():
        sparse = model(lr[None])
        stats = mask_statistics(model)
        model.sparse_inference = False
        dense = model(lr[None])
    assert (sparse - dense).abs().max() <= 1e-5
    # Content-adaptive compute on butterfly (128x128 LR, the busiest Set5 image): 62.5% of the positions
    # are marked, 92.0% of the SMB conv channels are sparse (a property of the weights).
    assert stats["spatial"] == pytest.approx(0.6254, abs=2e-3)
    assert stats["sparse_channels"] == pytest.approx(0.91953, abs=1e-4)
    assert stats["computed"] == pytest.approx(0.6578, abs=2e-3)
    assert stats["macs"] == pytest.approx(MACS_BUTTERFLY, abs=2e-3)


# Share of the SMB 3x3-conv multiply-adds the sparse path computes on butterfly (Set5 mean: 0.405).
MACS_BUTTERFLY = 0.6509


def _evaluate(dataset, *, even_crop=False):
    from srlab.data.datasets import discover_pairs, load_pair
    from srlab.inference.evaluate import evaluate_folder, evaluate_images

    model = _official()
    model.sparse_inference = False  # equal to the sparse path (tested above) and faster on a CPU
    folder = discover_pairs(BENCHMARKS / dataset, 2)
    if not even_crop:
        return evaluate_folder(model, folder)

    def cropped():
        # The official test: LR cropped to even size, HR to twice that (srlab pads instead).
        for pair in folder.pairs:
            lr, hr = load_pair(pair, 2)
            h, w = lr.shape[-2] // 2 * 2, lr.shape[-1] // 2 * 2
            yield pair.name, lr[:, :h, :w], hr[:, : 2 * h, : 2 * w]

    means, _ = evaluate_images(model, cropped())
    return means["psnr_y"], means["ssim_y"]


@pytest.mark.slow
@needs_weights_and_benchmarks
def test_official_weights_reproduce_published_set5():
    # Published (paper-results.md §1, SMSR x2): 38.00 / 0.9601; measured 37.9933 / 0.96023.
    # Every Set5 x2 LR image is even-sized, so padding and the official even crop agree here.
    result = _evaluate("Set5")
    assert abs(result.psnr_y - 38.00) <= 0.01
    assert abs(result.ssim_y - 0.9601) <= 0.0005


@needs_weights_and_benchmarks
@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="Set14 x2 measures 33.6279 dB (33.6266 with the official even crop) vs published 33.64: "
    "0.012 dB short; SSIM 0.91789 matches 0.9179",
)
def test_official_weights_reproduce_published_set14_psnr():
    result = _evaluate("Set14")
    assert abs(result.psnr_y - 33.64) <= 0.01


@needs_weights_and_benchmarks
@pytest.mark.slow
def test_official_weights_set14_measured():
    result = _evaluate("Set14")
    assert abs(result.psnr_y - 33.6279) <= 0.001
    assert abs(result.ssim_y - 0.9179) <= 0.0005  # published SSIM
    assert abs(result.psnr_y - 33.64) <= 0.015  # published PSNR, 0.012 dB short (see the xfail above)
    # Three Set14 x2 LR images have an odd side (comic, flowers, zebra); the official even crop scores
    # 33.6266 / 0.91790, i.e. the protocol difference does not explain the gap.
    psnr, ssim = _evaluate("Set14", even_crop=True)
    assert abs(psnr - 33.6266) <= 0.001 and abs(ssim - 0.9179) <= 0.0005


@pytest.mark.parametrize(("scale", "dense_gmacs"), [(2, 224.1), (4, 57.2)])
def test_mac_count_is_the_papers_dense_figure(scale, dense_gmacs):
    # SMSR's table: (224.1) 131.6 / (57.2) 41.6 G at x2 / x4, dense in brackets; without data (meta device)
    # the masks are unknown, so srlab counts the dense network. Training mode does not change the count.
    from srlab.models.complexity import macs_720p

    model = srlab.create_model("smsr", scale=scale)
    assert round(macs_720p(model) / 1e9, 1) == dense_gmacs
    assert model.training  # counting leaves the model as it was


def _official_training_block(block, x, spa, ch):
    """The official SMB training forward (each layer's input gated by that layer's own channel mask),
    written out from its formula."""
    outs, fea = [], x
    for i, conv in enumerate(block.body):
        dense, sparse = ch[:, :, i : i + 1, :1], ch[:, :, i : i + 1, 1:]
        if i == 0:
            fea = conv(fea)
            fea = fea * sparse * spa + fea * dense
        else:
            fea_d, fea_s = conv(fea * dense), conv(fea * sparse)
            fea = fea_d * sparse * spa + fea_d * dense + fea_s * sparse * spa + fea_s * dense * spa
        fea = torch.relu(fea)
        outs.append(fea)
    return block.collect(torch.cat(outs, 1))


def test_official_training_gating_is_the_official_training_forward():
    block = _random_block(2)
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    spa = torch.rand(2, 1, 9, 11, dtype=torch.float64)
    ch = torch.softmax(block.ch_mask, dim=3)
    with torch.no_grad():
        official = block.forward_masked(x, spa, ch, own_mask_gating=True)
        consistent = block.forward_masked(x, spa, ch)
        assert torch.allclose(official, _official_training_block(block, x, spa, ch), atol=1e-12, rtol=0)
    assert (official - consistent).abs().max() > 1e-3  # the two gatings train different networks


def test_training_gating_changes_training_only():
    models = {g: srlab.create_model("smsr", scale=2, args={"training_gating": g}) for g in ("consistent", "official")}
    models["official"].load_state_dict(models["consistent"].state_dict())
    x = torch.rand(1, 3, 12, 10)
    outs = {}
    for gating, model in models.items():
        torch.manual_seed(0)  # the same Gumbel draws
        outs[gating] = model.train()(x)[0]
    assert (outs["official"] - outs["consistent"]).abs().max() > 1e-6
    with torch.no_grad():
        assert torch.equal(models["official"].eval()(x), models["consistent"].eval()(x))
    with pytest.raises(SrlabError, match="training_gating must be one of consistent, official, got 'other'"):
        srlab.create_model("smsr", scale=2, args={"training_gating": "other"})
