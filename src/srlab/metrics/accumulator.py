"""The one accumulator of every evaluation: per-image values and set means of registered metrics.

::

    acc = ScoreAccumulator(PAPER_PROTOCOL, ("psnr", "ssim", "gmsd"))
    for sr, hr in pairs:                  # SR first, HR second; (3, H, W) or (1, H, W) in [0, 1]
        acc.update(sr, hr, scale)         # {"psnr_y": ..., "ssim_y": ..., "gmsd": ...} of this image
    acc.compute()                         # the set means, same keys
    acc.values["gmsd"]                    # the per-image values, in update order

Metrics that need weight files get them once, in a :class:`~srlab.metrics.registry.MetricSet`
(``MetricSet(names, {"niqe": "modelparameters.mat"})``), which the accumulator also accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from torch import Tensor

from srlab.metrics.protocol import PAPER_PROTOCOL, EvalProtocol
from srlab.metrics.registry import PROTOCOL_METRICS, Metric, MetricSet


def mean_scores(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The set means of per-image score dicts, summed in the order given (so that scores gathered from
    several processes and put back in image order average to the single-process means, to the bit)."""
    values: dict[str, list[float]] = {}
    for scores in per_image:
        for key, value in scores.items():
            values.setdefault(key, []).append(float(value))
    return {key: sum(v) / len(v) for key, v in values.items()}


class ScoreAccumulator:
    """Scores image pairs one by one with registered metrics under one protocol; keeps every per-image
    value (``values``) and gives the set means (:meth:`compute`)."""

    def __init__(
        self,
        protocol: EvalProtocol = PAPER_PROTOCOL,
        metrics: MetricSet | Sequence[str | Metric] = PROTOCOL_METRICS,
    ) -> None:
        self.protocol = protocol
        self.metrics = metrics if isinstance(metrics, MetricSet) else MetricSet(metrics)
        self.values: dict[str, list[float]] = {key: [] for key in self.metrics.keys(protocol)}

    def update(self, sr: Tensor, hr: Tensor, scale: int) -> dict[str, float]:
        """Score one SR image against its HR image, keep its values, and return them."""
        scores = self.metrics.score(*self.protocol.prepare(sr, hr, scale), self.protocol)
        for key, value in scores.items():
            self.values[key].append(value)
        return scores

    @property
    def count(self) -> int:
        return len(next(iter(self.values.values()), []))

    def compute(self) -> dict[str, float]:
        """The set means, e.g. ``{"psnr_y": ..., "ssim_y": ...}`` (empty before the first image)."""
        return {key: sum(values) / len(values) for key, values in self.values.items() if values}

    def reset(self) -> None:
        for values in self.values.values():
            values.clear()
