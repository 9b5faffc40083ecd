"""Training objectives."""

from srlab.losses.pixel import CharbonnierLoss, build_pixel_loss

__all__ = ["CharbonnierLoss", "build_pixel_loss"]
