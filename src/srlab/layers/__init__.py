"""Reusable network layers shared by the model zoo: channel, spatial and mixed attention, window
self-attention (Swin v1/v2), ELAN's group-wise multi-scale attention, Omni-SR's omni self-attention,
ESRT's efficient multi-head attention, DLGSANet's dynamic depth-wise convolution, the channel
LayerNorm and the registry of feature-map normalisations (:func:`build_norm`), the gated feed-forward
network, the DIV2K mean shift and the upsamplers (one registry, :mod:`srlab.layers.upsamplers`)."""

from srlab.layers.attention import ESA, ChannelAttention, ContrastChannelAttention, MixedAttention, SpatialGate
from srlab.layers.dynamic_conv import IDynamicDWConv, dynamic_depthwise_conv2d
from srlab.layers.elan import ELAB, GMSA, ShiftConv2d
from srlab.layers.emha import EMHA
from srlab.layers.ffn import GatedFeedForward
from srlab.layers.mean_shift import DIV2K_RGB_MEAN, MeanShift
from srlab.layers.norm import NORMS, LayerNorm2d, build_norm
from srlab.layers.omni import OSABlock
from srlab.layers.swin import RSTB, SwinTransformerBlock, WindowAttention, WindowAttentionV2, shifted_window_mask
from srlab.layers.upsamplers import ProgressiveUpsampler, SubPixelHead, build_upsampler, list_upsamplers

__all__ = [
    "DIV2K_RGB_MEAN", "ELAB", "EMHA", "ESA", "GMSA", "NORMS", "RSTB", "ChannelAttention", "ContrastChannelAttention",
    "GatedFeedForward", "IDynamicDWConv", "LayerNorm2d", "MeanShift", "MixedAttention", "OSABlock",
    "ProgressiveUpsampler", "ShiftConv2d", "SpatialGate", "SubPixelHead", "SwinTransformerBlock",
    "WindowAttention", "WindowAttentionV2", "build_norm", "build_upsampler", "dynamic_depthwise_conv2d",
    "list_upsamplers", "shifted_window_mask",
]
