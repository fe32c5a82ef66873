"""The FHIR routes in the OpenAPI schema: an operationId each that says what it does, none made up by
drf-spectacular from the catch-all's path."""

from __future__ import annotations

from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.generators import SchemaGenerator


def test_every_fhir_operation_has_a_clear_unique_operation_id():
    reset_generator_stats()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    reports = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    reset_generator_stats()
    assert not [report for report in reports if "fhir" in str(report).lower()]
    ids = {
        (method, path): operation["operationId"]
        for path, item in schema["paths"].items()
        if path.startswith("/fhir/")
        for method, operation in item.items()
    }
    expected = {
        ("get", "/fhir/metadata"): "fhir_capabilities",
        ("get", "/fhir/Patient/{patient_id}"): "fhir_Patient_read",
    }
    for resource_type in ("Patient", "Observation", "Encounter", "MedicationRequest"):
        expected[("get", f"/fhir/{resource_type}")] = f"fhir_{resource_type}_search"
        expected[("post", f"/fhir/{resource_type}/_search")] = f"fhir_{resource_type}_search_post"
        if resource_type != "Patient":
            expected[("get", f"/fhir/{resource_type}/{{resource_id}}")] = f"fhir_{resource_type}_read"
    expected[("get", "/fhir/Observation/$lastn")] = "fhir_Observation_lastn"
    expected[("post", "/fhir/Observation/$lastn")] = "fhir_Observation_lastn_post"
    expected[("get", "/fhir/Patient/{patient_id}/$everything")] = "fhir_Patient_everything"
    expected[("post", "/fhir/Patient/{patient_id}/$everything")] = "fhir_Patient_everything_post"
    for method in ("get", "post", "put", "patch", "delete"):
        expected[(method, "/fhir/{rest}")] = f"fhir_unsupported_{method}"
    assert ids == expected
