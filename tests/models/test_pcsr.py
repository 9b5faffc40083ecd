"""PCSR (Jeong et al., ECCV 2024): official keys and released weights, query geometry, the k knob, the
refinement step, routing statistics and the MACs they spend."""

import pytest
import torch
import torch.nn.functional as F

import srlab
from srlab.data.datasets import discover_pairs, load_pair
from srlab.inference.evaluate import evaluate_folder
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.complexity import count_macs, lr_size_for_720p, macs_720p
from srlab.layers.mean_shift import DIV2K_RGB_MEAN
from srlab.adaptive import build_adaptive
from srlab.errors import SrlabError
from srlab.models.pcsr import _official_flops, _refine, cluster_heavy, hr_queries, query_vectors
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared, needs_weights

WEIGHTS = {n: OFFICIAL_WEIGHTS / "pcsr" / f"{n}-pcsr-phase1_iter_last.pth" for n in ("carn", "fsrcnn")}
SET5 = BENCHMARKS / "Set5"

# Measured here (srlab eval, Y channel, border 4, whole images; CPU): default k = 0 with refinement,
# and every pixel on the heavy path. The paper tabulates Test2K/4K/8K only (no Set5 row).
SET5_PSNR_Y = {
    ("carn", "classifier"): 31.8157, ("carn", "heavy"): 31.8623,
    ("fsrcnn", "classifier"): 30.8932, ("fsrcnn", "heavy"): 30.9310,
    # the official adaptive_cluster decision (its 2-means matched fast_pytorch_kmeans 0.2.2 on every Set5
    # and Set14 image of both networks when srlab's was written)
    ("carn", "cluster"): 31.7838, ("fsrcnn", "cluster"): 30.8506,
}
# Fraction of Set5's HR pixels the classifier sends to the heavy sampler at k = 0.
SET5_HEAVY_FRACTION = {"carn": 0.4084, "fsrcnn": 0.4936}


def _released(name: str, **args) -> torch.nn.Module:
    return srlab.create_model(f"pcsr_{name}", scale=4, checkpoint=WEIGHTS[name], args=args or None).eval()


def _set5_lr() -> list[torch.Tensor]:
    return [load_pair(pair, 4)[0].unsqueeze(0) for pair in discover_pairs(SET5, 4).pairs]


def test_parameter_counts():
    # All parameters, BatchNorm affine ones included: the official log's "168.97K" (compute_num_params).
    carn = srlab.create_model("pcsr_carn", scale=4)
    assert count_parameters(carn) == paper_parameter_count(carn) == 168_970
    assert count_parameters(srlab.create_model("pcsr_fsrcnn", scale=4)) == 24_502


@needs_weights
@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_released_weights_load_strictly(name):
    sv = torch.load(WEIGHTS[name], map_location="cpu", weights_only=True)
    model = _released(name)
    assert list(model.state_dict()) == list(sv["model"]["sd"])
    assert all(torch.equal(v, sv["model"]["sd"][k]) for k, v in model.state_dict().items())


def test_queries_are_the_official_liif_inputs():
    # x4: every HR pixel reads the feature of LR pixel (Y // 4, X // 4); its offset from that LR centre
    # is (2j - 3) / 4 LR pixels (j = Y % 4) and its cell is 2 / 4 LR pixels.
    h, w = 3, 5
    feat = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    coord, cell = hr_queries((4 * h, 4 * w), like=feat)
    query = query_vectors(feat, coord, cell)[0].view(4 * h, 4 * w, 5)
    ys, xs = torch.meshgrid(torch.arange(4 * h), torch.arange(4 * w), indexing="ij")
    assert torch.equal(query[..., 0], (ys // 4 * w + xs // 4).float())
    assert torch.allclose(query[..., 1], (2 * (ys % 4) - 3) / 4, atol=1e-6)
    assert torch.allclose(query[..., 2], (2 * (xs % 4) - 3) / 4, atol=1e-6)
    assert torch.allclose(query[..., 3:], torch.full((4 * h, 4 * w, 2), 0.5))


def test_refinement_averages_light_pixels_next_to_a_heavy_one():
    pred = torch.arange(36, dtype=torch.float64).view(1, 1, 6, 6) ** 2
    heavy = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    heavy[0, 0, 2, 2] = heavy[0, 0, 0, 5] = True  # one inside, one in the corner
    out, refined = _refine(pred, heavy)
    expected = torch.zeros_like(heavy)
    expected[0, 0, 1:4, 1:4] = True
    expected[0, 0, 2, 2] = False  # the heavy pixel itself stays
    expected[0, 0, 1, 4] = True  # the corner's only neighbour off the HR border
    assert torch.equal(refined, expected)
    padded = torch.nn.functional.pad(pred, (1, 1, 1, 1), mode="replicate")
    box = padded.unfold(2, 3, 1).unfold(3, 3, 1).mean(dim=(-1, -2))
    assert torch.allclose(out[refined], box[refined]) and torch.equal(out[~refined], pred[~refined])


def test_relative_costs_follow_the_official_flops_convention():
    model = srlab.create_model("pcsr_carn", scale=4)
    light, heavy = model.relative_costs()
    backbone = _official_flops(model.encoder.to("meta"), torch.empty(1, 3, 16, 16, device="meta"))
    mlp = lambda dims: sum(a * b for a, b in zip(dims, dims[1:]))  # noqa: E731
    light_flops = backbone + 2 * 64 * 64 * mlp([56, 20, 20, 20, 3])
    heavy_flops = backbone + 2 * 64 * 64 * mlp([56, 74, 74, 74, 74, 3])
    assert light == pytest.approx(light_flops / (light_flops + heavy_flops), rel=1e-12)
    assert heavy == pytest.approx(heavy_flops / (light_flops + heavy_flops), rel=1e-12)


def test_static_mac_count_is_the_all_heavy_bound():
    # Without pixel values (meta device) nothing can be routed: `srlab models` shows the upper bound.
    model = srlab.create_model("pcsr_carn", scale=4)
    h, w = lr_size_for_720p(4)
    assert macs_720p(model) == model.macs_spent((h, w), heavy_pixels=h * w * 16)
    per_pixel = {"classifier": 56 * 10 + 10 * 10 + 10 * 2, "heavy": 56 * 74 + 3 * 74 * 74 + 74 * 3}
    assert macs_720p(model) == count_macs(model.encoder, (h, w)) + h * w * 16 * sum(per_pixel.values())


@pytest.mark.parametrize("name", ["pcsr_carn", "pcsr_fsrcnn"])
def test_forward_is_deterministic_and_chunking_changes_nothing(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4).eval()
    chunked = srlab.create_model(name, scale=4, args={"pixel_chunk": 97}).eval()
    chunked.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 11, 13)
    with torch.no_grad():
        first, routing = model.upscale_routed(x)
        assert torch.equal(model(x), first)
        again, routing_chunked = chunked.upscale_routed(x)
    # The same routes; the MLPs run on row blocks of other sizes, which some CPUs' matrix kernels round
    # differently (bit-equal on an Intel Xeon with AMX, 1.2e-7 on an AMD Zen 4).
    assert torch.equal(routing.heavy, routing_chunked.heavy)
    torch.testing.assert_close(again, first, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "mean"), [("pcsr_carn", DIV2K_RGB_MEAN), ("pcsr_fsrcnn", (0.0, 0.0, 0.0))])
def test_heavy_routing_is_the_backbone_plus_heavy_sampler(name, mean):
    # CARN runs on the image minus the DIV2K mean and adds it back; FSRCNN runs on [0, 1] as it is.
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4, args={"routing": "heavy"}).eval()
    x = torch.rand(1, 3, 9, 10)
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    with torch.no_grad():
        sr, routing = model.upscale_routed(x)
        feat = model.encoder(x - mean)
        coord, cell = hr_queries((36, 40), like=feat)
        query = query_vectors(feat, coord, cell)
        base = torch.nn.functional.grid_sample(
            x - mean, coord.flip(-1).view(1, 1, -1, 2), mode="bilinear", padding_mode="border", align_corners=False
        )[:, :, 0, :].transpose(1, 2)
        expected = (base + model.heavy_sampler(query)).transpose(1, 2).reshape(1, 3, 36, 40) + mean
    assert routing.heavy_fraction == 1.0 and not routing.refined.any()
    assert torch.equal(sr, expected)


def test_the_official_checkpoint_layout_is_read(tmp_path):
    # {'model': {'name', 'args', 'sd'}, 'optimizer', ...}, as the official train_pcsr.py saves it.
    torch.manual_seed(0)
    model = srlab.create_model("pcsr_fsrcnn", scale=4).eval()
    path = tmp_path / "iter_last.pth"
    sd = model.state_dict()
    torch.save({"model": {"name": "pcsr-phase1", "args": {}, "sd": sd}, "optimizer": {"state": {}}, "iter": 1}, path)
    loaded = srlab.create_model("pcsr_fsrcnn", scale=4, checkpoint=path)
    assert all(torch.equal(v, sd[k]) for k, v in loaded.state_dict().items())


@needs_weights
@needs_shared(SET5)
@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_larger_k_sends_fewer_pixels_heavy_and_spends_fewer_macs(name):
    model = _released(name)
    lr = _set5_lr()[2]  # butterfly: edges and flat areas
    fractions, macs = [], []
    with torch.no_grad():
        for k in (-1.0, 0.0, 0.5, 1.0, 2.0):
            _, routing = model.upscale_routed(lr, k=k)
            fractions.append(routing.heavy_fraction)
            macs.append(model.macs_spent(tuple(lr.shape[-2:]), int(routing.heavy.sum())))
    assert fractions == sorted(fractions, reverse=True) and fractions[0] > fractions[-1]
    assert macs == sorted(macs, reverse=True) and macs[0] > macs[-1]


@needs_weights
@needs_shared(SET5)
@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_set5_heavy_fraction_at_the_default_knob(name):
    model = _released(name)
    heavy = pixels = 0
    with torch.no_grad():
        for lr in _set5_lr():
            _, routing = model.upscale_routed(lr)
            heavy, pixels = heavy + int(routing.heavy.sum()), pixels + routing.heavy.numel()
    assert heavy / pixels == pytest.approx(SET5_HEAVY_FRACTION[name], abs=5e-4)


@needs_weights
@needs_shared(SET5)
@pytest.mark.parametrize(("name", "routing"), [
    key if key == ("carn", "classifier") else pytest.param(*key, marks=pytest.mark.slow) for key in sorted(SET5_PSNR_Y)
])
def test_set5_psnr_of_the_released_weights(name, routing):
    result = evaluate_folder(_released(name, routing=routing), discover_pairs(SET5, 4), progress=False)
    assert result.psnr_y == pytest.approx(SET5_PSNR_Y[(name, routing)], abs=2e-3)


def test_cluster_decision_is_the_official_two_means_split():
    # Normalised to [0, 1] (already); step 1 moves the given centroid 0.5 to the mean 0.44 and adds one at 0;
    # step 2 splits at 0.22: {0.9, 1.0} and {0, 0.1, 0.2}; step 3 does not move: stop. The cluster holding the
    # smallest value is light.
    p = torch.tensor([0.2, 1.0, 0.0, 0.9, 0.1])
    assert cluster_heavy(p).tolist() == [False, True, False, True, False]
    # scaled and shifted probabilities split the same way (min-max normalisation)
    assert cluster_heavy(0.3 + 0.5 * p).tolist() == [False, True, False, True, False]
    # mean 0.5: step 2 puts 0.5 with the ones (centroids 0.5 and 0), step 3 keeps it there (0.83 and 0)
    assert cluster_heavy(torch.tensor([0.0, 0.0, 1.0, 1.0, 0.5])).tolist() == [False, False, True, True, True]


def test_cluster_decision_of_a_flat_image_sends_every_pixel_light():
    assert not cluster_heavy(torch.full((7,), 0.4)).any()


def test_cluster_routing_has_no_knob():
    model = srlab.create_model("pcsr_fsrcnn", scale=4, args={"routing": "cluster"}).eval()
    method = build_adaptive("pcsr", model)
    assert method.knob is None and method.knob_name is None
    _, stats = method.upscale(torch.rand(1, 3, 12, 10))
    assert stats.units == 48 * 40
    with pytest.raises(SrlabError, match="routing=cluster decides by clustering and has no knob: drop --knob"):
        build_adaptive("pcsr", model, knob=0.5)


def _official_patch_test(model: torch.nn.Module, lr: torch.Tensor, k: float) -> torch.Tensor:
    """The official test_pcsr.py default, written independently: crop, unfold 32x32 at stride 28, 96
    patches a forward, fold and divide by the fold of ones."""
    h, w = lr.shape[-2:]
    crop_h, crop_w = ((h - 32 + 28) // 28 - 1) * 28 + 32, ((w - 32 + 28) // 28 - 1) * 28 + 32
    lr = lr[..., :crop_h, :crop_w]
    patches = F.unfold(lr, 32, stride=28).transpose(0, 2).reshape(-1, 3, 32, 32)
    with torch.no_grad():
        outs = torch.cat([model.upscale_routed(b, k=k)[0] for b in patches.split(96)])
    cols = outs.flatten(1).unsqueeze(-1).transpose(0, 2)
    size = (crop_h * 4, crop_w * 4)
    return F.fold(cols, size, 128, stride=112) / F.fold(torch.ones_like(cols), size, 128, stride=112)


@pytest.mark.parametrize(("routing", "knob"), [("classifier", 0.5), ("cluster", None)])
def test_evaluation_runs_the_official_patch_test(routing, knob):
    model = srlab.create_model("pcsr_fsrcnn", scale=4, args={"routing": routing}).eval()
    lr = torch.rand(1, 3, 75, 90, generator=torch.Generator().manual_seed(3))
    method = build_adaptive("pcsr", model, knob=knob)
    sr, stats = method.upscale(lr, whole_image=False)
    expected = _official_patch_test(model, lr, 0.5 if knob is None else knob)
    assert sr.shape == expected.shape == (1, 3, 240, 352) and stats.out_hw == (240, 352)
    assert torch.allclose(sr, expected, atol=1e-6)
    assert stats.grid_hw == (2, 3) and stats.units == 6 * 128 * 128
    whole, _ = method.upscale(lr, whole_image=True)  # upscaling: one forward of the whole image
    assert whole.shape == (1, 3, 300, 360) and torch.equal(whole, model.upscale_routed(lr, k=knob)[0])
