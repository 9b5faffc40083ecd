"""Reports: benchmarks (evaluate and profile several models at several scales, then write tables, SVG plots,
visual comparisons and one offline ``index.html``: ``srlab benchmark``) and the quality/compute trade-off
curves of content-adaptive models (``srlab tradeoff``)."""

from srlab.report.benchmark import BenchmarkResult, CropSpec, load_benchmark_model, parse_crop, run_benchmark
from srlab.report.tradeoff import TradeoffPoint, TradeoffResult, run_tradeoff

__all__ = [
    "BenchmarkResult", "CropSpec", "TradeoffPoint", "TradeoffResult", "load_benchmark_model", "parse_crop",
    "run_benchmark", "run_tradeoff",
]
