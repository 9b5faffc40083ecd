"""Task metrics: any callable joins the evaluation through the metric contract (a :class:`Metric` with a
per-image ``fn(sr, hr, *, protocol)``), scored and averaged like the registered metrics.

The toy task is a fixed random-convolution "detector" (seeded): its detections are the pixels whose response
exceeds a threshold, and the score is the IoU of the detections on the SR image with those on the HR image.
On scikit-image photographs the agreement is 1 for a perfect SR output and falls as the output degrades.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srlab.data.resize import imresize
from srlab.errors import SrlabError
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.metrics.protocol import EvalProtocol
from srlab.metrics.registry import Metric
from conftest import photo, photo_tensor

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
    return photo_tensor(photo(name, (96, 96)))


def bicubic_sr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    return imresize(imresize(hr, scale=1 / scale), scale=scale).clamp(0, 1)


DETECTOR_IOU = Metric(
    "detector_iou", lambda sr, hr, *, protocol: detector_iou(sr[None], hr[None])[0], higher_is_better=True, best=1.0,
)
NO_BORDER = EvalProtocol(crop_border=0)


def scores_of(metric: Metric, srs, hrs) -> list[float]:
    acc = ScoreAccumulator(NO_BORDER, (metric,))
    return [acc.update(sr, hr, scale=2)[metric.key] for sr, hr in zip(srs, hrs)]


def test_detector_agreement_orders_degradations():
    hr = [image("astronaut"), image("coffee"), image("chelsea")]
    perfect = scores_of(DETECTOR_IOU, hr, hr)
    x2 = scores_of(DETECTOR_IOU, [bicubic_sr(h, 2) for h in hr], hr)
    x4 = scores_of(DETECTOR_IOU, [bicubic_sr(h, 4) for h in hr], hr)
    assert perfect == [1.0, 1.0, 1.0]
    assert all(a < b < 1 for a, b in zip(x4, x2)), (x2, x4)
    assert min(x4) > 0


def test_accumulates_per_image_values_and_means():
    hr = [image("astronaut"), image("rocket")]
    sr = [bicubic_sr(h, 3) for h in hr]
    acc = ScoreAccumulator(NO_BORDER, (DETECTOR_IOU,))
    first = [acc.update(s, h, scale=3)["detector_iou"] for s, h in zip(sr, hr)]
    assert acc.update(sr[0], hr[0], scale=3) == {"detector_iou": first[0]}
    assert acc.count == 3 and acc.values == {"detector_iou": [first[0], first[1], first[0]]}
    assert acc.compute() == {"detector_iou": pytest.approx((2 * first[0] + first[1]) / 3)}
    acc.reset()
    assert acc.count == 0 and acc.compute() == {}


def test_no_reference_metric_looks_at_the_sr_image_only():
    density = Metric(
        "density", lambda sr, hr, *, protocol: detections(sr[None]).double().mean(), higher_is_better=True,
        reference=False,
    )
    a, b = image("astronaut"), image("rocket")
    (with_b,), (with_a,) = scores_of(density, [a], [b]), scores_of(density, [a], [a])
    assert with_b == with_a and 0 < with_a < 1


def test_errors():
    hr = image("astronaut")
    bad = Metric("bad", lambda sr, hr, *, protocol: "good", higher_is_better=True)
    with pytest.raises(SrlabError, match="metric 'bad' returned str; return one float for the image"):
        scores_of(bad, [hr], [hr])
    many = Metric("many", lambda sr, hr, *, protocol: torch.zeros(3), higher_is_better=True)
    with pytest.raises(SrlabError, match=r"metric 'many' returned a tensor of shape \(3,\)"):
        scores_of(many, [hr], [hr])
    with pytest.raises(SrlabError, match=r"sr must be a \(3, H, W\) or \(1, H, W\) tensor"):
        scores_of(DETECTOR_IOU, [hr[0]], [hr[0]])
