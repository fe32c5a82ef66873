"""FHIR R4's `subject` beside `patient`: `Observation/$lastn` and the Observation, Encounter and MedicationRequest
searches take `subject=Patient/<id>` or `subject=<id>` as `patient=<id>`, with the same answer, cache entry and
audit record; another type (`Group/1`) or another patient than `patient` names is a 400 OperationOutcome."""

from datetime import date
from urllib.parse import urlsplit

import pytest
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.generators import SchemaGenerator
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.audit.models import AuditEvent
from apps.clinical.models import Patient
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db
LASTN = "/fhir/Observation/$lastn"
FORM = "application/x-www-form-urlencoded"
SEARCHED = ("Observation", "Encounter", "MedicationRequest")  # each has both `patient` and `subject` in R4


def _entries(response) -> list[dict]:
    assert response.status_code == 200, response.content[:500]
    bundle = response.json()
    Bundle.model_validate(bundle)
    return bundle.get("entry", [])


def _outcome(response) -> OperationOutcome:
    assert response.status_code == 400, response.content[:500]
    return OperationOutcome.model_validate(response.json())


def _last_record() -> AuditEvent:
    return AuditEvent.objects.order_by("-seq").first()


def _what(event: AuditEvent) -> tuple:
    """What a record says about the access (not when, nor its chain)."""
    return (event.action, event.resource_type, event.resource_id, event.patient_id, event.patient_ids,
            event.result_count, event.outcome, event.query_digest)  # fmt: skip


def _next_page(client, bundle: dict) -> list[dict] | None:
    """The next page's entries; None where the search has no more (a patient's one encounter)."""
    following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    if not following:
        return None
    url = urlsplit(following[0])
    return _entries(client.get(f"{url.path}?{url.query}"))


@pytest.mark.parametrize("subject", ["Patient/{pk}", "{pk}"])
def test_lastn_takes_subject_as_patient_one_cache_entry_one_kind_of_record(clinician, patient, vitals, subject):
    subject = subject.format(pk=patient.pk)
    query = {"category": "vital-signs", "max": 2}
    by_patient = _entries(clinician.get(LASTN, {"patient": patient.pk, **query}))
    patients_record = _last_record()
    by_subject = _entries(clinician.get(LASTN, {"subject": subject, **query}))
    subjects_record = _last_record()
    assert by_subject == by_patient and len(by_subject) == 4
    # The same cache entry (the key holds the patient's id, however it was spelt), and the same record.
    assert (patients_record.served_from_cache, subjects_record.served_from_cache) == (False, True)
    assert _what(subjects_record) == _what(patients_record)
    assert subjects_record.patient_id == patient.pk and not subjects_record.patient_ids
    # Both, naming the same patient, are one question.
    assert _entries(clinician.get(LASTN, {"patient": patient.pk, "subject": subject, **query})) == by_patient
    # POSTed as a form, and HEAD.
    posted = clinician.post(LASTN, f"subject={subject}&category=vital-signs&max=2", content_type=FORM)
    assert _entries(posted) == by_patient
    assert posted.json()["link"][0]["url"] == "http://testserver/fhir/Observation/$lastn"
    head = clinician.head(LASTN, {"subject": subject, "category": "vital-signs"})
    assert head.status_code == 200 and not head.content
    assert _what(_last_record())[:4] == ("search", "Observation", "", patient.pk)


def test_the_searches_take_subject_as_patient(clinician, loaded):
    patient = Patient.objects.filter(medication_requests__isnull=False, encounters__isnull=False).order_by("pk").first()
    for resource_type in SEARCHED:
        path = f"/fhir/{resource_type}"
        first = clinician.get(path, {"patient": patient.pk, "_count": 2})
        patients_record = _last_record()
        second = _next_page(clinician, first.json())
        total = clinician.get(path, {"patient": patient.pk, "_summary": "count"}).json()["total"]
        assert _entries(first) and (second is not None) == (total > 2), resource_type
        assert resource_type != "Observation" or second  # a next page followed at least once
        for subject in (f"Patient/{patient.pk}", str(patient.pk)):
            response = clinician.get(path, {"subject": subject, "_count": 2})
            assert _entries(response) == _entries(first), (resource_type, subject)
            assert _what(_last_record()) == _what(patients_record)
            assert _next_page(clinician, response.json()) == second  # its next link pages it
            counted = clinician.get(path, {"subject": subject, "_summary": "count"})
            assert counted.json()["total"] == total
        posted = clinician.post(f"{path}/_search", f"subject=Patient/{patient.pk}&_count=2", content_type=FORM)
        assert _entries(posted) == _entries(first)
        assert _next_page(clinician, posted.json()) == second  # by its opaque `_search` key
        head = clinician.head(path, {"subject": f"Patient/{patient.pk}"})
        assert head.status_code == 200 and not head.content


@pytest.mark.parametrize("path", [LASTN, *(f"/fhir/{t}" for t in SEARCHED)])
@pytest.mark.parametrize(
    "query",
    [
        "subject=Group/1",  # R4 allows an empty Bundle; refused: it names no patient (see required_patient)
        "subject=Device/{pk}",
        "subject=Patient/{pk},Patient/{other}",  # one patient per search, as `patient`
        "subject=Patient/abc",
        "subject=Patient/0{pk}",  # `007` is not the id `7`
        "subject=Patient/{pk}&subject=Patient/{pk}",
        "patient={pk}&subject=Patient/{other}",  # two patients: answering either is a question not asked
        "patient={pk}&subject={other}",
    ],
)
def test_subject_naming_no_one_patient_is_an_operation_outcome(clinician, patient, path, query):
    other = patient_create(mrn="MRN-000124", family_name="Other", given_name="Olga", birth_date=date(1980, 1, 2))
    query = query.format(pk=patient.pk, other=other.pk)
    extra = "&category=vital-signs" if path == LASTN else ""
    before = AuditEvent.objects.count()
    outcome = _outcome(clinician.get(f"{path}?{query}{extra}"))
    assert outcome.issue[0].code == "invalid" and outcome.issue[0].expression == ["subject"]
    assert _outcome(clinician.post(path if path == LASTN else f"{path}/_search", f"{query}{extra}", content_type=FORM))
    refusals = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.action, e.outcome) for e in refusals] == [("search", "error")] * 2  # each refusal is kept


@pytest.mark.parametrize("path", [LASTN, "/fhir/Observation"])
def test_a_refusal_names_the_subject_as_it_names_the_patient(clinician, patient, path):
    records = []
    for name, value in (("patient", patient.pk), ("subject", f"Patient/{patient.pk}"), ("subject", patient.pk)):
        _outcome(clinician.get(path, {name: value, "category": "social-history"}))
        records.append(_last_record())
    assert len({_what(record) for record in records}) == 1
    assert (records[0].patient_id, records[0].outcome) == (patient.pk, "error")  # one patient: patient_id


def test_declared_in_the_capability_statement_and_openapi(api):
    statement = CapabilityStatement.model_validate(api.get("/fhir/metadata").json())
    declared = {
        resource.type: {(param.name, param.type) for param in resource.searchParam or []}
        for resource in statement.rest[0].resource
    }
    for resource_type in SEARCHED:
        assert {("patient", "reference"), ("subject", "reference")} <= declared[resource_type]
    assert not {name for name, _ in declared["Patient"]} & {"patient", "subject"}
    reset_generator_stats()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    reset_generator_stats()
    paths = {"/fhir/Observation/$lastn": "FhirObservationLastnForm"}
    paths.update((f"/fhir/{t}", f"Fhir{t}SearchForm") for t in SEARCHED)
    for path, form in paths.items():
        assert "subject" in {param["name"] for param in schema["paths"][path]["get"]["parameters"]}, path
        assert "subject" in schema["components"]["schemas"][form]["properties"], form


@pytest.mark.parametrize("path", [LASTN, "/fhir/Encounter"])
def test_lenient_handling_does_not_drop_subject(clinician, patient, vitals, path):
    """`subject` is known now: `Prefer: handling=lenient` refuses another type rather than ignoring it (which
    answered for `patient` alone), and ignores none of a good one."""
    extra = {"category": "vital-signs"} if path == LASTN else {}
    lenient = {"HTTP_PREFER": "handling=lenient"}
    refused = _outcome(clinician.get(path, {"patient": patient.pk, "subject": "Group/1", **extra}, **lenient))
    assert refused.issue[0].expression == ["subject"]
    answered = clinician.get(path, {"subject": f"Patient/{patient.pk}", **extra}, **lenient).json()
    assert "subject=" in answered["link"][0]["url"]  # not ignored, so the self link keeps it
    assert all(entry["search"]["mode"] == "match" for entry in answered.get("entry", []))
