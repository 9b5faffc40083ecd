"""Training: configuration and the training loop."""

from srlab.train.config import TrainConfig
from srlab.train.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
