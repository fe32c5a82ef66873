"""The brief's path to the multi-level cache API."""

from apps.caching.medical_ai_cache import MedicalAICache

__all__ = ["MedicalAICache"]
