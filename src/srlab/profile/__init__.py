"""Efficiency profiles: parameters, multiply-accumulates, latency, memory."""

from srlab.profile.macs import count_macs, macs_720p

__all__ = ["count_macs", "macs_720p"]
