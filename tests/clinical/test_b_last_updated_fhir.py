"""FHIR meta.lastUpdated and versionId on Observation, Encounter and MedicationRequest (reads, searches,
$everything), their reads' ETag, Last-Modified and 304s as a Patient's, the `_lastUpdated` search parameter on the
four searches (GET and POST, compiled, paged), `$everything?_since`, and the same meta cached or not. Each answer is
validated by the fhir.resources R4B models; bad values are OperationOutcomes naming the parameter; each is audited."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.utils import timezone
from django.utils.http import http_date
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.medicationrequest import MedicationRequest as FhirMedicationRequest
from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient

from apps.audit.models import AuditEvent
from apps.caching.stack import default_stack
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient
from tests.clinical.backdate import backdate

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"
OLD = datetime(2001, 6, 15, 12, tzinfo=UTC)
FHIR_MODELS = {"Patient": FhirPatient, "Observation": FhirObservation, "Encounter": FhirEncounter,
               "MedicationRequest": FhirMedicationRequest}  # fmt: skip
MODELS = {"Observation": Observation, "Encounter": Encounter, "MedicationRequest": MedicationRequest}
NEXT_STATUS = {"Observation": "amended", "Encounter": "finished", "MedicationRequest": "stopped"}


def _version(moment: datetime) -> str:
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))


@pytest.fixture
def chart(patient, vitals):
    """The patient with 8 readings, 2 encounters and 2 prescriptions: one of each type (and the patient) last
    updated in 2001, the rest now. Returns {type: (old ids, new ids)}."""
    now = timezone.now()
    encounters = [Encounter.objects.create(patient=patient, encounter_class="AMB", status="finished",
                                           period_start=now - timedelta(days=d), period_end=now - timedelta(days=d)
                                           + timedelta(hours=1)) for d in (3, 2)]  # fmt: skip
    requests = [MedicationRequest.objects.create(patient=patient, encounter=encounters[0], rxnorm_code="197361",
                                                 display="Amlodipine 5 MG Oral Tablet",
                                                 authored_at=now - timedelta(days=d)) for d in (3, 2)]  # fmt: skip
    rows = {"Observation": vitals, "Encounter": encounters, "MedicationRequest": requests}
    split = {}
    for name, found in rows.items():
        old = [found[0].pk, found[1].pk] if name == "Observation" else [found[0].pk]
        backdate(MODELS[name].objects.filter(pk__in=old), OLD)
        split[name] = (old, [row.pk for row in found if row.pk not in old])
    backdate(Patient.objects.filter(pk=patient.pk), OLD)
    default_stack().clear_local()
    return split


def _bundle(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    Bundle.model_validate(body)
    for entry in body.get("entry", []):
        resource = entry["resource"]
        FHIR_MODELS[resource["resourceType"]].model_validate(resource)
        assert resource["meta"]["versionId"] and resource["meta"]["lastUpdated"]
    return body


def _ids(body: dict, resource_type: str | None = None) -> list[int]:
    return [int(e["resource"]["id"]) for e in body.get("entry", [])
            if resource_type in (None, e["resource"]["resourceType"])]  # fmt: skip


def _post(clinician, path: str, params: dict):
    """A form body, as FHIR's POST _search takes (a list: the parameter repeated)."""
    return clinician.post(path, urlencode(params, doseq=True), content_type=FORM)


def _outcome(response, status: int = 400) -> OperationOutcome:
    assert response.status_code == status, response.content[:300]
    return OperationOutcome.model_validate(response.json())


@pytest.mark.parametrize("resource_type", list(MODELS))
def test_a_read_carries_meta_and_answers_conditional_reads(clinician, chart, resource_type, elsewhere):
    row = MODELS[resource_type].objects.get(pk=chart[resource_type][1][0])
    path = f"/fhir/{resource_type}/{row.pk}"
    first = clinician.get(path)
    assert first.status_code == 200, first.content[:300]
    resource = FHIR_MODELS[resource_type].model_validate(first.json())
    assert resource.meta.lastUpdated == row.updated_at and resource.meta.versionId == _version(row.updated_at)
    assert first["ETag"] == f'W/"{_version(row.updated_at)}"'
    assert first["Last-Modified"] == http_date(row.updated_at.timestamp())
    before = AuditEvent.objects.count()
    unchanged = clinician.get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged["ETag"] == first["ETag"]
    event = AuditEvent.objects.order_by("-seq").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.action, event.resource_id, event.patient_id) == ("read", str(row.pk), row.patient_id)
    assert clinician.get(path, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304
    earlier = http_date((row.updated_at - timedelta(minutes=1)).timestamp())
    assert clinician.get(path, HTTP_IF_MODIFIED_SINCE=earlier).status_code == 200
    assert clinician.get(path, HTTP_IF_NONE_MATCH='W/"1"').status_code == 200
    elsewhere(lambda: MODELS[resource_type].objects.filter(pk=row.pk).update(status=NEXT_STATUS[resource_type]))
    changed = clinician.get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    assert changed.json()["meta"]["versionId"] == changed["ETag"][3:-1]


@pytest.mark.parametrize("resource_type", [*MODELS, "Patient"])
@pytest.mark.parametrize("posted", [False, True], ids=["get", "post"])
def test_last_updated_selects_by_the_update_time(clinician, patient, chart, resource_type, posted):
    base = {"_id": str(patient.pk)} if resource_type == "Patient" else {"patient": str(patient.pk)}
    old, new = chart.get(resource_type, ([patient.pk], []))
    queries = [
        ("gt2010-01-01", new), ("lt2010", old), ("eq2001", old), ("ne2001", new), ("sa2001-12-31", new),
        ("eb2002", old), ("le2001-06-15T12:00:00Z", old), ("ge2001-06-15T12:00:00.000001Z", new),
        (["ge2001-01-01", "lt2002-01-01"], old), ("lt2000,gt2010", new), ("gt2030", []),
    ]  # fmt: skip
    for value, expected in queries:
        params = {**base, "_lastUpdated": value, "_count": 100}
        if posted:
            response = _post(clinician, f"/fhir/{resource_type}/_search", params)
        else:
            response = clinician.get(f"/fhir/{resource_type}", params)
        body = _bundle(response)
        assert sorted(_ids(body)) == sorted(expected), (value, _ids(body))
        for entry in body.get("entry", []):
            stamp = datetime.fromisoformat(entry["resource"]["meta"]["lastUpdated"])
            assert (stamp == OLD) == (entry["resource"]["id"] in map(str, old))
        event = AuditEvent.objects.order_by("-seq").first()
        assert (event.action, event.outcome, event.result_count) == ("search", "success", len(expected))
        if resource_type != "Patient":
            assert event.patient_id == patient.pk
        elif expected:  # the patient a Patient page disclosed
            assert patient.pk in (event.patient_ids or [event.patient_id])


def test_a_patient_search_by_name_takes_it_too(clinician, patient, chart):
    assert _ids(_bundle(clinician.get("/fhir/Patient", {"family": "mü", "_lastUpdated": "lt2010"}))) == [patient.pk]
    assert _ids(_bundle(clinician.get("/fhir/Patient", {"family": "mü", "_lastUpdated": "gt2010"}))) == []
    total = clinician.get("/fhir/Patient", {"family": "mü", "_lastUpdated": "gt2010", "_summary": "count"}).json()
    assert total["total"] == 0


def test_pages_of_a_last_updated_search_hold_each_match_once(clinician, patient, chart):
    whole = _ids(_bundle(clinician.get("/fhir/Observation", {"patient": patient.pk, "_lastUpdated": "gt2010"})))
    assert len(whole) == 6
    paged, url = [], f"/fhir/Observation?patient={patient.pk}&_lastUpdated=gt2010&_count=2"
    while url:
        body = _bundle(clinician.get(url))
        paged += _ids(body)
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        if url and len(paged) == 2:
            cursor = parse_qs(urlsplit(url).query)["_cursor"][0]
            # The cursor is bound to its search: on another `_lastUpdated` it is refused, not a page of the wrong rows.
            other = clinician.get("/fhir/Observation", {"patient": patient.pk, "_lastUpdated": "gt2011",
                                                        "_cursor": cursor})  # fmt: skip
            assert _outcome(other).issue[0].expression == ["_cursor"]
    assert paged == whole


@pytest.mark.parametrize("resource_type", [*MODELS, "Patient"])
@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01",
        "xx2024",
        "2024-01-01T10:00",
        "gt",
        "",
        "2024-01-01T25:00:00Z",
        "ge2024,",
        "\u0662\u0660\u0662\u0664",
    ],
)
def test_a_bad_last_updated_is_an_operation_outcome_naming_it(clinician, patient, resource_type, value):
    params = {"_lastUpdated": value, **({} if resource_type == "Patient" else {"patient": patient.pk})}
    before = AuditEvent.objects.count()
    for response in (clinician.get(f"/fhir/{resource_type}", params),
                     _post(clinician, f"/fhir/{resource_type}/_search", params)):  # fmt: skip
        issue = _outcome(response).issue[0]
        assert issue.expression == ["_lastUpdated"] and "unknown" not in issue.diagnostics, issue  # known, bad
    assert AuditEvent.objects.count() == before + 2  # each refusal recorded
    assert AuditEvent.objects.order_by("-seq").first().outcome != "success"


def test_a_modifier_or_too_many_repeats_are_refused(clinician, patient):
    modified = clinician.get("/fhir/Observation", {"patient": patient.pk, "_lastUpdated:missing": "true"})
    assert _outcome(modified).issue[0].expression == ["_lastUpdated:missing"]
    repeated = clinician.get(f"/fhir/Observation?patient={patient.pk}" + "&_lastUpdated=gt2001" * 5)
    assert _outcome(repeated).issue[0].expression == ["_lastUpdated"]


def test_the_capability_statement_and_the_schema_say_so(clinician):
    statement = clinician.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(statement)
    for resource in statement["rest"][0]["resource"]:
        assert {"name": "_lastUpdated", "type": "date"} in resource["searchParam"], resource["type"]
        assert (resource["versioning"], resource["conditionalRead"]) == ("versioned", "full-support")
    everything = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")["operation"]
    assert any(op["name"] == "everything" for op in everything)
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    for resource_type in ("Patient", *MODELS):
        search = schema["paths"][f"/fhir/{resource_type}"]["get"]
        [param] = [p for p in search["parameters"] if p["name"] == "_lastUpdated"]
        assert param["in"] == "query" and param["schema"]["type"] == "array"  # repeatable: a range
        form = schema["paths"][f"/fhir/{resource_type}/_search"]["post"]["requestBody"]["content"][FORM]["schema"]
        assert "_lastUpdated" in schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]["properties"]
        if resource_type != "Patient":
            read = schema["paths"][f"/fhir/{resource_type}/{{resource_id}}"]["get"]
            assert "304" in read["responses"]
            assert {"If-None-Match", "If-Modified-Since"} <= {p["name"] for p in read["parameters"]}
    since = [p for p in schema["paths"]["/fhir/Patient/{patient_id}/$everything"]["get"]["parameters"]
             if p["name"] == "_since"]  # fmt: skip
    assert "Not supported" not in since[0]["description"]


def _everything(clinician, patient, **params) -> dict:
    return _bundle(clinician.get(f"/fhir/Patient/{patient.pk}/$everything", params))


def test_everything_since_serves_what_changed_and_the_patient(clinician, patient, chart):
    whole = _everything(clinician, patient, _count=1000)
    assert whole["total"] == 1 + 8 + 2 + 2
    body = _everything(clinician, patient, _since="2010-01-01T00:00:00Z", _count=1000)
    expected = {(name, pk) for name, (_, new) in chart.items() for pk in new} | {("Patient", patient.pk)}
    found = {(e["resource"]["resourceType"], int(e["resource"]["id"])) for e in body["entry"]}
    assert found == expected and body["total"] == len(expected)
    # The Patient is in though it did not change: the operation returns at least the patient itself.
    assert body["entry"][0]["resource"]["meta"]["lastUpdated"].startswith("2001-06-15T12:00:00")
    # At the instant itself: included (lastUpdated >= _since).
    at = _everything(clinician, patient, _since="2001-06-15T12:00:00Z", _count=1000)
    assert at["total"] == whole["total"]
    after = _everything(clinician, patient, _since="2001-06-15T12:00:00.000001+00:00", _count=1000)
    assert after["total"] == len(expected)
    typed = _everything(clinician, patient, _since="2010-01-01T01:00:00+01:00", _type="Encounter")
    assert _ids(typed, "Encounter") == chart["Encounter"][1] and _ids(typed) == [patient.pk, *chart["Encounter"][1]]
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.patient_id, event.result_count) == ("search", patient.pk, 2)


def test_everything_since_pages_consistently(clinician, patient, chart):
    whole = _ids(_everything(clinician, patient, _since="2010-01-01T00:00:00Z", _count=1000))
    paged, url = [], f"/fhir/Patient/{patient.pk}/$everything?_since=2010-01-01T00:00:00Z&_count=2"
    while url:
        body = _bundle(clinician.get(url))
        assert body["total"] == len(whole)
        paged += _ids(body)
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
    assert paged == whole
    windowed = _everything(clinician, patient, _since="2010-01-01T00:00:00Z", start="2000", _count=3)
    assert windowed["total"] == len(whole)


def test_everything_since_posted_as_parameters(clinician, patient, chart):
    body = {"resourceType": "Parameters", "parameter": [{"name": "_since", "valueInstant": "2010-01-01T00:00:00Z"}]}
    posted = clinician.post(f"/fhir/Patient/{patient.pk}/$everything", json.dumps(body),
                            content_type="application/fhir+json")  # fmt: skip
    got = _ids(_bundle(posted))
    assert got == _ids(_everything(clinician, patient, _since="2010-01-01T00:00:00Z"))


@pytest.mark.parametrize("value", ["2010-01-01", "2010-01-01T00:00Z", "2010-01-01T00:00:00", "gt2010-01-01T00:00:00Z",
                                   "2010-02-30T00:00:00Z", "yesterday"])  # fmt: skip
def test_a_bad_since_is_an_operation_outcome(clinician, patient, value):
    before = AuditEvent.objects.count()
    response = clinician.get(f"/fhir/Patient/{patient.pk}/$everything", {"_since": value})
    issue = _outcome(response).issue[0]
    assert issue.expression == ["_since"] and (
        "expected an instant" in issue.diagnostics or "real date" in issue.diagnostics
    )
    assert AuditEvent.objects.count() == before + 1


def test_cached_answers_carry_the_meta_an_uncached_one_does(clinician, patient, chart, elsewhere):
    """$everything and $lastn are cached under the patient's scope, reads and searches are not: the meta of each
    resource is the same either way, and a write (which bumps the scope) is in the next answer's meta."""
    paths = [f"/fhir/Patient/{patient.pk}/$everything?_count=1000",
             f"/fhir/Observation/$lastn?patient={patient.pk}&category=vital-signs&max=10"]  # fmt: skip
    for path in paths:
        uncached = _bundle(clinician.get(path))
        cached = _bundle(clinician.get(path))
        assert AuditEvent.objects.order_by("-seq").first().served_from_cache
        assert cached == uncached
        by_id = {(e["resource"]["resourceType"], e["resource"]["id"]): e["resource"] for e in cached["entry"]}
        searched = _bundle(clinician.get("/fhir/Observation", {"patient": patient.pk, "_count": 100}))
        for entry in searched["entry"]:  # as the search, which is never cached, serves them
            assert by_id.get(("Observation", entry["resource"]["id"]), entry["resource"]) == entry["resource"]
    changed = chart["Observation"][0][0]
    elsewhere(lambda: Observation.objects.filter(pk=changed).update(status="amended"))
    for path in paths:
        entry = next(e for e in _bundle(clinician.get(path))["entry"] if e["resource"]["id"] == str(changed))
        assert not AuditEvent.objects.order_by("-seq").first().served_from_cache
        assert entry["resource"]["meta"]["lastUpdated"] > "2002" and entry["resource"]["status"] == "amended"


LIST_BUDGETS = [
    ("/fhir/Patient?_count={n}&_lastUpdated=gt2000-01-01", 7),
    ("/fhir/Patient?family=a&_count={n}&_lastUpdated=gt2000-01-01", 7),
    ("/fhir/Observation?patient={pid}&category=vital-signs&_count={n}&_lastUpdated=gt2000-01-01", 8),
    ("/fhir/Encounter?patient={pid}&_count={n}&_lastUpdated=gt2000-01-01", 8),
    ("/fhir/MedicationRequest?patient={pid}&_count={n}&_lastUpdated=gt2000-01-01", 7),
]


@pytest.mark.parametrize(("path", "budget"), LIST_BUDGETS)
def test_last_updated_searches_keep_the_lists_query_budget(clinician, loaded, query_budget, path, budget):
    """The budgets of tests/clinical/test_query_budgets.py, unchanged, with `_lastUpdated`: meta reads no query."""
    pid = Patient.objects.filter(medication_requests__isnull=False).order_by("pk").first().pk
    assert clinician.get(path.format(pid=pid, n=1)).status_code == 200
    for n in (2, 30):
        with query_budget(budget):
            response = clinician.get(path.format(pid=pid, n=n))
        _bundle(response)
