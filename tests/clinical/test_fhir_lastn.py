"""FHIR `Observation/$lastn`: the newest readings of each code, every answer validated by the fhir.resources R4B
models, audited (from the cache too), invalidated by a write, and its bad input an OperationOutcome."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.audit.models import AuditEvent
from apps.clinical import selectors
from apps.clinical.models import Observation, Patient
from apps.clinical.services import observation_record, observation_retract, patient_soft_delete

pytestmark = pytest.mark.django_db
LASTN = "/fhir/Observation/$lastn"
HEART_RATE, TEMPERATURE = "8867-4", "8310-5"  # codes come in order: temperature first
FORM = "application/x-www-form-urlencoded"


def _bundle(response) -> Bundle:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(response.json())
    assert bundle.type == "searchset"
    for entry in bundle.entry or []:
        if entry.search.mode == "match":
            FhirObservation.model_validate(entry.resource.model_dump())
    return bundle


def _ids(bundle: Bundle) -> list[int]:
    return [int(entry.resource.id) for entry in bundle.entry or []]


def _outcome(response, status: int = 400) -> OperationOutcome:
    assert response.status_code == status, response.content[:500]
    return OperationOutcome.model_validate(response.json())


def _newest(patient: Patient, code: str, n: int) -> list[int]:
    rows = Observation.objects.filter(patient=patient, code=code).exclude(status__in=Observation.NOT_READINGS)
    return list(rows.order_by("-effective_at", "-id").values_list("pk", flat=True)[:n])


def test_the_newest_reading_of_each_code(clinician, patient, vitals):
    bundle = _bundle(clinician.get(LASTN, {"patient": patient.pk, "category": "vital-signs"}))
    assert _ids(bundle) == _newest(patient, TEMPERATURE, 1) + _newest(patient, HEART_RATE, 1)
    for entry in bundle.entry:
        assert entry.fullUrl == f"http://testserver/fhir/Observation/{entry.resource.id}"
        assert entry.search.mode == "match"
    assert [link.relation for link in bundle.link] == ["self"]  # not paged: no next link
    # max=1 is the REST API's latest=true, row for row.
    assert _ids(bundle) == [o.pk for o in selectors.latest_observations(patient_id=patient.pk, category="vital-signs")]


@pytest.mark.parametrize("per_code", [2, 3, 4, 100])
def test_max_newest_readings_of_each_code_newest_first(clinician, patient, vitals, per_code):
    bundle = _bundle(clinician.get(LASTN, {"patient": f"Patient/{patient.pk}", "code": "8867-4,8310-5",
                                           "max": per_code}))  # fmt: skip
    assert _ids(bundle) == _newest(patient, TEMPERATURE, per_code) + _newest(patient, HEART_RATE, per_code)


def test_code_category_and_date_narrow_it(clinician, patient, vitals):
    only = _bundle(clinician.get(LASTN, {"patient": patient.pk, "code": f"http://loinc.org|{HEART_RATE}", "max": 9}))
    assert _ids(only) == _newest(patient, HEART_RATE, 9)
    assert not _bundle(clinician.get(LASTN, {"patient": patient.pk, "category": "laboratory"})).entry
    # The window ends 5 hours ago: the readings of 10 hours ago are then the newest.
    before = (datetime.now(UTC) - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dated = _bundle(clinician.get(LASTN, {"patient": patient.pk, "category": "vital-signs", "date": f"lt{before}"}))
    assert _ids(dated) == _newest(patient, TEMPERATURE, 2)[1:] + _newest(patient, HEART_RATE, 2)[1:]
    week = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    ranged = clinician.get(f"{LASTN}?patient={patient.pk}&category=vital-signs&date=ge{week}&date=lt{before}&max=9")
    assert len(_bundle(ranged).entry) == 6


def test_a_retracted_reading_is_not_the_latest(clinician, patient, vitals, elsewhere):
    newest = _newest(patient, HEART_RATE, 2)
    elsewhere(lambda: observation_retract(patient=patient, observation_id=newest[0]))
    bundle = _bundle(clinician.get(LASTN, {"patient": patient.pk, "code": HEART_RATE}))
    assert _ids(bundle) == [newest[1]]


def test_a_deleted_patient_has_no_readings(clinician, patient, vitals, elsewhere):
    query = {"patient": patient.pk, "category": "vital-signs"}
    assert _bundle(clinician.get(LASTN, query)).entry  # cached now
    elsewhere(lambda: patient_soft_delete(patient=patient))
    assert not _bundle(clinician.get(LASTN, query)).entry
    assert not _bundle(clinician.get(LASTN, {"patient": patient.pk + 1000, "category": "vital-signs"})).entry


def test_a_reading_written_after_a_cached_answer_is_in_the_next(clinician, patient, vitals, elsewhere):
    query = {"patient": patient.pk, "code": HEART_RATE}
    first = _bundle(clinician.get(LASTN, query))
    assert _bundle(clinician.get(LASTN, query)).entry[0].resource.id == first.entry[0].resource.id
    assert AuditEvent.objects.order_by("-seq").first().served_from_cache
    written = []
    elsewhere(lambda: written.append(observation_record(patient=patient, code=HEART_RATE, value=131,
                                                        effective_at=datetime.now(UTC))))  # fmt: skip
    after = _bundle(clinician.get(LASTN, query))
    assert _ids(after) == [written[0].pk]
    assert after.entry[0].resource.valueQuantity.value == 131


def test_every_answer_is_audited_a_cached_one_too(clinician, patient, vitals):
    query = {"patient": patient.pk, "category": "vital-signs", "max": 2}
    before = AuditEvent.objects.count()
    for _ in range(2):
        _bundle(clinician.get(LASTN, query))
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.action, e.resource_type, e.patient_id, e.result_count, e.outcome) for e in events] == [
        ("search", "Observation", patient.pk, 4, "success")
    ] * 2
    assert [e.served_from_cache for e in events] == [False, True]
    assert all(e.patient_ids is None and "MRN" not in e.query_digest for e in events)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("category=vital-signs", "patient"),
        ("patient=abc&category=vital-signs", "patient"),
        ("patient=1,2&category=vital-signs", "patient"),
        ("patient={pk}", "category"),  # neither category nor code
        ("patient={pk}&category=vital-signs&max=0", "max"),
        ("patient={pk}&category=vital-signs&max=-1", "max"),
        ("patient={pk}&category=vital-signs&max=1000000000", "max"),
        ("patient={pk}&category=vital-signs&max=abc", "max"),
        ("patient={pk}&category=vital-signs&max=1.5", "max"),
        ("patient={pk}&category=vital-signs&max=", "max"),
        ("patient={pk}&category=vital-signs&max=1&max=2", "max"),
        ("patient={pk}&code=http://snomed.info/sct|8867-4", "code"),
        ("patient={pk}&code=0000-0", "code"),
        ("patient={pk}&category=social-history", "category"),
        ("patient={pk}&category=vital-signs&date=yesterday", "date"),
        ("patient={pk}&category=vital-signs&date=2024-01-01T10:00", "date"),
        ("patient={pk}&category=vital-signs&colour=red", "colour"),
        ("patient={pk}&category=vital-signs&code:not=8867-4", "code:not"),
        ("patient={pk}&category=vital-signs&_count=5", "_count"),
        ("patient={pk}&category=vital-signs&_format=xml", "_format"),
        ("patient={pk}&category=vital-signs&_pretty=yes", "_pretty"),
        (
            "patient={pk}&category=vital-signs" + "".join("&date=" + ",".join(["ge2024-01-01"] * 50) for _ in "abc"),
            "date",
        ),  # 150 alternatives in all: each one a condition in the SQL
        # The parameter whose values went over is named, as in the searches (not `date`, which was not given).
        ("patient={pk}&code=" + ",".join(["8867-4"] * 50) + "&category=" + ",".join(["vital-signs"] * 50), "code"),
    ],
)
def test_bad_input_is_an_operation_outcome(clinician, patient, query, parameter):
    before = AuditEvent.objects.count()
    outcome = _outcome(clinician.get(f"{LASTN}?{query.format(pk=patient.pk)}"))
    assert outcome.issue[0].code == "invalid"
    assert outcome.issue[0].expression == [parameter]
    refusal = AuditEvent.objects.order_by("-seq").first()  # a refused search is recorded too
    assert AuditEvent.objects.count() == before + 1 and (refusal.action, refusal.outcome) == ("search", "error")


def test_lenient_handling_ignores_unknown_parameters_and_says_so(clinician, patient, vitals):
    response = clinician.get(LASTN, {"patient": patient.pk, "code": HEART_RATE, "colour": "red"},
                             HTTP_PREFER="handling=lenient")  # fmt: skip
    bundle = _bundle(response)
    assert [entry.search.mode for entry in bundle.entry] == ["match", "outcome"]
    assert bundle.entry[-1].resource.issue[0].expression == ["colour"]
    assert "colour" not in bundle.link[0].url
    # A known parameter with a modifier is still refused: dropping `:not` answers the opposite question.
    _outcome(clinician.get(f"{LASTN}?patient={patient.pk}&code:not=8867-4", HTTP_PREFER="handling=lenient"))


def test_posted_form_keeps_the_patient_out_of_urls(clinician, patient, vitals):
    body = f"patient={patient.pk}&category=vital-signs&max=2"
    posted = _bundle(clinician.post(LASTN, body, content_type=FORM))
    got = _bundle(clinician.get(f"{LASTN}?{body}"))
    assert _ids(posted) == _ids(got) and len(_ids(posted)) == 4
    assert posted.link[0].url == "http://testserver/fhir/Observation/$lastn"
    assert _outcome(clinician.post(LASTN, f"patient={patient.pk}&max=0&code=8867-4", content_type=FORM))
    assert _outcome(clinician.post(LASTN, {"patient": patient.pk}, format="json"), 415)


def test_scopes_are_the_observation_searchs(api, issue_token, patient, vitals):
    query = {"patient": patient.pk, "category": "vital-signs"}
    assert _outcome(api.get(LASTN, query), 401).issue[0].code == "login"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert _outcome(api.get(LASTN, query), 403).issue[0].code == "forbidden"
    refusal = AuditEvent.objects.order_by("-seq").first()
    assert (refusal.action, refusal.outcome, refusal.patient_id) == ("search", "denied", patient.pk)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read')}")
    assert len(_bundle(api.get(LASTN, query)).entry) == 2


def test_pretty_and_format_as_the_searches(clinician, patient, vitals):
    query = {"patient": patient.pk, "category": "vital-signs"}
    compact = clinician.get(LASTN, {**query, "_format": "json"})
    pretty = clinician.get(LASTN, {**query, "_pretty": "true"})
    assert pretty.json()["entry"] == compact.json()["entry"] and pretty.content != compact.content
    assert pretty.content.decode().startswith('{\n  "resourceType"')
    plain = clinician.get(LASTN, {**query, "_format": "application/json"})
    assert plain["Content-Type"].startswith("application/json") and plain.json()["entry"] == compact.json()["entry"]


def test_the_read_route_does_not_take_lastn_for_an_id(clinician, patient, vitals):
    reading = vitals[0]
    assert clinician.get(f"/fhir/Observation/{reading.pk}").json()["id"] == str(reading.pk)
    assert _outcome(clinician.get("/fhir/Observation/$everything"), 404).issue[0].code == "not-found"
    assert _outcome(clinician.put(LASTN, {}), 405).issue[0].code == "not-supported"
    head = clinician.head(LASTN, {"patient": patient.pk, "category": "vital-signs"})
    assert head.status_code == 200 and not head.content


def test_one_query_for_the_rows_whatever_max_and_codes(clinician, loaded, query_budget):
    patient = Patient.objects.order_by("pk").first()
    clinician.get("/fhir/Observation", {"patient": patient.pk})  # rate-limit policies are read once per process
    for query in (
        {"category": "vital-signs"},
        {"category": "vital-signs", "max": 5},
        {"code": "8867-4,8310-5,85354-9", "max": 3},
        {"category": "vital-signs,laboratory", "max": 100, "date": "ge2000-01-01"},
    ):
        # A miss: the cache's database tier asked and filled (2), the rows (1), the empty panels' members (1, as
        # the search's page), the audit record (5), and now and then the token's client, read again when its
        # cached copy ends (1).
        with CaptureQueriesContext(connection) as queries, query_budget(10):
            bundle = _bundle(clinician.get(LASTN, {"patient": patient.pk, **query}))
        assert bundle.entry
        observations = [q["sql"] for q in queries.captured_queries if "clinical_observation" in q["sql"]]
        rows = [sql for sql in observations if "lastn_codes" in sql]
        assert len(rows) == 1, [q["sql"][:150] for q in queries.captured_queries]
        panels = any(entry.resource.hasMember for entry in bundle.entry)
        assert len(observations) == 1 + panels, [sql[:150] for sql in observations]  # members: one query, if any
        with CaptureQueriesContext(connection) as queries:  # a hit reads no row
            assert _bundle(clinician.get(LASTN, {"patient": patient.pk, **query})).entry == bundle.entry
        assert not [q for q in queries.captured_queries if "clinical_observation" in q["sql"]]


def test_loaded_history_answers_as_the_newest_rows(clinician, loaded):
    """On the loader's rows (panels, labs, encounters): each code's newest `max` readings, as a plain query says."""
    patient = Patient.objects.order_by("pk").first()
    bundle = _bundle(clinician.get(LASTN, {"patient": patient.pk, "category": "vital-signs", "max": 3}))
    readings = selectors.lastn_readings(patient_id=patient.pk, categories=["vital-signs"])
    expected = []
    for code in sorted(set(readings.values_list("code", flat=True))):
        expected += list(readings.filter(code=code).order_by("-effective_at", "-id").values_list("pk", flat=True)[:3])
    assert _ids(bundle) == expected and len(expected) > 3


def test_lastn_is_the_search_grouped_by_code_panels_too(clinician, loaded):
    """FHIR R4 Observation-lastn: the Observation search's matches, the newest `max` of each code; an empty panel
    (the loader's 85353-1) is one of them, served with hasMember as the search serves it."""
    patient = Patient.objects.order_by("pk").first()
    searched = _bundle(clinician.get("/fhir/Observation", {"patient": patient.pk, "code": "85353-1", "_count": 3}))
    lastn = _bundle(clinician.get(LASTN, {"patient": patient.pk, "code": "85353-1", "max": 3}))
    assert len(_ids(searched)) == 3 and searched.entry[0].resource.hasMember
    assert _ids(lastn) == _ids(searched)
    assert [e.resource.hasMember for e in lastn.entry] == [e.resource.hasMember for e in searched.entry]
    by_category = _bundle(clinician.get(LASTN, {"patient": patient.pk, "category": "vital-signs", "max": 3}))
    panels = [int(e.resource.id) for e in by_category.entry if e.resource.code.coding[0].code == "85353-1"]
    assert panels == _ids(searched)


def test_the_capability_statement_declares_lastn(api):
    statement = CapabilityStatement.model_validate(api.get("/fhir/metadata").json())
    [observation] = [resource for resource in statement.rest[0].resource if resource.type == "Observation"]
    assert [(op.name, op.definition) for op in observation.operation] == [
        ("lastn", "http://hl7.org/fhir/OperationDefinition/Observation-lastn")
    ]
    others = {resource.type: resource.operation for resource in statement.rest[0].resource}
    assert [others["Encounter"], others["MedicationRequest"]] == [None, None]  # Patient has $everything
