"""Reusable network layers shared by the model zoo: channel, spatial and mixed attention, window
self-attention (Swin v1/v2), ELAN's group-wise multi-scale attention, Omni-SR's omni self-attention,
ESRT's efficient multi-head attention, DLGSANet's dynamic depth-wise convolution."""

from srlab.layers.attention import ESA, ChannelAttention, ContrastChannelAttention, MixedAttention, SpatialGate
from srlab.layers.dynamic_conv import IDynamicDWConv, dynamic_depthwise_conv2d
from srlab.layers.elan import ELAB, GMSA, ShiftConv2d
from srlab.layers.emha import EMHA
from srlab.layers.omni import OSABlock
from srlab.layers.swin import RSTB, SwinTransformerBlock, WindowAttention, WindowAttentionV2, shifted_window_mask

__all__ = [
    "ELAB", "EMHA", "ESA", "GMSA", "RSTB", "ChannelAttention", "ContrastChannelAttention", "IDynamicDWConv",
    "MixedAttention", "OSABlock", "ShiftConv2d", "SpatialGate", "SwinTransformerBlock", "WindowAttention",
    "WindowAttentionV2", "dynamic_depthwise_conv2d", "shifted_window_mask",
]
