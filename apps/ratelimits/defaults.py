"""The brief's per-API limits, seeded as RateLimitPolicy rows."""

DEFAULT_POLICIES: dict[str, dict] = {
    "patient_data": {"requests": 100, "priority": 1, "description": "Patient demographics and lookups"},
    "clinical_data": {"requests": 200, "priority": 1, "description": "Vitals, encounters, medications"},
    "ai_inference": {"requests": 50, "priority": 3, "adaptive": True, "description": "Model inference"},
    "audit_logs": {"requests": 30, "priority": 4, "adaptive": True, "description": "Audit trail queries"},
}
