"""The API scopes a machine client can hold. Endpoints name the scope they require."""

PATIENT_READ = "patient:read"
PATIENT_WRITE = "patient:write"
CLINICAL_READ = "clinical:read"
CLINICAL_WRITE = "clinical:write"
INFERENCE = "inference"
AUDIT_READ = "audit:read"
BENCHMARK = "benchmark"

SCOPES: dict[str, str] = {
    PATIENT_READ: "Read patient demographics and identifiers",
    PATIENT_WRITE: "Create and update patients",
    CLINICAL_READ: "Read encounters, observations and medications",
    CLINICAL_WRITE: "Record encounters, observations and medications",
    INFERENCE: "Call the AI inference endpoints",
    AUDIT_READ: "Read the audit trail",
    BENCHMARK: "Load tests: exempt from rate limits (the benchmark runner's short-lived tokens)",
}
