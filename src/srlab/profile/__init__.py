"""Efficiency profiles: parameters, multiply-accumulates, activations, latency, memory."""

from srlab.models.complexity import count_macs, macs_720p  # the counter lives on the models floor
from srlab.profile.latency import LatencyStats, measure_interleaved, measure_latency, model_latency
from srlab.machine import cpu_model
from srlab.profile.memory import count_activations, cpu_peak_memory, cuda_peak_memory
from srlab.profile.report import ModelProfile, profile_model

__all__ = [
    "LatencyStats",
    "ModelProfile",
    "count_activations",
    "count_macs",
    "cpu_model",
    "cpu_peak_memory",
    "cuda_peak_memory",
    "macs_720p",
    "measure_interleaved",
    "measure_latency",
    "model_latency",
    "profile_model",
]
