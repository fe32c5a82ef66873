"""The brief's path to the benchmarking API."""

from apps.benchmarks.suite import MedicalAIBenchmarkSuite, PerformanceRegressionDetector

__all__ = ["MedicalAIBenchmarkSuite", "PerformanceRegressionDetector"]
