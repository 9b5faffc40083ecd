"""Inductor's settings for srlab's compiled paths: freezing, and a graph pass that keeps depth-wise
convolutions' residual sums out of oneDNN.

With freezing, inductor turns ``conv(x) + other`` into one ``mkldnn._convolution_pointwise.binary`` call.
For a dense convolution oneDNN adds ``other`` as it writes the output, but for a depth-wise one the call
costs what the convolution and a separate sum over memory cost (torch 2.13, Intel Xeon with AMX, 1 thread,
a 64 x 180 x 320 map in channels_last: bfloat16 convolution 1.12 ms, with the sum 2.43 ms, the sum alone
0.96 ms; float32 1.19 / 2.25 / 1.67 ms), and the sum then cannot join the elementwise operations after it:
BSRN adds each stage's input to a depth-wise output and applies GELU, so the fused form writes the map, reads
and writes it again for the sum, and again for GELU. :class:`DepthwiseSumsOutsideConv` writes such sums as
``other - (-conv(x))``, which equals ``other + conv(x)`` bit for bit but matches none of inductor's fusion
patterns, so inductor folds the sum into the elementwise kernel that follows (BSRN x4, LR 180x320, bf16
compiled, same machine, three interleaved A/Bs in one process: 469 -> 405, 457 -> 420, 458 -> 431 ms a forward).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

_CONV = torch.ops.mkldnn._convolution_pointwise.default
_ADD = torch.ops.aten.add.Tensor


def _depthwise(node: object) -> bool:
    """A frozen oneDNN convolution with no fused activation whose groups are its output channels."""
    if not isinstance(node, torch.fx.Node) or node.target is not _CONV:
        return False
    groups, activation = node.args[6], node.args[7]
    out = node.meta.get("val")
    return activation == "none" and groups > 1 and out is not None and groups == out.shape[1]


class DepthwiseSumsOutsideConv(CustomGraphPass):
    """Rewrites ``conv(x) + other`` as ``other - (-conv(x))`` where ``conv`` is depth-wise and feeds only
    the sum (inductor's post-grad pre-pass, after freezing has made the convolutions oneDNN calls)."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        for node in list(graph.nodes):
            if node.target is not _ADD or len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
                continue
            conv = next((arg for arg in node.args if _depthwise(arg) and len(arg.users) == 1), None)
            other = node.args[1] if conv is node.args[0] else node.args[0]
            if conv is None or not isinstance(other, torch.fx.Node) or other is conv:
                continue
            with graph.inserting_before(node):
                negated = graph.call_function(torch.ops.aten.neg.default, (conv,))
                total = graph.call_function(torch.ops.aten.sub.Tensor, (other, negated))
            negated.meta, total.meta = dict(conv.meta), dict(node.meta)
            node.replace_all_uses_with(total)
            graph.erase_node(node)

    def uuid(self) -> bytes:
        return get_hash_for_files((__file__,))


@contextlib.contextmanager
def compile_settings() -> Iterator[None]:
    """Inductor configured as srlab's compiled paths compile: freezing (the weights folded into the graph as
    constants, prepacked for oneDNN) and :class:`DepthwiseSumsOutsideConv`; it applies when a shape compiles."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True, post_grad_custom_pre_pass=DepthwiseSumsOutsideConv()):
        yield
