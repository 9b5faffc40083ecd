"""Latency measurement: statistics of repeated timed runs, thread control, CUDA synchronisation."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import srlab
from srlab.errors import SrlabError
from srlab.profile import LatencyStats, measure_latency, model_latency


def test_statistics_of_a_known_workload():
    calls = []

    def run():
        calls.append(time.perf_counter())
        time.sleep(0.002 if len(calls) % 2 else 0.004)  # timed runs alternate 2 ms / 4 ms

    stats = measure_latency(run, repeats=8, warmup=2)
    assert len(calls) == 10  # warm-up runs are made, not timed
    assert isinstance(stats, LatencyStats)
    assert stats.repeats == 8 and stats.warmup == 2 and stats.device == "cpu"
    assert stats.min_ms >= 2.0
    assert stats.q1_ms <= stats.median_ms <= stats.q3_ms
    assert stats.iqr_ms == pytest.approx(stats.q3_ms - stats.q1_ms)
    # half the runs sleep 2 ms, half 4 ms: the median lies between, the IQR spans about 2 ms
    assert 2.0 <= stats.median_ms < 4.0 + 3.0
    assert 1.0 < stats.iqr_ms < 2.0 + 3.0
    assert stats.to_json()["median_ms"] == stats.median_ms


def test_quartiles_are_numpy_linear_percentiles(monkeypatch):
    """Fixed durations (a fake clock): the figures are numpy's percentiles of them."""
    durations = [5.0, 1.0, 3.0, 2.0, 100.0, 4.0]  # ms; one outlier
    ticks = iter(np.cumsum([0.0] + [v for d in durations for v in (d / 1000, 0.0)]))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))
    stats = measure_latency(lambda: None, repeats=len(durations), warmup=0)
    q1, median, q3 = np.percentile(durations, [25, 50, 75])
    assert stats.median_ms == pytest.approx(median) == pytest.approx(3.5)
    assert (stats.q1_ms, stats.q3_ms) == (pytest.approx(q1), pytest.approx(q3))
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.median_ms < stats.mean_ms  # the outlier moves the mean, not the median


def test_threads_are_set_for_the_runs_and_restored():
    before = torch.get_num_threads()
    seen = []
    stats = measure_latency(lambda: seen.append(torch.get_num_threads()), repeats=2, warmup=1, threads=2)
    assert seen == [2, 2, 2] and stats.threads == 2
    assert torch.get_num_threads() == before
    stats = measure_latency(lambda: None, repeats=1, warmup=0)
    assert stats.threads == before  # not given: torch's setting, reported


def test_bad_settings_are_user_errors():
    with pytest.raises(SrlabError, match="--repeats"):
        measure_latency(lambda: None, repeats=0)
    with pytest.raises(SrlabError, match="--warmup"):
        measure_latency(lambda: None, warmup=-1)
    with pytest.raises(SrlabError, match="--threads"):
        measure_latency(lambda: None, threads=0)


@pytest.mark.parametrize("name", ["rdsr_s", "bicubic"])
def test_model_latency_is_positive(name):
    model = srlab.create_model(name, scale=2).eval()
    stats = model_latency(model, (12, 18), repeats=3, warmup=1, threads=1)  # 18 is not a multiple: padded
    assert stats.median_ms > 0 and stats.min_ms > 0 and stats.repeats == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_latency_synchronises():
    model = srlab.create_model("rdsr_s", scale=4).eval().cuda()
    stats = model_latency(model, (180, 320), device="cuda", repeats=5, warmup=2)
    assert stats.device.startswith("cuda") and stats.median_ms > 0.05
