"""Reduced precision with float32 islands (srlab.inference.precision.to_reduced_precision): the modules a
model's ``ModelInfo.float32_modules`` names compute in float32 inside a bfloat16/float16 network."""

import copy
import dataclasses
from fnmatch import fnmatchcase

import pytest
import torch

from srlab import create_model, deploy
from srlab.models.registry import list_models, model_info
from srlab.inference.precision import float32_module_names, to_reduced_precision

WITH_FLOAT32_MODULES = [name for name in list_models() if model_info(name).float32_modules]


def test_span_declares_float32_modules():
    assert {"span", "span_ch28"} <= set(WITH_FLOAT32_MODULES)


@pytest.mark.parametrize("name", WITH_FLOAT32_MODULES)
def test_every_float32_pattern_names_a_module_in_both_forms(name):
    """A pattern that names nothing (a renamed module, a typo) would silently run in 16 bits."""
    scale = model_info(name).scales[-1]
    model = create_model(name, scale=scale).eval()
    for form in (model, deploy(model)):
        names = [n for n, _ in form.named_modules()]
        for pattern in model_info(name).float32_modules:
            assert any(fnmatchcase(n, pattern) for n in names), (name, pattern)


def _dtypes_seen(model, x, names):
    seen = {}

    def record(name):
        def hook(module, args, out):
            first = out[0] if isinstance(out, tuple) else out  # SPAB: (block output, first conv's output)
            seen.setdefault(name, (args[0].dtype, first.dtype))

        return hook

    handles = [model.get_submodule(n).register_forward_hook(record(n)) for n in names]
    with torch.inference_mode():
        out = model(x)
    for handle in handles:
        handle.remove()
    return seen, out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_span_output_convolution_stays_float32(dtype):
    torch.manual_seed(0)
    model = deploy(create_model("span_ch28", scale=4).eval())
    mixed = to_reduced_precision(copy.deepcopy(model), dtype)
    assert float32_module_names(mixed) == ["upsampler"]
    assert mixed.block_1.c1_r.eval_conv.weight.dtype == dtype
    assert all(p.dtype == torch.float32 for p in mixed.upsampler.parameters())
    x = torch.rand(1, 3, 12, 12).to(dtype)
    seen, out = _dtypes_seen(mixed, x, ["block_1.attention", "conv_cat", "upsampler"])
    assert seen["block_1.attention"] == (dtype, dtype)
    assert "conv_cat" not in seen  # in 16 bits its weights run per concatenated part, summed in float32
    assert seen["upsampler"] == (torch.float32, torch.float32)  # the float32 sum, its output the image
    assert out.dtype == torch.float32
    with torch.inference_mode():
        ref = model(x.float())
    assert (out - ref).abs().max().item() < 0.05 * ref.abs().max().item()


def test_a_float32_module_output_flows_on_until_a_16_bit_module_casts_it():
    """A float32 island's output stays float32 (the next module casts it), so sums with it stay float32."""
    model = deploy(create_model("span_ch28", scale=4).eval())
    info = model.srlab_spec.info
    info = dataclasses.replace(info, float32_modules=("block_3",))
    model.srlab_spec = dataclasses.replace(model.srlab_spec, info=info)
    mixed = to_reduced_precision(model, torch.bfloat16)
    seen, _ = _dtypes_seen(mixed, torch.rand(1, 3, 8, 8), ["block_3", "block_4.c1_r.eval_conv", "block_4.attention"])
    assert seen["block_3"] == (torch.float32, torch.float32)
    assert seen["block_4.c1_r.eval_conv"] == (torch.bfloat16, torch.bfloat16)
    assert seen["block_4.attention"] == (torch.bfloat16, torch.float32)  # out3 + x: x is block_3's float32 output


def test_span_cast_whole_to_16_bits_runs_in_16_bits():
    """Without srlab's float32 upsampler (``model.to(dtype)``), conv_cat's float32 sum is cast back for it."""
    model = deploy(create_model("span_ch28", scale=4).eval()).to(torch.bfloat16)
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 8, 8, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (1, 3, 32, 32)


def test_span_attention_in_16_bits_keeps_its_precision_near_zero():
    attention = create_model("span_ch28", scale=4).block_1.attention
    out3 = torch.linspace(-0.05, 0.05, 101)
    x = torch.full_like(out3, 100.0)
    exact = attention(out3.double(), x.double())  # the official expression in float64
    official_in_bf16 = (out3.bfloat16() + x.bfloat16()) * (torch.sigmoid(out3.bfloat16()) - 0.5)
    ours = attention(out3.bfloat16(), x.bfloat16())
    assert (ours.double() - exact).abs().max() < 0.25 * (official_in_bf16.double() - exact).abs().max()
    assert torch.equal(attention(out3, x), (out3 + x) * (torch.sigmoid(out3) - 0.5))  # float32: official


def test_a_model_without_float32_modules_is_cast_whole():
    model = to_reduced_precision(create_model("rlfn", scale=2).eval(), torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_span_attention_in_16_bits_trains():
    """AMP training runs the 16-bit branch: its in-place steps must leave autograd's saved tensors alone."""
    attention = create_model("span_ch28", scale=4).block_1.attention
    out3 = torch.randn(2, 4, 5, 5, dtype=torch.bfloat16, requires_grad=True)
    x = torch.randn(2, 4, 5, 5, dtype=torch.bfloat16, requires_grad=True)
    attention(out3, x).float().sum().backward()
    exact_out3, exact_x = (t.detach().double().requires_grad_() for t in (out3, x))
    ((exact_out3 + exact_x) * (torch.sigmoid(exact_out3) - 0.5)).sum().backward()
    assert torch.allclose(out3.grad.double(), exact_out3.grad, atol=0.02)
    assert torch.allclose(x.grad.double(), exact_x.grad, atol=0.01)
