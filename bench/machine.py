"""What every benchmark prints beside its figures: the CPU model (machines change between sessions)."""

from srlab.profile.machine import cpu_model

__all__ = ["cpu_model"]
