"""The task-based metric hook: any callable scores SR outputs, accumulated like the other metrics.

The toy task is a fixed random-convolution "detector" (seeded): its detections are the pixels whose response
exceeds a threshold, and the score is the IoU of the detections on the SR image with those on the HR image.
On scikit-image photographs the agreement is 1 for a perfect SR output and falls as the output degrades.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srlab.data.resize import imresize
from srlab.errors import SrlabError
from srlab.metrics.task import TaskMetric
from conftest import photo

_GEN = torch.Generator().manual_seed(0)
_KERNELS = torch.randn(8, 3, 5, 5, generator=_GEN)
_KERNELS -= _KERNELS.mean(dim=(1, 2, 3), keepdim=True)  # edge/texture detectors: zero response on flat areas


def detections(x: torch.Tensor) -> torch.Tensor:
    response = F.conv2d(x.float(), _KERNELS, padding=2).abs()
    return response > 0.5


def detector_iou(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Per-image IoU of the detector's detections on SR vs HR."""
    a, b = detections(sr), detections(hr)
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return inter / union.clamp(min=1)


def image(name: str) -> torch.Tensor:
    return torch.from_numpy(np.array(photo(name, (96, 96)))).permute(2, 0, 1).float() / 255


def bicubic_sr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    return imresize(imresize(hr, scale=1 / scale), scale=scale).clamp(0, 1)


def test_detector_agreement_orders_degradations():
    metric = TaskMetric(detector_iou, name="detector_iou")
    hr = torch.stack([image("astronaut"), image("coffee"), image("chelsea")])
    perfect = metric(hr, hr)
    x2, x4 = metric(bicubic_sr(hr, 2), hr), metric(bicubic_sr(hr, 4), hr)
    assert torch.equal(perfect, torch.ones(3, dtype=torch.float64))
    assert (x4 < x2).all() and (x2 < 1).all(), (x2, x4)
    assert float(x4.min()) > 0


def test_accumulates_like_a_mean_meter():
    metric = TaskMetric(detector_iou, name="detector_iou")
    hr = torch.stack([image("astronaut"), image("rocket")])
    sr = bicubic_sr(hr, 3)
    first = metric.update(sr, hr)  # a batch of two
    second = metric.update(sr[0], hr[0])  # one (C, H, W) image
    assert len(first) == 2 and second == [first[0]]
    assert metric.count == 3
    assert metric.compute() == {"detector_iou": pytest.approx((2 * first[0] + first[1]) / 3)}
    metric.reset()
    with pytest.raises(SrlabError, match="no images scored yet"):
        metric.compute()


def test_float_returning_and_no_reference_callables():
    hr = torch.stack([image("astronaut"), image("rocket")])
    mean_iou = TaskMetric(lambda sr, hr: float(detector_iou(sr, hr).mean()), name="map")
    assert mean_iou.update(bicubic_sr(hr, 2), hr) == [pytest.approx(float(detector_iou(bicubic_sr(hr, 2), hr).mean()))] * 2
    assert mean_iou.count == 2
    density = TaskMetric(lambda sr: detections(sr).flatten(1).double().mean(1), name="density", reference=False)
    values = density.update(hr)
    assert len(values) == 2 and all(0 < v < 1 for v in values)
    assert density.higher_is_better


def test_errors():
    hr = torch.stack([image("astronaut"), image("rocket")])
    with pytest.raises(SrlabError, match="must be callable"):
        TaskMetric(3, name="x")
    with pytest.raises(SrlabError, match="returned 1 values for a batch of 2|returned 3 values"):
        TaskMetric(lambda s, h: torch.zeros(3), name="bad")(hr, hr)
    with pytest.raises(SrlabError, match="return a float or a per-image tensor"):
        TaskMetric(lambda s, h: "good", name="bad")(hr, hr)
    with pytest.raises(SrlabError, match="pass hr"):
        TaskMetric(detector_iou, name="iou").update(hr)
    with pytest.raises(SrlabError, match="sr has 2 images but hr has 1"):
        TaskMetric(detector_iou, name="iou").update(hr, hr[:1])
    with pytest.raises(SrlabError, match=r"\(C, H, W\) or \(N, C, H, W\)"):
        TaskMetric(detector_iou, name="iou").update(hr[0, 0], hr[0, 0])
