"""The brief's path to the model-optimization API."""

from apps.inference.brief import ModelPerformanceOptimizer

__all__ = ["ModelPerformanceOptimizer"]
