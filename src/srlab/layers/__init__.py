"""Reusable network layers (attention, upsamplers) shared by the model zoo."""

from srlab.layers.attention import ESA, ChannelAttention, ContrastChannelAttention

__all__ = ["ESA", "ChannelAttention", "ContrastChannelAttention"]
