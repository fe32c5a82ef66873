"""The OpenAPI schema: generated without a warning or an error, valid, with every view's parameters and
answers; and what the dashboard and FHIR endpoints answer matches what it documents."""

from __future__ import annotations

import json
from datetime import date, timedelta
from io import StringIO

import pytest
import schemathesis
from django.core.management import call_command
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.validation import validate_schema
from schemathesis.specs.openapi.checks import response_schema_conformance

from controlplane.wsgi import application


@pytest.fixture(scope="module")
def generated() -> tuple[dict, list[str]]:
    """The schema, and every warning and error drf-spectacular reported while generating it."""
    reset_generator_stats()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    reports = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    reset_generator_stats()
    return schema, reports


def _operation(schema: dict, path: str, method: str = "get") -> dict:
    return schema["paths"][path][method]


def _query_params(operation: dict) -> set[str]:
    return {param["name"] for param in operation.get("parameters", []) if param["in"] == "query"}


def test_schema_generates_without_warnings_or_errors(generated):
    _, reports = generated
    assert reports == []


def test_schema_is_valid_openapi(generated):
    schema, _ = generated
    validate_schema(schema)  # raises on an invalid document


def test_operation_ids_are_unique(generated):
    schema, _ = generated
    ids = [op["operationId"] for item in schema["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids))
    assert _operation(schema, "/api/v1/benchmarks/runs/")["operationId"] == "benchmarks_runs_list"
    assert _operation(schema, "/fhir/Patient")["operationId"] == "fhir_Patient_search"
    assert _operation(schema, "/fhir/Patient/{patient_id}")["operationId"] == "fhir_Patient_read"


@pytest.mark.parametrize(
    ("path", "method", "params"),
    [
        ("/api/v1/metrics/series/", "get", {"metric", "service", "namespace", "start", "end", "step"}),
        ("/api/v1/metrics/alerts/", "get", {"state", "limit"}),
        ("/api/v1/benchmarks/runs/", "get", {"plan", "limit"}),
        ("/api/v1/patients/window/", "get", {"name", "family", "given", "birth_date", "offset", "limit"}),
        ("/fhir/Observation", "get", {"patient", "category", "code", "date", "status", "_sort", "_count", "_cursor"}),
        ("/fhir/Patient", "get", {"identifier", "name", "family", "given", "birthdate", "_id", "_count"}),
        ("/fhir/Encounter", "get", {"patient", "date", "status", "_count"}),
        ("/fhir/MedicationRequest", "get", {"patient", "status", "intent", "code", "_count"}),
    ],
)
def test_query_parameters_are_documented(generated, path, method, params):
    schema, _ = generated
    assert params <= _query_params(_operation(schema, path, method))


def test_a_repeatable_fhir_date_is_an_array(generated):
    schema, _ = generated
    date_param = next(p for p in _operation(schema, "/fhir/Observation")["parameters"] if p["name"] == "date")
    assert date_param["schema"]["type"] == "array" and date_param["explode"] is True


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/api/v1/metrics/series/", "get", {"200", "400", "403"}),
        ("/api/v1/benchmarks/runs/{run_id}/", "get", {"200", "400", "403", "404"}),
        ("/api/v1/scaling/policies/{policy_id}/manifests/", "get", {"200", "404"}),
        ("/api/v1/inference/{name}/embed", "post", {"200", "400", "404", "503"}),
        ("/api/v1/inference/{name}/generate", "post", {"200", "400", "404", "503"}),
        ("/fhir/Observation/_search", "post", {"200", "400"}),
        ("/fhir/Patient/{patient_id}", "get", {"200", "404"}),
    ],
)
def test_success_and_error_answers_are_documented(generated, path, method, statuses):
    schema, _ = generated
    responses = _operation(schema, path, method)["responses"]
    assert statuses <= set(responses)
    for status in statuses - {"200"}:
        content = responses[status]["content"]
        shape = content.get("application/json") or content["application/fhir+json"]
        assert shape["schema"]["$ref"].rsplit("/", 1)[1] in {"ErrorOutput", "ValidationErrorOutput",
                                                             "FhirOperationOutcome"}  # fmt: skip


def test_fhir_answers_are_fhir_json(generated):
    schema, _ = generated
    content = _operation(schema, "/fhir/Observation")["responses"]["200"]["content"]
    assert content["application/fhir+json"]["schema"]["$ref"].endswith("/FhirBundle")


def test_spectacular_command_validates_and_fails_on_no_warning():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", stderr=StringIO())


# --- answers against the document -----------------------------------------------------------------
@pytest.fixture
def demo(transactional_db, settings, tmp_path, admin_user, issue_token) -> dict:
    """The demo's services, policies and deployments, a run with a regression, an alert, a patient with
    a vital sign; a staff session and a clinical token. Transactional: the app closes its connection after
    each request, as it does in production."""
    from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
    from apps.clinical import services as clinical
    from apps.metrics.models import Alert, AlertRule
    from apps.scaling.models import ScalingPolicy

    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    plan = BenchmarkPlan.objects.get(name="clinical-api load")
    run = BenchmarkRun.objects.create(plan=plan, status="succeeded", passed=True, summary={"requests": 10},
                                      started_at=timezone.now(), finished_at=timezone.now())  # fmt: skip
    Regression.objects.create(plan=plan, run=run, baseline=10.0, current=14.0, change_pct=40.0, p_value=0.01,
                              threshold_pct=10.0)  # fmt: skip
    rule = AlertRule.objects.create(name="Slow", metric="p95_ms", threshold=100)
    Alert.objects.create(rule=rule, value=150.0, last_value=150.5, message="p95 150 ms")
    patient = clinical.patient_create(mrn="SCHEMA-1", family_name="Doe", given_name="Jo", birth_date=date(1980, 1, 2))
    clinical.observation_record(patient=patient, code="8867-4", value=72, unit="/min",
                                effective_at=timezone.now() - timedelta(hours=1))  # fmt: skip

    from django.test import Client

    browser = Client()
    browser.force_login(admin_user)
    return {
        "session": {"sessionid": browser.cookies["sessionid"].value},
        "token": issue_token("patient:read", "clinical:read", name="schema-check"),
        "run": run.pk,
        "policy": ScalingPolicy.objects.first().pk,
        "patient": patient.pk,
    }


@pytest.fixture(scope="module")
def api_schema(generated):
    """The generated schema, as /api/schema/ serves it, calling the app in-process."""
    loaded = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(generated[0])))
    loaded.app = application
    return loaded


STAFF_READS = [
    ("/api/v1/benchmarks/runs/", {}, {}),
    ("/api/v1/benchmarks/runs/{run_id}/", {"run_id": "run"}, {}),
    ("/api/v1/cache/namespaces/", {}, {}),
    ("/api/v1/inference/deployments/", {}, {}),
    ("/api/v1/metrics/alerts/", {}, {}),
    ("/api/v1/metrics/series/", {}, {"metric": "p95_ms", "service": "clinical-api", "step": 600}),
    ("/api/v1/metrics/slo/", {}, {}),
    ("/api/v1/ratelimits/", {}, {}),
    ("/api/v1/scaling/policies/", {}, {}),
    ("/api/v1/scaling/policies/{policy_id}/manifests/", {"policy_id": "policy"}, {}),
]


@pytest.mark.parametrize(("path", "path_parameters", "query"), STAFF_READS)
def test_dashboard_answers_match_the_schema(api_schema, demo, path, path_parameters, query):
    case = api_schema[path]["GET"].Case(
        path_parameters={name: demo[key] for name, key in path_parameters.items()}, query=query, cookies=demo["session"]
    )
    response = case.call()
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=[response_schema_conformance])


PHI_READS = [
    ("/api/v1/patients/window/", "GET", {}, {"name": "Doe"}),
    ("/api/v1/patients/{patient_id}/vitals/", "GET", {"patient_id": "patient"}, {}),
    ("/fhir/Patient", "GET", {}, {"family": "Doe"}),
    ("/fhir/Patient/{patient_id}", "GET", {"patient_id": "patient"}, {}),
    ("/fhir/Observation", "GET", {}, {"patient": "patient", "code": "8867-4", "date": ["ge2020-01-01"]}),
    ("/fhir/metadata", "GET", {}, {}),
]


@pytest.mark.parametrize(("path", "method", "path_parameters", "query"), PHI_READS)
def test_patient_data_answers_match_the_schema(api_schema, demo, path, method, path_parameters, query):
    query = {name: str(demo["patient"]) if value == "patient" else value for name, value in query.items()}
    case = api_schema[path][method].Case(
        path_parameters={name: demo[key] for name, key in path_parameters.items()}, query=query
    )
    response = case.call(headers={"Authorization": f"Bearer {demo['token']}"})
    assert response.status_code == 200, response.text
    if path.startswith("/api/"):
        assert response.json()["results"]
    elif path != "/fhir/metadata":
        assert response.json()["resourceType"] in ("Bundle", "Patient")
    case.validate_response(response, checks=[response_schema_conformance])


def test_a_posted_fhir_search_matches_the_schema(api_schema, demo):
    case = api_schema["/fhir/Observation/_search"]["POST"].Case(
        body={"patient": f"Patient/{demo['patient']}", "_count": 1}, media_type="application/x-www-form-urlencoded"
    )
    response = case.call(headers={"Authorization": f"Bearer {demo['token']}"})
    assert response.status_code == 200, response.text
    assert len(response.json()["entry"]) == 1
    case.validate_response(response, checks=[response_schema_conformance])


def test_an_error_matches_the_schema(api_schema, demo):
    case = api_schema["/api/v1/benchmarks/runs/{run_id}/"]["GET"].Case(
        path_parameters={"run_id": 10**9}, cookies=demo["session"]
    )
    response = case.call()
    assert response.status_code == 404
    case.validate_response(response, checks=[response_schema_conformance])
