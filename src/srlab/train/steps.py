"""The training step kinds: importing this module registers them all (see :mod:`srlab.train.step`)."""

from srlab.train import scheduled_step  # noqa: F401  (registers the step kind)
from srlab.train.step import register_step, step_names, train_step

__all__ = ["register_step", "step_names", "train_step"]
