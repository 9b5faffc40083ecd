"""Benchmark reports: evaluate and profile several models at several scales, then write tables, SVG plots,
visual comparisons and one offline ``index.html`` (``srlab benchmark``)."""

from srlab.report.benchmark import BenchmarkResult, CropSpec, load_benchmark_model, parse_crop, run_benchmark

__all__ = ["BenchmarkResult", "CropSpec", "load_benchmark_model", "parse_crop", "run_benchmark"]
