from pathlib import Path

import pytest
import torch

import srlab
from srlab.layers.focal_separable import (
    FocalSeparableAggregation,
    focal_kernel_map,
    focal_patch_size,
    focal_separable_aggregation,
)
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.complexity import count_macs, measure_macs
from srlab.models.detect import Detected, detect_model
from srlab.models.weights import Checkpoint

SCALES = (2, 3, 4)
# sum(p.numel()) of the official LAMNet class (zononhzy/LAMNet 5b73a79, basicsr/archs/lamnet_arch.py) built
# with its test options (options/test_LAMNet[_large]_SRx*.yml), counted by running it.
EXPECTED_PARAMS = {
    "lamnet": {2: 828_364, 3: 837_019, 4: 849_136},
    "lamnet_large": {2: 1_024_028, 3: 1_032_683, 4: 1_044_800},
}
# LSAMixer.generate_kernel_map_1d(13, [1, 2, 4], [4, 6, 7]) of the official code: (start, length) per tap.
OFFICIAL_MAP_13 = [(-8, 4), (-6, 2), (-4, 2), (-3, 1), (-2, 1), (-1, 1), (0, 1), (1, 1), (2, 1), (3, 1),
                   (4, 2), (6, 2), (8, 4)]
TINY = {"dim": 16, "num_groups": 1, "num_blocks": 1}


# --- the op against a per-pixel transcription of the CUDA kernels (fsa_im2col_cuda.cuh) -----------------
def _kernel_forward(x, kernel, kernel_map, groups, direction):
    """fsa_{vertical,horizontal}_im2col_kernel, one output element at a time."""
    b_, c_, h_, w_ = x.shape
    taps, group_channels = len(kernel_map), c_ // groups
    out = torch.zeros_like(x)
    for b in range(b_):
        for c in range(c_):
            g = c // group_channels
            for h in range(h_):
                for w in range(w_):
                    total = x.new_zeros(())
                    for k in range(taps):
                        start, length = kernel_map[k]
                        weight = kernel[b, g * taps + k, h, w]
                        val = x.new_zeros(())
                        step = 1 if start >= 0 else -1
                        for i in range(length):
                            offset = start + i * step
                            if direction == "vertical" and 0 <= h + offset < h_:
                                val = val + x[b, c, h + offset, w]
                            if direction == "horizontal" and 0 <= w + offset < w_:
                                val = val + x[b, c, h, w + offset]
                        total = total + val * weight / length
                    out[b, c, h, w] = total
    return out


def _kernel_backward(grad_out, x, kernel, kernel_map, groups, direction):
    """fsa_{vertical,horizontal}_col2im_kernel: the hand-written gradients (atomicAdd as +=)."""
    b_, c_, h_, w_ = x.shape
    taps, group_channels = len(kernel_map), c_ // groups
    grad_x, grad_kernel = torch.zeros_like(x), torch.zeros_like(kernel)
    for b in range(b_):
        for c in range(c_):
            g = c // group_channels
            for h in range(h_):
                for w in range(w_):
                    top = grad_out[b, c, h, w]
                    for k in range(taps):
                        start, length = kernel_map[k]
                        weight = kernel[b, g * taps + k, h, w]
                        val = x.new_zeros(())
                        step = 1 if start >= 0 else -1
                        for i in range(length):
                            offset = start + i * step
                            hh, ww = (h + offset, w) if direction == "vertical" else (h, w + offset)
                            if 0 <= hh < h_ and 0 <= ww < w_:
                                val = val + x[b, c, hh, ww]
                                grad_x[b, c, hh, ww] += weight * top / length
                        grad_kernel[b, g * taps + k, h, w] += val * top / length
    return grad_x, grad_kernel


SMALL_MAP = focal_kernel_map(5, (2, 3), (1, 2))  # [(-2, 2), (-1, 1), (0, 1), (1, 1), (2, 2)]


def _op_inputs(kernel_map, groups=2, channels=4, size=(5, 6), dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, *size, generator=generator, dtype=dtype)
    kernel = torch.randn(2, groups * len(kernel_map), *size, generator=generator, dtype=dtype)
    return x, kernel


def test_small_kernel_map_is_laid_out_as_the_official():
    assert SMALL_MAP == [(-2, 2), (-1, 1), (0, 1), (1, 1), (2, 2)]
    assert focal_kernel_map(13, (4, 6, 7), (1, 2, 4)) == OFFICIAL_MAP_13
    assert focal_patch_size(OFFICIAL_MAP_13) == 23 and focal_patch_size(SMALL_MAP) == 7


def test_kernel_map_rejects_locations_that_do_not_reach_the_last_tap():
    # the official defaults (kernel_size 11 with kernel_loc [3, 4, 5]) fail the same assertion there
    with pytest.raises(ValueError, match=r"kernel_loc to end at kernel_size // 2 \+ 1, got 11, \(3, 4, 5\)"):
        focal_kernel_map(11, (3, 4, 5), (1, 2, 4))


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
@pytest.mark.parametrize("kernel_map", [SMALL_MAP, OFFICIAL_MAP_13], ids=["k5", "k13"])
def test_op_computes_what_the_cuda_kernel_computes(direction, kernel_map):
    # 13 taps reach 11 pixels: a 5x6 input has every segment partly outside the image
    x, kernel = _op_inputs(kernel_map)
    expected = _kernel_forward(x, kernel, kernel_map, 2, direction)
    got = focal_separable_aggregation(x, kernel, kernel_map, 2, direction)
    assert (got - expected).abs().max() <= 1e-13
    # in float32 the sums run in the kernel's order
    got32 = focal_separable_aggregation(x.float(), kernel.float(), kernel_map, 2, direction)
    assert (got32 - _kernel_forward(x.float(), kernel.float(), kernel_map, 2, direction)).abs().max() <= 1e-6


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_op_gradients_are_the_cuda_backward_kernels(direction):
    x, kernel = _op_inputs(SMALL_MAP, size=(4, 5))
    x.requires_grad_(True)
    kernel.requires_grad_(True)
    out = focal_separable_aggregation(x, kernel, SMALL_MAP, 2, direction)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    out.backward(grad_out)
    grad_x, grad_kernel = _kernel_backward(grad_out, x.detach(), kernel.detach(), SMALL_MAP, 2, direction)
    assert (x.grad - grad_x).abs().max() <= 1e-12
    assert (kernel.grad - grad_kernel).abs().max() <= 1e-12


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_op_passes_gradcheck(direction):
    x, kernel = _op_inputs(SMALL_MAP, groups=1, channels=2, size=(3, 4))
    x.requires_grad_(True)
    kernel.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, k: focal_separable_aggregation(a, k, SMALL_MAP, 1, direction), (x, kernel)
    )


def test_op_rejects_a_kernel_of_the_wrong_shape():
    x, kernel = _op_inputs(SMALL_MAP)
    with pytest.raises(ValueError, match=r"expected \(2, 10, 5, 6\)"):
        focal_separable_aggregation(x, kernel[:, :9], SMALL_MAP, 2, "vertical")
    with pytest.raises(ValueError, match="direction must be one of horizontal, vertical, got 'diagonal'"):
        FocalSeparableAggregation(SMALL_MAP, 2, "diagonal")


# --- the network ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
@pytest.mark.parametrize("scale", SCALES)
def test_parameter_counts(name, scale):
    model = srlab.create_model(name, scale=scale)
    assert count_parameters(model) == paper_parameter_count(model) == EXPECTED_PARAMS[name][scale]


def test_parameter_count_by_hand():
    c, half, taps, heads, patch = 64, 32, 13, 4, 23
    conv = lambda cin, cout, k=1: cin * cout * k + cout  # noqa: E731
    mixer = (
        conv(c, c)  # proj_in
        + 2 * (half * patch + half + conv(half, heads * taps))  # h_kernel, v_kernel: depthwise + 1x1
        + conv(half, c // 4) + conv(c // 4, half)  # channel branch
        + conv(c, c)  # proj_out
    )
    ffn = conv(c, 2 * c) + 2 * c * 9 + 2 * c + conv(2 * c, c)
    norm_and_scales = 3 * c  # LayerNorm alpha, beta; residual alpha
    group = 6 * (mixer + ffn + 2 * norm_and_scales) + c
    for name, groups in (("lamnet", 4), ("lamnet_large", 5)):
        for scale in SCALES:
            total = conv(3, c, 9) + groups * group + conv(c, c, 9) + c + conv(c, 3 * scale * scale, 9)
            assert total == EXPECTED_PARAMS[name][scale]


def test_state_dict_names_are_the_official_ones():
    """The official listing of LAMNet(num_blocks=1, num_groups=1, ...): per block pair the LSAMixer's
    kernel_map buffer (int32, 13 x 2), then its convs; no keys for the parameter-free interaction modules."""
    model = srlab.create_model("lamnet", scale=2, args={"num_groups": 1, "num_blocks": 1})
    wb = ("weight", "bias")
    mixer = "deep_feature_extraction.0.mixers.0"
    ffn = "deep_feature_extraction.0.mixers.1"
    # a module's own parameters come before its children's
    expected = ["alpha"] + [f"shallow_feature_extraction.{p}" for p in wb] + ["deep_feature_extraction.0.alpha"]
    expected += [f"{mixer}.alpha", f"{mixer}.norm.alpha", f"{mixer}.norm.beta", f"{mixer}.fn.kernel_map"]
    expected += [f"{mixer}.fn.proj_in.{p}" for p in wb]
    expected += [f"{mixer}.fn.{k}.{i}.{p}" for k in ("h_kernel", "v_kernel") for i in (0, 1) for p in wb]
    expected += [f"{mixer}.fn.channel_branch.{i}.{p}" for i in (0, 2) for p in wb]
    expected += [f"{mixer}.fn.proj_out.{p}" for p in wb]
    expected += [f"{ffn}.alpha", f"{ffn}.norm.alpha", f"{ffn}.norm.beta"]
    expected += [f"{ffn}.fn.{conv}.{p}" for conv in ("project_in", "dwconv", "project_out") for p in wb]
    expected += [f"deep_feature_extraction.1.{p}" for p in wb] + [f"upsample.0.{p}" for p in wb]
    state = model.state_dict()
    assert list(state) == expected
    assert state[f"{mixer}.fn.kernel_map"].dtype == torch.int32
    assert state[f"{mixer}.fn.kernel_map"].tolist() == [list(entry) for entry in OFFICIAL_MAP_13]
    assert state[f"{mixer}.fn.h_kernel.0.weight"].shape == (32, 1, 1, 23)
    assert state[f"{mixer}.fn.v_kernel.0.weight"].shape == (32, 1, 23, 1)
    assert state[f"{mixer}.fn.h_kernel.1.weight"].shape == (52, 32, 1, 1)


def test_initialisation_is_truncated_normal_with_zero_biases():
    torch.manual_seed(0)
    model = srlab.create_model("lamnet", scale=2)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Conv2d)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_with_the_deep_branch_silenced_it_is_the_upsampling_conv_on_the_shallow_features():
    torch.manual_seed(0)
    model = srlab.create_model("lamnet", scale=2, args=TINY).double().eval()
    x = torch.rand(1, 3, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        model.deep_feature_extraction[0].alpha.zero_()
        model.deep_feature_extraction[1].weight.zero_()
        mean = model.mean  # DIV2K's, as float32 values
        assert mean.flatten().tolist() == torch.tensor([0.4488, 0.4371, 0.4040]).double().tolist()
        expected = model.upsample(model.shallow_feature_extraction(x - mean)) + mean
        assert (model(x) - expected).abs().max() <= 1e-12


def test_macs_are_the_convolutions_the_op_taps_and_the_exchange_products():
    h, w, scale = 10, 12, 2
    c, half, taps, heads, patch = 16, 8, 13, 4, 23
    per_pixel_mixer = (
        c * c + 2 * (half * patch + half * heads * taps) + half * (c // 4) * 2 + c * c  # convolutions
        + 2 * half * taps  # the two focal separable aggregations: one multiply-add per tap
        + 2 * half  # the exchange module's two products
    )
    per_pixel_ffn = c * 2 * c + 2 * c * 9 + 2 * c * c
    per_pixel = 3 * c * 9 + per_pixel_mixer + per_pixel_ffn + c * c * 9 + c * 3 * scale * scale * 9
    model = srlab.create_model("lamnet", scale=scale, args=TINY)
    assert count_macs(model, (h, w)) == per_pixel * h * w


def test_cost_depends_on_the_input_size_only():
    torch.manual_seed(0)
    model = srlab.create_model("lamnet", scale=2, args=TINY).eval()
    with torch.no_grad():
        counts = {measure_macs(model, lambda x=x: model(x))[1] for x in (torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))}
    assert counts == {count_macs(model, (8, 8))}


@pytest.mark.slow  # ~6 s on an idle core: detection builds every candidate architecture
def test_hyper_parameters_are_read_back_from_real_weights():
    """The focal layout comes from the kernel map's values (tests/models/test_detect.py reads meta-device
    state dicts, which hold shapes only). A changed group count fits lamnet and lamnet_large alike."""
    cases = [
        {"dim": 32, "num_blocks": 2, "num_head": 2, "expansion_factor": 2.0},
        {"kernel_size": 9, "kernel_loc": (3, 4, 5), "kernel_stride": (1, 2, 3)},
    ]
    for args in cases:
        model = srlab.create_model("lamnet", scale=3, args={**args, "dim": 16})
        found = detect_model(Checkpoint(model.state_dict(), None, None, {}, Path("w.pth")))
        assert found == Detected("lamnet", 3, {**args, "dim": 16}, "train")
    large = srlab.create_model("lamnet_large", scale=2, args={"dim": 16})
    assert detect_model(Checkpoint(large.state_dict(), None, None, {}, Path("w.pth"))) == Detected(
        "lamnet_large", 2, {"dim": 16}, "train"
    )
