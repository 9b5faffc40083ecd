"""The training step kinds: importing this module registers them all (see :mod:`srlab.train.step`)."""

from srlab.train import arbitrary_scale_step, arm_sampled_step, arm_sandwich_step, car_step, diffusion_step, multitask_step, scheduled_step, unpaired_step  # noqa: F401  (registers the kinds)
from srlab.train.step import register_step, step_names, train_step

__all__ = ["register_step", "step_names", "train_step"]
