"""Reusable network layers (attention, upsamplers) shared by the model zoo."""

from srlab.layers.attention import ESA, ChannelAttention, ContrastChannelAttention, MixedAttention, SpatialGate

__all__ = ["ESA", "ChannelAttention", "ContrastChannelAttention", "MixedAttention", "SpatialGate"]
