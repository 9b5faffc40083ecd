"""Dynamic depth-wise convolution: per-pixel, per-group kernels predicted from the input.

Han et al., "On the Connection between Local Attention and Dynamic Depth-wise Convolution", ICLR 2022
(official code Atten4Vis/DemystifyLocalViT, MIT), in the form DLGSANet uses it (Li et al., "DLGSANet:
Lightweight Dynamic Local and Global Self-Attention Networks for Image Super-Resolution", ICCV 2023;
official code NeonLeexiang/DLGSANet, Apache-2.0, ``basicsr/archs/dlgsanet_idynamicdwconv_util.py``).

The official operator is a CUDA kernel compiled at run time with cupy (CUDA only, no CPU path). Here it
is plain PyTorch with the same semantics (stride 1, dilation 1, zero padding): for every image ``n``,
channel ``c`` in group ``g = c // (C / G)`` and output pixel ``(h, w)``::

    out[n, c, h, w] = sum_{i, j} weight[n, g, i, j, h, w] * x_padded[n, c, h + i, w + j]

It is computed as ``k * k`` shifted multiply-accumulates on views of the padded input (no ``unfold``,
which would materialise a ``k * k`` times larger tensor): the extra memory is one output-sized buffer,
and autograd gives the gradients of both the input and the predicted kernels. The element-wise
multiply-accumulates are not matrix products or convolutions, so srlab's MAC counter does not count
them (``C * k * k`` per output pixel, see :func:`dynamic_conv_macs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dynamic_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, *, padding: int) -> torch.Tensor:
    """Apply per-pixel kernels ``weight`` (N, G, k, k, H_out, W_out) to ``x`` (N, C, H, W) group-wise.

    The C channels form G consecutive groups of C / G channels that share one kernel per pixel. The
    input is zero-padded by ``padding`` on every side; ``H_out = H + 2 * padding - k + 1`` (likewise W).
    """
    if x.dim() != 4 or weight.dim() != 6:
        raise ValueError(f"expected x (N,C,H,W) and weight (N,G,k,k,H,W), got {tuple(x.shape)}, {tuple(weight.shape)}")
    n, channels, height, width = x.shape
    wn, groups, kh, kw, out_h, out_w = weight.shape
    if wn != n:
        raise ValueError(f"batch sizes differ: x has {n}, weight has {wn}")
    if channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} groups")
    if (out_h, out_w) != (height + 2 * padding - kh + 1, width + 2 * padding - kw + 1):
        raise ValueError(
            f"weight's spatial size {(out_h, out_w)} does not match the output of a {kh}x{kw} kernel "
            f"on {(height, width)} with padding {padding}"
        )
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    # (N, G, C/G, H_pad, W_pad): a view, the group is a leading split of the channel dimension
    padded = padded.view(n, groups, channels // groups, *padded.shape[-2:])
    kernels = weight.unsqueeze(2)  # (N, G, 1, k, k, H_out, W_out): broadcast over the group's channels
    out = padded[..., :out_h, :out_w] * kernels[:, :, :, 0, 0]
    for i in range(kh):
        for j in range(kw):
            if i == 0 and j == 0:
                continue
            out.addcmul_(padded[..., i:i + out_h, j:j + out_w], kernels[:, :, :, i, j])
    return out.view(n, channels, out_h, out_w)


def dynamic_conv_macs(channels: int, kernel_size: int, height: int, width: int) -> int:
    """Multiply-accumulates of one dynamic depth-wise convolution (what a depth-wise conv would cost)."""
    return channels * kernel_size * kernel_size * height * width


class IDynamicDWConv(nn.Module):
    """DLGSANet's dynamic depth-wise convolution: a small hyper-network predicts the kernels.

    ``conv1`` (1x1 to C/4, then a k x k depth-wise conv) and ``conv2`` (1x1 to G * k * k) predict, at
    every pixel, one k x k kernel per group of ``group_channels`` channels (G = C / group_channels; the
    official code passes its "heads" argument as ``group_channels``). Parameter names are the official
    ones; the official model has no bias on the dynamic convolution itself.
    """

    def __init__(self, channels: int, kernel_size: int, group_channels: int, *, bias: bool = True) -> None:
        super().__init__()
        if channels % group_channels:
            raise ValueError(f"channels ({channels}) must be a multiple of group_channels ({group_channels})")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        reduction = 4
        hidden = channels // reduction
        self.kernel_size = kernel_size
        self.channels = channels
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.conv1 = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias),
            nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden, bias=bias),
        )
        self.conv2 = nn.Sequential(nn.Conv2d(hidden, kernel_size * kernel_size * self.groups, 1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        weight = self.conv2(self.conv1(x))
        n, _, h, w = weight.shape
        weight = weight.view(n, self.groups, k, k, h, w)
        return dynamic_depthwise_conv2d(x, weight, padding=(k - 1) // 2)
