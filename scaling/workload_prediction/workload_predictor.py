"""The brief's path to the workload-prediction API."""

from apps.scaling.prediction import WorkloadPredictionService

__all__ = ["WorkloadPredictionService"]
