"""srlab's inductor pass: depth-wise convolutions' residual sums leave oneDNN's binary fusion, bit for bit."""

import pytest
import torch
import torch.nn.functional as F
from torch import fx

from srlab.inference.fusion import DepthwiseSumsOutsideConv

CONV = torch.ops.mkldnn._convolution_pointwise.default
ADD = torch.ops.aten.add.Tensor


def _graph(groups: int) -> fx.GraphModule:
    """gelu(conv(x) + other) with oneDNN's frozen convolution op, as inductor's post-grad passes see it."""
    graph = fx.Graph()
    x, other, weight, bias = (graph.placeholder(name) for name in ("x", "other", "weight", "bias"))
    conv = graph.call_function(CONV, (x, weight, bias, [1, 1], [1, 1], [1, 1], groups, "none", [], ""))
    total = graph.call_function(ADD, (conv, other))
    graph.output(graph.call_function(torch.ops.aten.gelu.default, (total,)))
    return fx.GraphModule(torch.nn.Module(), graph)


def _inputs(channels: int, groups: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, 9, 11, generator=generator)
    weight = torch.randn(channels, channels // groups, 3, 3, generator=generator)
    return x, torch.randn(1, channels, 9, 11, generator=generator), weight, torch.randn(channels, generator=generator)


def _with_shapes(module: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> fx.GraphModule:
    """Each node's ``meta['val']``, as inductor's graphs carry them (the pass reads the output channels)."""
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(module).propagate(*inputs)
    for node in module.graph.nodes:
        if "tensor_meta" in node.meta:
            node.meta["val"] = torch.empty(node.meta["tensor_meta"].shape)
    return module


def test_a_depthwise_sum_is_rewritten_and_computes_the_same_bits():
    inputs = _inputs(8, 8)
    module = _with_shapes(_graph(8), inputs)
    expected = module(*inputs)
    DepthwiseSumsOutsideConv()(module.graph)
    module.recompile()
    targets = [node.target for node in module.graph.nodes]
    assert ADD not in targets and torch.ops.aten.sub.Tensor in targets
    assert torch.equal(module(*inputs), expected)
    reference = F.gelu(F.conv2d(inputs[0], inputs[2], inputs[3], padding=1, groups=8) + inputs[1])
    assert torch.allclose(expected, reference, atol=1e-5)


def test_dense_convolutions_keep_onednns_fused_sum():
    inputs = _inputs(8, 1)
    module = _with_shapes(_graph(1), inputs)
    DepthwiseSumsOutsideConv()(module.graph)
    assert ADD in [node.target for node in module.graph.nodes]


def test_the_pass_identifies_itself_by_its_source():
    # inductor's caches key compiled graphs on it: a changed pass compiles again
    assert DepthwiseSumsOutsideConv().uuid() == DepthwiseSumsOutsideConv().uuid()


@pytest.mark.slow
def test_a_compiled_path_rewrites_bsrns_sums_and_matches_eager(tmp_path, monkeypatch):
    from srlab import create_model
    from srlab.inference import fusion
    from srlab.inference.paths import FP32_MAX_ABS_DIFF, PATHS, build_path, unavailable_reason

    monkeypatch.setenv("SRLAB_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    model = create_model("bsrn", scale=2, args={"num_feat": 16, "num_block": 1}).eval()
    if reason := unavailable_reason(PATHS["compile"], model, torch.device("cpu"), "fp32"):
        pytest.skip(reason)
    rewritten = []
    original = fusion.DepthwiseSumsOutsideConv.__call__

    def counting(self, graph):
        subs = sum(node.target is torch.ops.aten.sub.Tensor for node in graph.nodes)
        original(self, graph)
        rewritten.append(sum(node.target is torch.ops.aten.sub.Tensor for node in graph.nodes) - subs)
    monkeypatch.setattr(fusion.DepthwiseSumsOutsideConv, "__call__", counting)
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        expected, compiled = model(x), build_path(PATHS["compile"], model)(x)
    # the three stages' residual sums and the global skip (c2's depth-wise output + the shallow features)
    assert sum(rewritten) == 4
    assert (compiled - expected).abs().max() <= FP32_MAX_ABS_DIFF
