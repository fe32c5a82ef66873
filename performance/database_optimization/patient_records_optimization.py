"""The brief's path to the database-optimization API."""

from apps.clinical.brief import AmbiguousPatientIdentifier, PatientRecordOptimizer

__all__ = ["AmbiguousPatientIdentifier", "PatientRecordOptimizer"]
