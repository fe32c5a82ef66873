"""The brief's path to the database-optimization API."""

from apps.clinical.brief import PatientRecordOptimizer

__all__ = ["PatientRecordOptimizer"]
