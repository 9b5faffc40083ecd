"""Reusable network layers (attention, upsamplers) shared by the model zoo."""

from srlab.layers.attention import ESA, ChannelAttention

__all__ = ["ESA", "ChannelAttention"]
