"""The brief's per-API limits, seeded as RateLimitPolicy rows.

The adaptive ones shed load down to a floor (`min_factor`) a hospital can still work at: the audit trail is a
compliance read a staff session pages through (at the model's 0.1 it fell to 3/min on a host busy with its own
model loads, and the dashboard's Audit page was refused on its third request), and inference stays usable.
"""

DEFAULT_POLICIES: dict[str, dict] = {
    "patient_data": {"requests": 100, "priority": 1, "description": "Patient demographics and lookups"},
    "clinical_data": {"requests": 200, "priority": 1, "description": "Vitals, encounters, medications"},
    "ai_inference": {
        "requests": 50,
        "priority": 3,
        "adaptive": True,
        "min_factor": 0.4,
        "description": "Model inference",
    },  # at least 20/min
    "audit_logs": {
        "requests": 30,
        "priority": 4,
        "adaptive": True,
        "min_factor": 0.5,
        "description": "Audit trail queries",
    },  # at least 15/min
}
