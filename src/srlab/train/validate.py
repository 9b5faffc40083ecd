"""Validation of the evaluated weights (the model, or its EMA) on the run's validation images, scored
by the registered metrics (:mod:`srlab.metrics.registry`) as `srlab eval` scores them."""

from __future__ import annotations

import torch
from torch import nn

from srlab.inference.evaluate import evaluate_images
from srlab.metrics import mean_scores
from srlab.train.distributed import Dist


def validation_scores(
    model: nn.Module, images: list[tuple[str, torch.Tensor, torch.Tensor]], indices: list[int], dist: Dist
) -> dict[str, float]:
    """The mean scores (``psnr_y``, ``ssim_y``) of ``model`` over every rank's share of the images.

    ``images`` are this rank's (name, lr, hr) and ``indices`` their positions in the whole list. The
    per-image scores are averaged in image order, as one process does, so the mean equals the
    single-process mean to the bit."""
    model.eval()
    _, mine = evaluate_images(model, images)
    model.train()
    gathered = dist.all_gather_object([(i, s.scores) for i, s in zip(indices, mine)])
    return mean_scores(scores for _, scores in sorted(pair for part in gathered for pair in part))
